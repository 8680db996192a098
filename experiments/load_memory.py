"""Peak host memory of loading a full-size checkpoint (BUILD.md).

The figures in BUILD.md, "Loading memory", come from:

  .venv/bin/python -m experiments.load_memory --preset=gemma2_2b \
      --workdir=/tmp/loadmem --dtypes=bfloat16,float32 --forward_tokens=21

Writes a random-weight bf16 checkpoint laid out as the hub's (sharded at 5 GB,
refusal_jax/checkpoints/synthetic.py) to WORKDIR/PRESET unless one is there,
then, for each dtype, loads it with `load_model` in a fresh subprocess and
runs one forward pass of --forward_tokens tokens (refusal_jax/checkpoints/
memory.py). Prints one JSON line per dtype with the peaks and the bound
1.1 x (loaded parameter bytes) + 1 GB, and deletes the checkpoint afterwards
unless --keep. A dtype whose bound exceeds the memory available now is
skipped with a note rather than run into the OOM killer.
"""

import json
import os
import shutil

from absl import app
from absl import flags

from experiments import common
from refusal_jax.checkpoints import memory
from refusal_jax.checkpoints import synthetic
from refusal_jax.models import config as config_lib

_PRESET = flags.DEFINE_string('preset', 'gemma2_2b',
                              'gemma2_2b, gemma2_9b or llama31_8b.')
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Where the checkpoint is written.')
_DTYPES = flags.DEFINE_list('dtypes', ['bfloat16'], 'Dtypes to load in.')
_TOKENS = flags.DEFINE_integer('forward_tokens', 21,
                               'Tokens of the forward pass (0: none).')
_KEEP = flags.DEFINE_bool('keep', False, 'Keep the checkpoint afterwards.')
flags.mark_flags_as_required(['workdir'])

GB = 10**9


def available_bytes() -> int:
  """MemAvailable of /proc/meminfo, in bytes."""
  with open('/proc/meminfo') as f:
    for line in f:
      if line.startswith('MemAvailable:'):
        return int(line.split()[1]) * 1024
  raise OSError('no MemAvailable in /proc/meminfo')


def bound(param_bytes: int) -> int:
  """The issue's bound on peak host memory: 1.1 x parameters + 1 GB."""
  return int(1.1 * param_bytes) + GB


def run_one(directory: str, ckpt_bytes: int, dtype: str) -> dict:
  """Measures one dtype, or explains why it was skipped."""
  param_bytes = ckpt_bytes * (2 if dtype == 'float32' else 1)
  row = {'dtype': dtype, 'checkpoint_gb': ckpt_bytes / GB,
         'bound_gb': bound(param_bytes) / GB}
  if bound(param_bytes) > available_bytes():
    row['skipped'] = (f'needs up to {bound(param_bytes) / GB:.1f} GB, '
                      f'{available_bytes() / GB:.1f} GB available')
    return row
  m = memory.measure(directory, dtype, _TOKENS.value)
  row.update({k: (v / GB if k.endswith(('peak', 'baseline', 'bytes'))
                  else v) for k, v in m.items()})
  row['within_bound'] = m['load_peak'] <= bound(m['param_bytes'])
  row['load_ratio'] = m['load_peak'] / m['param_bytes']
  return row


@common.main_wrapper
def main(argv):
  del argv
  config = config_lib.ModelConfig.preset(_PRESET.value)
  directory = os.path.join(_WORKDIR.value, _PRESET.value)
  if not os.path.exists(os.path.join(directory, 'config.json')):
    synthetic.write_checkpoint(config, directory)
  ckpt_bytes = synthetic.checkpoint_bytes(directory)
  try:
    for dtype in _DTYPES.value:
      row = run_one(directory, ckpt_bytes, dtype)
      print(json.dumps({'preset': _PRESET.value, **row}), flush=True)
  finally:
    if not _KEEP.value:
      shutil.rmtree(directory, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
