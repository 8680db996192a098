"""Per-prompt block-wise greedy: P prompts at once against one at a time.

  .venv/bin/python -m experiments.benchmark_per_prompt_greedy \
      --config=configs/benchmark_per_prompt_greedy.py:llama --n_prompts=32

Runs `refusal_jax.bench.per_prompt_greedy.run_config` on the organism's
paper-mode context: the batched per-prompt search and the
one-prompt-at-a-time search over the same candidates, the same sets
asserted, timed in the same process. Prints the measurements as JSON (and
writes them to --out when given).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from refusal_jax.bench import per_prompt_greedy

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'An organism pipeline config, e.g. '
    'configs/benchmark_per_prompt_greedy.py:llama.')
_N_PROMPTS = flags.DEFINE_integer('n_prompts', 32, 'Prompts searched.')
_TAU = flags.DEFINE_float('tau', 0.1, 'Threshold of the change of P(I).')
_RULE = flags.DEFINE_enum('tau_rule', 'absolute', ['absolute', 'relative'],
                          'How tau is read.')
_OUT = flags.DEFINE_string('out', '', 'Optional JSON output path.')
flags.mark_flags_as_required(['config'])


@common.main_wrapper
def main(argv):
  del argv
  result = per_prompt_greedy.run_config(
      _CONFIG.value, n_prompts=_N_PROMPTS.value, tau=_TAU.value,
      tau_rule=_RULE.value, mesh=common.mesh_from_flags())
  common.print_json(result, _OUT.value)


if __name__ == '__main__':
  app.run(main)
