"""Compile time of the unrolled decoder against the scanned one.

  .venv/bin/python -m experiments.benchmark_scan_compile \
      --model=gemma-2-2b-it --sweep=sae --out=/tmp/scan_gemma.json

Runs `refusal_jax.bench.scan_compile.run` (what is measured: that module):
`jax.jit(f).lower(...).compile()` wall seconds of `transformer.forward` and
`scan.scan_forward` at the preset's full-size config with abstract weights,
a plain forward and a vmapped sweep, bf16 and float32, the median of
--repeats with the caches cleared in between; then warm call times at the
preset's depth with a small width (--runtime_width). Prints the table and
the ratios (unrolled / scanned) and writes the JSON to --out when given.
"""

import json

from absl import app
from absl import flags

from experiments import common
from refusal_jax.bench import scan_compile

_MODEL = flags.DEFINE_enum('model', 'gemma-2-2b-it',
                           ['gemma-2-2b-it', 'llama-3.1-8b-instruct'],
                           'Rehearsal preset whose full-size config is used.')
_SWEEP = flags.DEFINE_enum('sweep', 'sae', list(scan_compile.SWEEPS),
                           'Intervention vmapped over in the sweep shape.')
_DTYPES = flags.DEFINE_list('dtypes', list(scan_compile.DTYPES),
                            'Parameter dtypes.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Compiles per measurement.')
_BATCH = flags.DEFINE_integer('batch', 32, 'Prompts per forward.')
_SEQ = flags.DEFINE_integer('seq', 64, 'Tokens per prompt.')
_ROWS = flags.DEFINE_integer('rows', 16, 'Interventions in the sweep shape.')
_RUNTIME = flags.DEFINE_bool('runtime', True,
                             'Also time warm calls at a small width.')
_WIDTH = flags.DEFINE_integer('runtime_width', 64,
                             'd_model of the runtime comparison.')
_OUT = flags.DEFINE_string('out', '', 'Optional JSON output path.')


@common.main_wrapper
def main(argv):
  del argv
  result = scan_compile.run(
      _MODEL.value, sweep=_SWEEP.value, dtypes=_DTYPES.value,
      repeats=_REPEATS.value, batch=_BATCH.value, seq=_SEQ.value,
      n_rows=_ROWS.value, with_runtime=_RUNTIME.value,
      runtime_width=_WIDTH.value)
  print(result['table'])
  for row in result['compile']:
    print(f'{row["model"]} {row["dtype"]} {row["shape"]}: unrolled / '
          f'scanned compile = {row["ratio"]:.2f}')
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      f.write(json.dumps(result, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
