"""Random-weight checkpoints laid out as the hub's, written shard by shard.

`write_checkpoint(config, directory)` writes config.json, sharded
`model-0000i-of-0000n.safetensors` files and `model.safetensors.index.json`
(or a single `model.safetensors` when everything fits in one shard), with the
tensor names, shapes and [out, in] layouts transformers uses. Tensors are
generated one at a time and only the tensors of one shard are in memory at
once, so a full-size checkpoint (e.g. `ModelConfig.llama31_8b()`, 16 GB) can
be written on a machine with less memory than the checkpoint.

The weights are random (normal, std 0.02; norm weights near their neutral
value), which is enough to measure loading and forward-pass memory and speed.
"""

import json
import math
import os
import re

import jax
import ml_dtypes
import numpy as np
from flax import nnx
from safetensors.numpy import save_file

from refusal_jax.checkpoints import hf_mapping
from refusal_jax.checkpoints import safetensors_io
from refusal_jax.models import config as config_lib
from refusal_jax.models import transformer

# transformers' default `max_shard_size` ("5GB").
HUB_MAX_SHARD_SIZE = 5 * 10**9
_DTYPES = {'bfloat16': ml_dtypes.bfloat16, 'float32': np.float32,
           'float16': np.float16}
# Elements generated per step, bounding the float32 scratch to 64 MiB.
_CHUNK = 1 << 24


def tensor_specs(config: config_lib.ModelConfig
                 ) -> list[tuple[str, tuple[int, ...]]]:
  """(checkpoint key, stored [out, in] shape) of every tensor of `config`.

  Ordered as transformers stores them: embeddings, layer by layer, the final
  norm, then the (untied) head.
  """
  table = hf_mapping.param_table(config)
  flat = nnx.to_flat_state(transformer.abstract_params(config))
  specs = []
  for path, var in flat:
    entry = table[path]
    stored = jax.eval_shape(entry.to_hf,
                            jax.ShapeDtypeStruct(var.shape, np.float32))
    specs.append((entry.hf_key, tuple(stored.shape)))
  return sorted(specs, key=lambda s: _storage_order(s[0]))


def _storage_order(key: str) -> tuple[int, int]:
  """Sort key: embed < layer 0 < layer 1 < ... < final norm < lm_head."""
  m = re.match(r'model\.layers\.(\d+)\.', key)
  if m:
    return (1, int(m.group(1)))
  if key.startswith('model.embed_tokens'):
    return (0, 0)
  return (2, 0 if key.startswith('model.') else 1)


def plan_shards(specs: list[tuple[str, tuple[int, ...]]], itemsize: int,
                max_shard_size: int) -> list[list[tuple[str, tuple[int, ...]]]]:
  """Splits `specs` in order into shards of at most `max_shard_size` bytes.

  As in transformers, a tensor larger than the limit gets a shard of its own.
  """
  shards, current, size = [], [], 0
  for key, shape in specs:
    nbytes = math.prod(shape) * itemsize
    if current and size + nbytes > max_shard_size:
      shards.append(current)
      current, size = [], 0
    current.append((key, shape))
    size += nbytes
  if current:
    shards.append(current)
  return shards


def random_tensor(rng: np.random.Generator, key: str, shape: tuple[int, ...],
                  config: config_lib.ModelConfig, dtype) -> np.ndarray:
  """A random tensor for `key`, generated in chunks of `_CHUNK` elements.

  Norm weights are centred on their neutral value (0 for Gemma's (1 + w)
  scaling, 1 for Llama's); everything else is N(0, 0.02^2).
  """
  centre = 0.0
  if key.endswith('norm.weight') and not config.norm_unit_offset:
    centre = 1.0
  out = np.empty(shape, dtype)
  flat = out.reshape(-1)
  for start in range(0, flat.size, _CHUNK):
    n = min(_CHUNK, flat.size - start)
    chunk = rng.standard_normal(n, dtype=np.float32)
    chunk *= np.float32(0.02)
    chunk += np.float32(centre)
    flat[start:start + n] = chunk.astype(dtype)
  return out


def _shard_names(n: int) -> list[str]:
  if n == 1:
    return [safetensors_io.SINGLE]
  return [f'model-{i + 1:05d}-of-{n:05d}.safetensors' for i in range(n)]


def write_config(config: config_lib.ModelConfig, directory: str,
                 dtype: str) -> None:
  """config.json as transformers writes it, with the stored dtype."""
  hf = config_lib.to_hf_config(config)
  hf['dtype'] = dtype
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(hf, f, indent=2, sort_keys=True)


def write_checkpoint(config: config_lib.ModelConfig, directory: str, *,
                     dtype: str = 'bfloat16',
                     max_shard_size: int = HUB_MAX_SHARD_SIZE,
                     seed: int = 0) -> str:
  """Writes a random-weight checkpoint of `config` to `directory`.

  Args:
    config: the architecture.
    directory: target directory (created; existing files are overwritten).
    dtype: stored dtype, 'bfloat16' (as on the hub), 'float32' or 'float16'.
    max_shard_size: bytes per safetensors shard at most (a single larger
      tensor gets its own shard).
    seed: random seed of the weights.

  Returns:
    `directory`.
  """
  np_dtype = _DTYPES[dtype]
  os.makedirs(directory, exist_ok=True)
  write_config(config, directory, dtype)
  specs = tensor_specs(config)
  itemsize = np.dtype(np_dtype).itemsize
  shards = plan_shards(specs, itemsize, max_shard_size)
  names = _shard_names(len(shards))
  rng = np.random.default_rng(seed)
  weight_map = {}
  for name, shard in zip(names, shards):
    tensors = {key: random_tensor(rng, key, shape, config, np_dtype)
               for key, shape in shard}
    save_file(tensors, os.path.join(directory, name),
              metadata={'format': 'pt'})
    del tensors
    weight_map.update({key: name for key, _ in shard})
  if len(shards) > 1:
    total = sum(math.prod(shape) * itemsize for _, shape in specs)
    index = {'metadata': {'total_size': total},
             'weight_map': dict(sorted(weight_map.items()))}
    with open(os.path.join(directory, safetensors_io.INDEX), 'w') as f:
      json.dump(index, f, indent=2)
  return directory


def checkpoint_bytes(directory: str) -> int:
  """Total size in bytes of the safetensors files in `directory`."""
  return sum(os.path.getsize(os.path.join(directory, f))
             for f in os.listdir(directory) if f.endswith('.safetensors'))
