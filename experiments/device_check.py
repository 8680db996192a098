"""The device check: parity and engine tests, the benchmark, the rehearsal.

  python -m experiments.device_check --workdir=/tmp/device_check

On a GPU or TPU (docs/accelerators.md): runs, each under its own timeout,
the parity, engine and precision tests; the ablation benchmark at
Gemma-2-2B's shape in bf16 with all 26 layers; and the full-size
gemma-2-2b-it rehearsal in paper mode at the paper's scale (128 prompts, 16
per-layer SAEs). Writes DIR/device_check.json (per stage wall, compile
seconds and compilations; the benchmark's speedup over the hook loop and
fraction of the bf16 peak) and prints a summary. `--smoke` shrinks every
size for a CPU run of a minute or two; `--benchmark_flag` and
`--rehearsal_flag` append flags to those steps (the last of a flag wins).
What is run: refusal_jax/bench/device_check.py.
"""

from absl import app
from absl import flags

from experiments import common
from refusal_jax.bench import device_check

_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.',
                               required=True)
_SMOKE = flags.DEFINE_bool('smoke', False, 'Every size shrunk (CPU run).')
_STEPS = flags.DEFINE_list('steps', list(device_check.STEPS),
                           'Steps to run, of tests, benchmark, rehearsal.')
_TESTS = flags.DEFINE_list('tests', None, 'pytest paths of the tests step '
                           '(default: parity, engine, precision).')
_BENCH = flags.DEFINE_multi_string(
    'benchmark_flag', [], 'Extra flag of experiments.benchmark_ablation, '
    "e.g. --benchmark_flag=--config.sweep.n_masks=1024.")
_REHEARSAL = flags.DEFINE_multi_string(
    'rehearsal_flag', [], 'Extra flag of experiments.rehearse, e.g. '
    '--rehearsal_flag=--prompts=256.')
_TIMEOUTS = {s: flags.DEFINE_integer(f'timeout_{s}', None,
                                     f'Seconds the {s} step may take.')
             for s in device_check.STEPS}


@common.main_wrapper
def main(argv):
  del argv
  plan = device_check.Plan.smoke() if _SMOKE.value else device_check.Plan()
  plan.steps = tuple(_STEPS.value)
  if _TESTS.value:
    plan.tests = tuple(_TESTS.value)
  plan.benchmark_flags += tuple(_BENCH.value)
  plan.rehearsal_flags += tuple(_REHEARSAL.value)
  for step, flag in _TIMEOUTS.items():
    if flag.value is not None:
      plan.timeouts[step] = flag.value
  result = device_check.run_device_check(_WORKDIR.value, plan)
  print('\n'.join(device_check.summary_lines(result)))
  print(f'results: {_WORKDIR.value}/device_check.json')


if __name__ == '__main__':
  app.run(main)
