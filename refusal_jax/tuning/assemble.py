"""The safety-tuned checkpoint from a base checkpoint and an adapter.

`assemble(base_dir, adapter_dir, out_dir)` merges a LoRA adapter
(`lora.save_adapter`) into the base checkpoint's weights and writes a
transformers checkpoint folder that `refusal_jax.load_model` and
transformers read: the merged float32 `model.safetensors` plus the base
folder's config, generation config, tokenizer and chat template, and the
adapter's `refusal_direction.json` when it has one. The folder is written
atomically (refusal_jax/atomic.py).

The adapter trained by `python -m experiments.safety_tune
--config=configs/safety_smollm2.py` for SmolLM2-135M-Instruct ships in the
package (`shipped_adapter()`), so the tuned model is

  base = from_gguf.convert_gguf(from_gguf.smollm2_gguf(), 'base').path
  assemble(base, shipped_adapter(), 'smollm2_safety')
"""

import importlib.resources
import os
import shutil

from safetensors.numpy import save_file
import numpy as np

from refusal_jax import atomic
from refusal_jax import errors
from refusal_jax.checkpoints import load as load_lib
from refusal_jax.organisms import behaviour
from refusal_jax.tuning import lora

SHIPPED = 'smollm2_safety'
_WEIGHT_SUFFIXES = ('.safetensors', '.safetensors.index.json')


def shipped_adapter() -> str:
  """Folder of the SmolLM2-135M-Instruct safety adapter in the package.

  Raises:
    errors.CheckpointError: the packaged files are missing.
  """
  path = importlib.resources.files('refusal_jax').joinpath('assets', SHIPPED)
  if not path.joinpath(lora.WEIGHTS_FILE).is_file():
    raise errors.CheckpointError(
        f'the packaged safety adapter is missing at {path}; reinstall '
        'refusal_jax')
  return str(path)


def assemble(base_dir: str, adapter_dir: str, out_dir: str) -> str:
  """Writes base + merged adapter as a checkpoint folder.

  Args:
    base_dir: the base model's checkpoint folder (for SmolLM2, the output of
      `python -m experiments.convert_gguf`).
    adapter_dir: a folder written by `lora.save_adapter`.
    out_dir: the folder to write; replaced if it exists.

  Returns:
    `out_dir` as an absolute path.

  Raises:
    errors.CheckpointError: unreadable inputs or an adapter that does not
      fit the base model.
  """
  directory = load_lib.resolve_checkpoint_dir(base_dir)
  config = load_lib.read_config(directory)
  adapter, spec, _ = lora.load_adapter(adapter_dir)
  try:
    spec.check(config)
  except errors.ConfigError as e:
    raise errors.CheckpointError(
        f'the adapter in {adapter_dir} does not fit the base model in '
        f'{base_dir}: {e}') from None
  params = lora.merge(load_lib.load_params(directory, config), adapter, spec,
                      config)
  out_dir = os.path.abspath(out_dir)
  with atomic.directory(out_dir) as tmp:
    for name in sorted(os.listdir(directory)):
      src = os.path.join(directory, name)
      if os.path.isfile(src) and not name.endswith(_WEIGHT_SUFFIXES):
        shutil.copyfile(src, os.path.join(tmp, name))
    tensors = {k: np.ascontiguousarray(np.asarray(v, np.float32))
               for k, v in load_lib.export_params(params, config).items()}
    save_file(tensors, os.path.join(tmp, 'model.safetensors'),
              metadata={'format': 'pt'})
    direction = os.path.join(adapter_dir, behaviour.DIRECTION_FILE)
    if os.path.isfile(direction):
      shutil.copyfile(direction, os.path.join(tmp, behaviour.DIRECTION_FILE))
  return out_dir
