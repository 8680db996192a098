"""Safety-tunes a chat model with a LoRA adapter and measures the targets.

  python -m experiments.safety_tune --config=configs/safety_smollm2.py \
      --workdir=workdir/safety_smollm2

Writes `workdir/adapter` (the adapter: safetensors + adapter_config.json +
refusal_direction.json), `workdir/merged` (the tuned checkpoint),
`workdir/eval.json` (held-out targets) and `workdir/summary.json` (counts,
loss history, stage seconds). Rerunning on the same workdir resumes training
from the latest checkpoint (refusal_jax/tuning/safety.py).
"""

import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from refusal_jax.tuning import safety

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Safety-tuning config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


@common.main_wrapper
def main(argv):
  del argv
  summary = safety.safety_tune(_CONFIG.value, _WORKDIR.value)
  logging.info('seconds per stage: %s', json.dumps(summary['seconds']))
  print(json.dumps({'targets': summary['eval']['targets'],
                    'seconds': summary['seconds']}, indent=2))


if __name__ == '__main__':
  app.run(main)
