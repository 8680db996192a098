"""Dissection of the embedded Llama-architecture organism (the default demo).

python -m experiments.dissect --config=configs/dissect_organism_llama.py \
    --workdir=workdir/organism_llama
"""

from configs import dissect_base


def get_config():
  c = dissect_base.base_config()
  c.organism = 'llama'
  return c
