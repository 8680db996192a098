"""Dissection of the embedded Gemma-2-architecture organism.

python -m experiments.dissect --config=configs/dissect_organism_gemma2.py \
    --workdir=workdir/organism_gemma2
"""

from configs import dissect_base


def get_config():
  c = dissect_base.base_config()
  c.organism = 'gemma2'
  return c
