"""Lazy reading of single-file and sharded safetensors checkpoints."""

import contextlib
import json
import os

import safetensors
from safetensors import safe_open

from refusal_jax import errors

SINGLE = 'model.safetensors'
INDEX = 'model.safetensors.index.json'


class TensorReader(contextlib.AbstractContextManager):
  """Opens a checkpoint directory and reads tensors by key, one at a time.

  Tensors are memory-mapped by safetensors and returned as JAX arrays in their
  stored dtype (bf16 included); nothing is read until `get` is called.
  """

  def __init__(self, directory: str):
    self._dir = directory
    index = os.path.join(directory, INDEX)
    single = os.path.join(directory, SINGLE)
    if os.path.exists(index):
      try:
        with open(index) as f:
          weight_map = json.load(f)['weight_map']
      except (OSError, ValueError, KeyError) as e:
        raise errors.CheckpointError(
            f'{index} is not a valid safetensors index ({e}); re-download the '
            'checkpoint') from None
      self._file_of = dict(weight_map)
    elif os.path.exists(single):
      self._file_of = None
    else:
      raise errors.CheckpointError(
          f'{directory} has no {SINGLE} or {INDEX}; pass a Hugging Face '
          'checkpoint directory saved with safetensors')
    self._handles = {}
    if self._file_of is None:
      self._file_of = {k: SINGLE for k in self._open(SINGLE).keys()}

  def _open(self, filename):
    if filename not in self._handles:
      path = os.path.join(self._dir, filename)
      try:
        self._handles[filename] = safe_open(path, framework='flax')
      except (OSError, safetensors.SafetensorError, ValueError) as e:
        raise errors.CheckpointError(
            f'cannot read {path}: {str(e).splitlines()[0]}; the file is '
            'missing, truncated or corrupt') from None
    return self._handles[filename]

  def keys(self) -> list[str]:
    return sorted(self._file_of)

  def shape(self, key: str) -> tuple[int, ...]:
    return tuple(self._open(self._file_of[key]).get_slice(key).get_shape())

  def get(self, key: str):
    """The tensor stored under `key`, as a JAX array."""
    try:
      return self._open(self._file_of[key]).get_tensor(key)
    except (safetensors.SafetensorError, ValueError, OSError) as e:
      raise errors.CheckpointError(
          f'cannot read tensor {key}: {str(e).splitlines()[0]}; the '
          'checkpoint is truncated or corrupt') from None

  def __exit__(self, *exc):
    self._handles.clear()
    return False
