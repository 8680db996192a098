"""Trains an SAE on a refusal model organism's residual stream.

  python -m experiments.train_sae --config=configs/sae_organism.py:llama \
      --workdir=workdir/sae_organism_llama

Runs `refusal_jax.sae_recipes.organism.train_organism_sae`: captures the
activations at the config's site and layer on the organism's training
examples, trains the SAE, measures it on the test examples and writes the
SAE as a SAELens folder `workdir/sae` plus `workdir/sae_summary.json`.
"""

import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from refusal_jax.sae_recipes import organism

_CONFIG = config_flags.DEFINE_config_file('config', None, 'SAE config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


@common.main_wrapper
def main(argv):
  del argv
  out, summary = organism.train_organism_sae(_CONFIG.value, _WORKDIR.value)
  logging.info('SAE written to %s: %s', out, json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
