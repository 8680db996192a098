"""Trains a refusal model organism, then selects its direction and measures it.

  python -m experiments.train_organism --config=configs/organism_llama.py \
      --workdir=workdir/organism_llama

Writes `workdir/export` (a transformers checkpoint with its tokenizer and
`refusal_direction.json`), `workdir/train_summary.json` (loss history, time)
and `workdir/behaviour.json` (held-out test behaviour). Rerunning on the same
workdir resumes training from the latest checkpoint
(refusal_jax/organisms/build.py).
"""

import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from refusal_jax.organisms import build

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Organism config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_EVALUATE = flags.DEFINE_bool(
    'evaluate', True, 'After training, select the refusal direction and '
    'measure behaviour on the test split.')
flags.mark_flags_as_required(['config', 'workdir'])


@common.main_wrapper
def main(argv):
  del argv
  export_dir, result = build.build_organism(_CONFIG.value, _WORKDIR.value,
                                            evaluate=_EVALUATE.value)
  if result is not None:
    logging.info('behaviour: %s', json.dumps(result))
  logging.info('organism written to %s', export_dir)


if __name__ == '__main__':
  app.run(main)
