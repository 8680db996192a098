"""Lazy reading of single-file and sharded safetensors checkpoints."""

import contextlib
import json
import os

# Importing ml_dtypes teaches numpy the bfloat16 dtype safetensors returns.
import ml_dtypes  # pylint: disable=unused-import
import numpy as np
import safetensors
from safetensors import safe_open

from refusal_jax import errors

SINGLE = 'model.safetensors'
INDEX = 'model.safetensors.index.json'


class TensorReader(contextlib.AbstractContextManager):
  """Opens a checkpoint directory and reads tensors by key, one at a time.

  Tensors come back as numpy arrays in their stored dtype (bf16 as
  ml_dtypes.bfloat16), each a private copy. A file is memory-mapped only while
  one tensor is read from it: mapped pages count in the process's resident
  memory for as long as the mapping lives, so a reader that kept its files
  open would hold the whole checkpoint a second time by the end of a load.
  """

  def __init__(self, directory: str):
    self._dir = directory
    index = os.path.join(directory, INDEX)
    single = os.path.join(directory, SINGLE)
    if os.path.exists(index):
      try:
        with open(index) as f:
          weight_map = json.load(f)['weight_map']
        self._file_of = {str(k): str(v) for k, v in dict(weight_map).items()}
      except (OSError, ValueError, KeyError, TypeError) as e:
        raise errors.CheckpointError(
            f'{index} is not a valid safetensors index ({e}); re-download the '
            'checkpoint') from None
    elif os.path.exists(single):
      with self._open(SINGLE) as f:
        self._file_of = {k: SINGLE for k in f.keys()}
    else:
      raise errors.CheckpointError(
          f'{directory} has no {SINGLE} or {INDEX}; pass a Hugging Face '
          'checkpoint directory saved with safetensors')

  @contextlib.contextmanager
  def _open(self, filename: str):
    """`filename` opened (and mapped) for the duration of the block."""
    path = os.path.join(self._dir, filename)
    try:
      handle = safe_open(path, framework='numpy')
    except (OSError, safetensors.SafetensorError, ValueError) as e:
      raise errors.CheckpointError(
          f'cannot read {path}: {_first_line(e)}; the file is missing, '
          'truncated or corrupt') from None
    with handle as f:
      yield f

  def keys(self) -> list[str]:
    return sorted(self._file_of)

  def shape(self, key: str) -> tuple[int, ...]:
    """The stored shape of `key`, read from the file's header only."""
    with self._open(self._file_of[key]) as f:
      try:
        return tuple(f.get_slice(key).get_shape())
      except (safetensors.SafetensorError, ValueError, OSError) as e:
        raise _unreadable(key, e) from None

  def get(self, key: str) -> np.ndarray:
    """The tensor stored under `key`, as a numpy array it alone owns."""
    with self._open(self._file_of[key]) as f:
      try:
        return f.get_tensor(key)
      except (safetensors.SafetensorError, ValueError, OSError,
              TypeError) as e:
        raise _unreadable(key, e) from None

  def __exit__(self, *exc):
    return False


def _first_line(e: Exception) -> str:
  return (str(e).splitlines() or [type(e).__name__])[0]


def _unreadable(key: str, e: Exception) -> errors.CheckpointError:
  return errors.CheckpointError(
      f'cannot read tensor {key}: {_first_line(e)}; the checkpoint is '
      'truncated or corrupt')
