"""bf16 against float32 on an organism: metric signs and generated tokens.

python -m experiments.bf16_agreement --organism=gemma2 --n_prompts=400 \
    --n_masks=256
"""

import json

from absl import app
from absl import flags

from experiments import common
from refusal_jax.bench import precision
from refusal_jax.organisms import assets

_ORGANISM = flags.DEFINE_enum('organism', 'gemma2', ['gemma2', 'llama'],
                              'Shipped organism.')
_PROMPTS = flags.DEFINE_integer('n_prompts', 400, 'Test prompts (half '
                                'harmful).')
_MASKS = flags.DEFINE_integer('n_masks', 256, 'Random ablation masks.')


@common.main_wrapper
def main(argv):
  del argv
  result = precision.bf16_agreement(
      assets.organism_path(_ORGANISM.value), assets.sae_path(_ORGANISM.value),
      n_prompts=_PROMPTS.value, n_masks=_MASKS.value)
  print(json.dumps(dict(result, organism=_ORGANISM.value)))


if __name__ == '__main__':
  app.run(main)
