"""Loading a transformers checkpoint directory into this port's parameters."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from refusal_jax import errors
from refusal_jax.checkpoints import hf_mapping
from refusal_jax.checkpoints.safetensors_io import TensorReader
from refusal_jax.models import config as config_lib
from refusal_jax.models import transformer
from refusal_jax.parallel import mesh as mesh_lib

# Weights transformers may store that carry no parameters of their own.
_IGNORABLE_SUFFIXES = ('.rotary_emb.inv_freq',)


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

  Each tensor is read lazily, transformed to this port's layout and cast to
  `dtype`. Every checkpoint key must be used and every parameter filled.
  With a `mesh`, each parameter is placed directly into the sharding that
  parallel/mesh.py's rules give it: only one tensor at a time is held on the
  host, and each device receives only its shard.

  Raises:
    errors.CheckpointError: on missing, unexpected or misshapen tensors and on
      unreadable files.
  """
  table = hf_mapping.param_table(config)
  abstract_state = transformer.abstract_params(config, dtype)
  abstract = nnx.to_flat_state(abstract_state)
  shardings = (None if mesh is None else
               mesh_lib.param_shardings(abstract_state, mesh))
  with TensorReader(directory) as reader:
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
    leaves = []
    for path, var in abstract:
      entry = table.get(path)
      if entry is None:
        raise errors.CheckpointError(f'no checkpoint key for parameter {path}')
      value = entry.to_jax(reader.get(entry.hf_key))
      if tuple(value.shape) != tuple(var.shape):
        raise errors.CheckpointError(
            f'tensor {entry.hf_key} has shape {tuple(reader.shape(entry.hf_key))}'
            f', which does not fit the config (expected {tuple(var.shape)} '
            'after transposition)')
      if shardings is None:
        value = jnp.asarray(value, dtype)
      else:
        host = np.asarray(jnp.asarray(value, dtype))
        value = jax.make_array_from_callback(
            host.shape, shardings[path], lambda idx, host=host: host[idx])
      leaves.append((path, var.replace(value)))
  return nnx.from_flat_state(leaves)


def export_params(params: transformer.Params,
                  config: config_lib.ModelConfig) -> dict[str, jax.Array]:
  """The transformers state dict {key: [out, in] array} for `params`."""
  table = hf_mapping.param_table(config)
  return {table[path].hf_key: table[path].to_hf(var[...])
          for path, var in nnx.to_flat_state(params)}
