"""Per-prompt block-wise greedy: P prompts at once against one at a time.

  .venv/bin/python -m experiments.benchmark_per_prompt_greedy \
      --organism=llama --n_prompts=32 --k_per_layer=16

Builds the paper-mode pipeline context of an embedded organism
(configs/dissect_organism_<organism>.py:paper: its SAEs of layers 0-3 as one
feature space, P('I') as the metric), takes the top `k_per_layer` features
per SAE by decoder cosine with the organism's shipped refusal direction, and
runs `refusal_jax.bench.per_prompt_greedy.run`: the batched per-prompt search
and the one-prompt-at-a-time search, the same sets asserted, timed in the
same process. Prints the measurements as JSON (and writes them to --out when
given).
"""

import importlib
import json
import os

from absl import app
from absl import flags

from experiments import common
from refusal_jax import asset_paths
from refusal_jax.bench import per_prompt_greedy
from refusal_jax.pipeline import context as context_lib

_ORGANISM = flags.DEFINE_enum('organism', 'llama', ['llama', 'gemma2'],
                              'Embedded organism.')
_N_PROMPTS = flags.DEFINE_integer('n_prompts', 32, 'Prompts searched.')
_K = flags.DEFINE_integer('k_per_layer', 16, 'Candidates per SAE.')
_TAU = flags.DEFINE_float('tau', 0.1, 'Threshold of the change of P(I).')
_RULE = flags.DEFINE_enum('tau_rule', 'absolute', ['absolute', 'relative'],
                          'How tau is read.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Block-order seeds.')
_BLOCK = flags.DEFINE_integer('block_size', 5, 'Candidates per block.')
_MASKS = flags.DEFINE_integer(
    'chunk_masks', 4, 'Rows per call are chunk_masks x chunk_prompts; the '
    'lookahead is chunk_masks // seeds (at least 1).')
_PROMPTS = flags.DEFINE_integer('chunk_prompts', 16, 'Prompts per call.')
_OUT = flags.DEFINE_string('out', '', 'Optional JSON output path.')


@common.main_wrapper
def main(argv):
  del argv
  name = _ORGANISM.value
  config = importlib.import_module(
      f'configs.dissect_organism_{name}').get_config('paper')
  config.features.ranking = 'cosine'
  config.features.k_per_layer = _K.value
  config.data.n_train = max(config.data.n_train, _N_PROMPTS.value)
  config.greedy.n_prompts = _N_PROMPTS.value
  config.chunks.masks, config.chunks.prompts = _MASKS.value, _PROMPTS.value
  config.paper.greedy.update(seeds=tuple(int(s) for s in _SEEDS.value),
                             block_size=_BLOCK.value)
  ctx = context_lib.build_context(config, common.mesh_from_flags())
  path = os.path.join(asset_paths.organism_path(name),
                      'refusal_direction.json')
  result = per_prompt_greedy.run(ctx, path, n_prompts=_N_PROMPTS.value,
                                 tau=_TAU.value, tau_rule=_RULE.value)
  text = json.dumps(result, indent=2)
  print(text)
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  app.run(main)
