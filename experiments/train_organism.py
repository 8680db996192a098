"""Trains a refusal model organism, then selects its direction and measures it.

  python -m experiments.train_organism --config=configs/organism_llama.py \
      --workdir=workdir/organism_llama

Writes `workdir/export` (a transformers checkpoint with its tokenizer and
`refusal_direction.json`), `workdir/train_summary.json` (loss history, time)
and `workdir/behaviour.json` (held-out test behaviour). Rerunning on the same
workdir resumes training from the latest checkpoint.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from refusal_jax import errors
from refusal_jax.organisms import behaviour
from refusal_jax.organisms import train
from refusal_jax.pipeline import artifacts

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Organism config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_EVALUATE = flags.DEFINE_bool(
    'evaluate', True, 'After training, select the refusal direction and '
    'measure behaviour on the test split.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  try:
    export_dir = train.train_organism(_CONFIG.value, _WORKDIR.value)
    if _EVALUATE.value:
      began = time.perf_counter()
      result = behaviour.evaluate_organism(export_dir, _CONFIG.value)
      result['eval_seconds'] = time.perf_counter() - began
      result['config'] = _CONFIG.value.to_dict()
      result['provenance'] = artifacts.provenance()
      artifacts.write_json(os.path.join(_WORKDIR.value, 'behaviour.json'),
                           result)
      logging.info('behaviour: %s', json.dumps(result))
  except errors.RefusalJaxError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  logging.info('organism written to %s', export_dir)


if __name__ == '__main__':
  app.run(main)
