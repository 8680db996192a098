"""Peak host memory of loading a full-size checkpoint (BUILD.md).

The figures in BUILD.md, "Loading memory", come from:

  .venv/bin/python -m experiments.load_memory --preset=gemma2_2b \
      --workdir=/tmp/loadmem --dtypes=bfloat16,float32 --forward_tokens=21

Writes a random-weight bf16 checkpoint laid out as the hub's (sharded at 5 GB,
refusal_jax/checkpoints/synthetic.py) to WORKDIR/PRESET unless one is there,
then, for each dtype, loads it with `load_model` in a fresh subprocess and
runs one forward pass of --forward_tokens tokens (`memory.bound_row`).
Prints one JSON line per dtype with the peaks and the bound, and deletes the
checkpoint afterwards unless --keep.
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
      row = memory.bound_row(directory, ckpt_bytes, dtype, _TOKENS.value)
      print(json.dumps({'preset': _PRESET.value, **row}), flush=True)
  finally:
    if not _KEEP.value:
      shutil.rmtree(directory, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
