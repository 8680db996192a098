"""Loading a transformers checkpoint directory into this port's parameters.

`load_model(path)` reads config, parameters and tokenizer into a
`models.model.Model` (exported as `refusal_jax.load_model`); it lives here,
with the loading it calls, rather than beside `Model`, because checkpoints
sit above models in the package's layers (tests/test_layers.py).
"""

import json
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from refusal_jax import errors
from refusal_jax.checkpoints import hf_mapping
from refusal_jax.checkpoints.safetensors_io import TensorReader
from refusal_jax.models import config as config_lib
from refusal_jax.models.model import Model
from refusal_jax.models import transformer
from refusal_jax.parallel import mesh as mesh_lib

# Weights transformers may store that carry no parameters of their own.
_IGNORABLE_SUFFIXES = ('.rotary_emb.inv_freq',)
# Bytes per slab of `copy_in_slabs` (fits in a core's L2 cache).
_SLAB_BYTES = 1 << 18
_TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json',
                    'tokenizer.model')


def resolve_checkpoint_dir(path: str) -> str:
  """A local checkpoint directory for `path` (a directory or a hub id).

  Raises:
    errors.CheckpointError: when the path does not exist and the hub cannot
      be reached (offline), with the advice to pass a local directory.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    return path
  if os.path.exists(path):
    raise errors.CheckpointError(
        f'{path} is a file; pass the checkpoint directory that holds '
        'config.json and the safetensors weights')
  looks_like_hub_id = path.count('/') == 1 and not path.startswith(('.', '/'))
  if not looks_like_hub_id:
    raise errors.CheckpointError(f'model path {path} does not exist; pass a '
                                 'local Hugging Face checkpoint directory')
  try:
    import huggingface_hub  # pylint: disable=g-import-not-at-top
    return huggingface_hub.snapshot_download(
        path, allow_patterns=['*.json', '*.safetensors', 'tokenizer*',
                              '*.model', '*.jinja'])
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).splitlines() or [type(e).__name__])[0]
    raise errors.CheckpointError(
        f'{path} is not a local directory and the hub could not be reached '
        f'({type(e).__name__}: {first[:120]}); pass a local checkpoint '
        'directory') from None


def read_config(directory: str) -> config_lib.ModelConfig:
  """Parses `directory/config.json` strictly (see config.from_hf_config)."""
  path = os.path.join(directory, 'config.json')
  if not os.path.exists(path):
    raise errors.CheckpointError(
        f'{directory} has no config.json; it is not a Hugging Face '
        'checkpoint directory')
  try:
    with open(path) as f:
      raw = json.load(f)
  except (OSError, ValueError) as e:
    raise errors.CheckpointError(f'cannot parse {path}: {e}') from None
  if not isinstance(raw, dict):
    raise errors.CheckpointError(f'{path} does not hold a JSON object')
  return config_lib.from_hf_config(raw)


def load_params(directory: str, config: config_lib.ModelConfig,
                dtype=jnp.float32, mesh=None) -> transformer.Params:
  """Reads every parameter of `config` from the safetensors in `directory`.

  Each tensor is read on its own (its file mapped only meanwhile), written
  once into this port's layout and `dtype`, and handed to JAX, which on CPU
  adopts it without a copy. On top of the parameters loaded so far, the host
  then holds the tensor being read twice at most (as stored and converted);
  tensors are read largest first, so the big ones pass while little else is
  held and the peak is about the parameters' size. Every checkpoint key must
  be used and every parameter filled. With a `mesh`, each parameter is placed
  directly into the sharding that parallel/mesh.py's rules give it: each
  process's devices receive only their shards, and one full tensor at a time
  passes through the host on the way.

  Raises:
    errors.CheckpointError: on missing, unexpected or misshapen tensors and on
      unreadable files.
  """
  table = hf_mapping.param_table(config)
  abstract_state = transformer.abstract_params(config, dtype)
  abstract = nnx.to_flat_state(abstract_state)
  shardings = (None if mesh is None else
               mesh_lib.param_shardings(abstract_state, mesh))
  values = {}
  with TensorReader(directory) as reader:
    _check_keys(reader, table, config, directory)
    for path, var in sorted(abstract, key=lambda pv: -pv[1].size):
      entry = table.get(path)
      if entry is None:
        raise errors.CheckpointError(f'no checkpoint key for parameter {path}')
      host = _read_in_layout(reader, entry, var)
      if shardings is None:
        values[path] = jax.device_put(host)
      else:
        values[path] = jax.make_array_from_callback(
            host.shape, shardings[path], _Shards(host))
      del host
  return nnx.from_flat_state([(path, var.replace(values.pop(path)))
                              for path, var in abstract])


class _Shards:
  """`make_array_from_callback`'s callback: each distinct shard of `host` once.

  A shard is its own aligned array (unless it is all of `host`): on CPU, JAX
  adopts such an array without copying it, so devices holding the same shard
  share it, and no shard keeps the rest of `host` alive, as a view would.
  """

  def __init__(self, host: np.ndarray):
    self._host = host
    self._made = {}

  def __call__(self, index: tuple[slice, ...]) -> np.ndarray:
    key = tuple((s.start, s.stop, s.step) for s in index)
    if key not in self._made:
      part = self._host[index]
      if part.size < self._host.size:
        own = aligned_empty(part.shape, part.dtype)
        np.copyto(own, part)
        part = own
      self._made[key] = part
    return self._made[key]


def load_model(path: str, *, dtype=jnp.float32, tokenizer: bool = True,
               mesh=None) -> Model:
  """Loads a transformers Gemma-2 or Llama-3.x checkpoint directory.

  Args:
    path: a local directory with config.json and model.safetensors (or
      sharded model-*.safetensors + model.safetensors.index.json), as written
      by transformers 4.x or 5.x; or a hub id where the hub is reachable.
    dtype: parameter dtype (e.g. jnp.float32, jnp.bfloat16).
    tokenizer: also load the AutoTokenizer saved in the same directory, when
      its files are there.
    mesh: optional jax.sharding.Mesh (parallel.mesh.make_mesh); parameters
      are placed directly into their shardings while being read.

  Returns:
    A Model.

  Raises:
    errors.CheckpointError, errors.ConfigError: with a one-line message.
  """
  directory = resolve_checkpoint_dir(path)
  config = read_config(directory)
  params = load_params(directory, config, dtype, mesh=mesh)
  tok = None
  if tokenizer and any(os.path.exists(os.path.join(directory, f))
                       for f in _TOKENIZER_FILES):
    import transformers  # pylint: disable=g-import-not-at-top
    try:
      tok = transformers.AutoTokenizer.from_pretrained(directory)
    except Exception as e:  # pylint: disable=broad-except
      raise errors.CheckpointError(
          f'cannot load the tokenizer in {directory}: '
          f'{type(e).__name__}: {str(e).splitlines()[0][:160]}') from None
  return Model(config=config, params=params, tokenizer=tok, path=directory)


def _check_keys(reader: TensorReader, table: dict[Any, hf_mapping.Entry],
                config: config_lib.ModelConfig, directory: str) -> None:
  """Raises unless the checkpoint holds exactly the tensors `table` needs."""
  keys = set(reader.keys())
  wanted = {e.hf_key for e in table.values()}
  extra = sorted(k for k in keys - wanted
                 if not k.endswith(_IGNORABLE_SUFFIXES))
  missing = sorted(wanted - keys)
  if config.tie_embeddings and 'lm_head.weight' in extra:
    extra.remove('lm_head.weight')  # some exports store the tied copy
  if missing:
    raise errors.CheckpointError(
        f'checkpoint in {directory} lacks {len(missing)} tensor(s), first '
        f'{missing[0]}; it does not match its config.json')
  if extra:
    raise errors.CheckpointError(
        f'checkpoint in {directory} has {len(extra)} tensor(s) this port '
        f'does not use, first {extra[0]}; unsupported architecture variant')


def _read_in_layout(reader: TensorReader, entry: hf_mapping.Entry,
                    var) -> np.ndarray:
  """The tensor of `entry` in this port's layout and `var`'s dtype.

  The stored [out, in] tensor is copied once into a fresh 64-byte aligned
  array, transposing and casting on the way (`entry.to_jax` gives numpy
  views); XLA's CPU client adopts such an array as a device buffer without
  copying it.
  """
  stored = reader.get(entry.hf_key)
  want = tuple(var.shape)
  try:
    view = entry.to_jax(stored)
  except ValueError:  # a reshape that the stored size does not allow
    view = None
  if view is None or view.shape != want:
    raise errors.CheckpointError(
        f'tensor {entry.hf_key} has shape {stored.shape}, which does not fit '
        f'the config (expected {want} after transposition)')
  out = aligned_empty(want, var.dtype)
  try:
    copy_in_slabs(out, view)
  except (TypeError, ValueError) as e:
    raise errors.CheckpointError(
        f'cannot convert tensor {entry.hf_key} ({stored.dtype}) to '
        f'{np.dtype(var.dtype).name}: {e}') from None
  return out


def copy_in_slabs(out: np.ndarray, view: np.ndarray) -> None:
  """`np.copyto(out, view)`, casting as needed, one slab of `view` at a time.

  `view` is mostly a transposed view of a stored tensor. Copied whole, numpy
  walks the source across its rows at cache-miss speed; slabs of about
  `_SLAB_BYTES` along the axis with the largest stride (the source's rows)
  keep both sides in cache. Each slab is cast in the source's memory order
  first.
  """
  if view.ndim == 0 or view.size == 0:
    np.copyto(out, view, casting='unsafe')
    return
  axis = int(np.argmax(view.strides))
  row_bytes = (view.strides[axis] // view.itemsize
               * max(view.itemsize, out.itemsize))
  step = max(1, _SLAB_BYTES // max(1, row_bytes))
  index = [slice(None)] * view.ndim
  for start in range(0, view.shape[axis], step):
    index[axis] = slice(start, start + step)
    part = view[tuple(index)]
    if part.dtype != out.dtype:
      part = part.astype(out.dtype, order='K', casting='unsafe')
    np.copyto(out[tuple(index)], part)


def aligned_empty(shape: tuple[int, ...], dtype, align: int = 64
                  ) -> np.ndarray:
  """An uninitialised C-contiguous array whose data starts `align`-aligned."""
  dtype = np.dtype(dtype)
  nbytes = math.prod(shape) * dtype.itemsize
  raw = np.empty(nbytes + align, np.uint8)
  offset = -raw.ctypes.data % align
  return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def export_params(params: transformer.Params,
                  config: config_lib.ModelConfig) -> dict[str, jax.Array]:
  """The transformers state dict {key: [out, in] array} for `params`."""
  table = hf_mapping.param_table(config)
  return {table[path].hf_key: table[path].to_hf(var[...])
          for path, var in nnx.to_flat_state(params)}
