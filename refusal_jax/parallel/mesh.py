"""One place that builds the device mesh and maps logical axes onto it.

Mesh axes: `data` (prompts and ablation masks), `fsdp` (parameters sharded
along d_model), `tensor` (heads, MLP width, vocabulary). Sizes come from config;
-1 means "all remaining devices". Parameters and activations carry logical
axis names (below); `RULES` maps each to a mesh axis or to None (replicated).
A dimension that a mesh axis does not divide is replicated on that axis
instead (best effort), and the choice is logged.

Model code never places arrays: shardings are derived here and given to the
loader (`load_model(..., mesh=...)`) and to the sweep engine.
"""

import math
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from refusal_jax import errors

AXES = ('data', 'fsdp', 'tensor')

# logical axis -> mesh axis (None = replicated).
RULES = {
    'batch': 'data', 'masks': 'data',
    'embed': 'fsdp', 'vocab': 'tensor', 'heads': 'tensor',
    'kv_heads': 'tensor', 'mlp': 'tensor', 'head_dim': None, 'norm': None,
}


def mesh_shape(sizes: dict[str, int], n_devices: int) -> tuple[int, ...]:
  """Resolves -1 entries of {'data', 'fsdp', 'tensor'} against n_devices.

  Raises:
    errors.ConfigError: when the sizes cannot be met with n_devices.
  """
  shape = [int(sizes.get(a, 1)) for a in AXES]
  free = [i for i, s in enumerate(shape) if s == -1]
  if len(free) > 1:
    raise errors.ConfigError('at most one mesh axis may be -1')
  fixed = math.prod(s for s in shape if s != -1)
  if fixed <= 0 or any(s == 0 or s < -1 for s in shape):
    raise errors.ConfigError(f'mesh sizes {dict(zip(AXES, shape))} must be '
                             'positive or -1')
  if free:
    if n_devices % fixed:
      raise errors.ConfigError(
          f'mesh sizes {dict(zip(AXES, shape))} do not divide the '
          f'{n_devices} available devices')
    shape[free[0]] = n_devices // fixed
  if math.prod(shape) > n_devices:
    raise errors.ConfigError(
        f'the mesh {dict(zip(AXES, shape))} needs {math.prod(shape)} devices '
        f'but only {n_devices} exist; lower mesh sizes (or use -1)')
  if math.prod(shape) != n_devices:
    raise errors.ConfigError(
        f'the mesh {dict(zip(AXES, shape))} uses {math.prod(shape)} of '
        f'{n_devices} devices; make the sizes multiply to {n_devices}')
  return tuple(shape)


def make_mesh(sizes: dict[str, int] | Any = None, devices=None) -> Mesh:
  """A Mesh over all (or the given) devices with axes ('data','fsdp','tensor')."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = dict(sizes or {'data': -1})
  shape = mesh_shape(sizes, len(devices))
  return Mesh(np.asarray(devices).reshape(shape), AXES)


def param_logical_axes(path: tuple, ndim: int) -> tuple[str | None, ...]:
  """Logical axis names of the parameter at `path` (an nnx.State path)."""
  name = path[-1] if path[-1] != 'weight' else path[-2]
  table = {
      'embed_tokens': ('vocab', 'embed'),
      'lm_head': ('embed', 'vocab'),
      'q_proj': ('embed', 'heads', 'head_dim'),
      'k_proj': ('embed', 'kv_heads', 'head_dim'),
      'v_proj': ('embed', 'kv_heads', 'head_dim'),
      'o_proj': ('heads', 'head_dim', 'embed'),
      'gate_proj': ('embed', 'mlp'),
      'up_proj': ('embed', 'mlp'),
      'down_proj': ('mlp', 'embed'),
  }
  axes = table.get(name, ('norm',) * ndim)
  if len(axes) != ndim:
    raise errors.ConfigError(f'no logical axes for parameter {path}')
  return axes


def spec_for(shape, logical: tuple, mesh: Mesh,
             rules: dict | None = None) -> PartitionSpec:
  """PartitionSpec for logical axes; undividable dims are replicated."""
  rules = RULES if rules is None else rules
  used, spec = set(), []
  for dim, name in zip(shape, logical):
    axis = rules.get(name)
    if axis is None or axis in used or mesh.shape[axis] == 1:
      spec.append(None)
      continue
    if dim % mesh.shape[axis]:
      logging.info('replicating %s (size %d) on mesh axis %s (size %d)',
                   name, dim, axis, mesh.shape[axis])
      spec.append(None)
      continue
    used.add(axis)
    spec.append(axis)
  return PartitionSpec(*spec)


def param_shardings(abstract_params, mesh: Mesh, rules: dict | None = None):
  """{path: NamedSharding} for every parameter of an (abstract) nnx.State."""
  out = {}
  for path, var in nnx.to_flat_state(abstract_params):
    logical = param_logical_axes(path, len(var.shape))
    out[path] = NamedSharding(mesh, spec_for(var.shape, logical, mesh, rules))
  return out


def data_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
  """Leading axis over 'data', the rest replicated."""
  return NamedSharding(mesh, PartitionSpec('data', *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def describe(mesh: Mesh) -> str:
  """A one-line description for logs."""
  return (f'process {jax.process_index()}/{jax.process_count()}, mesh '
          f'{dict(mesh.shape)}, {len(jax.local_devices())} local '
          f'{jax.devices()[0].platform} devices')

