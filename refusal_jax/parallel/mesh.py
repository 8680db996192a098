"""One place that builds the device mesh and maps logical axes onto it.

Mesh axes: `data` (prompts and ablation masks), `fsdp` (parameters sharded
along d_model), `tensor` (heads, MLP width, vocabulary). Sizes come from config;
-1 means "all remaining devices". Parameters and activations carry logical
axis names (below); `RULES` maps each to a mesh axis or to None (replicated).
A dimension that a mesh axis does not divide is replicated on that axis
instead (best effort), and the choice is logged.

Model code never places arrays: shardings are derived here and given to the
loader (`load_model(..., mesh=...)`) and to the sweep engine.

Multi-host (`jax.distributed`, one process per host): the mesh spans the
devices of every process, ordered process by process, so with the default
sizes the 'data' axis runs across hosts and 'fsdp'/'tensor' stay inside one.
Every process runs the same program on the same full inputs (the same
prompts, the same mask arrays); `put_rows` and `put_replicated` then copy to
each process's devices only the rows those devices hold (no cross-host
traffic), so a mask chunk is split over all devices of all processes, and
`to_host` gathers the result back to every process.
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
  """A Mesh over all (or the given) devices with axes ('data','fsdp','tensor').

  Devices are ordered by (process, id), so each process's devices are
  contiguous and the outermost axis ('data') is the one that crosses hosts.
  """
  if devices is None:
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  devices = list(devices)
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


def data_size(mesh: Mesh | None) -> int:
  """Devices along 'data' (1 without a mesh)."""
  return 1 if mesh is None else int(mesh.shape['data'])


def _put(x, sharding: NamedSharding):
  """Places one leaf; across processes, each copies only its own shards.

  `jax.device_put` of a host value onto a sharding that spans processes first
  checks, with an all-gather of the whole value, that every process passed
  the same value; `make_array_from_callback` trusts that (the callers' inputs
  are identical on all processes) and transfers only the addressable shards.
  """
  if sharding.is_fully_addressable or not isinstance(
      x, (np.ndarray, np.generic, jax.Array)):
    return jax.device_put(x, sharding)
  if isinstance(x, jax.Array):
    if x.sharding == sharding:
      return x
    if not x.is_fully_addressable:
      return jax.device_put(x, sharding)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def put_rows(x, mesh: Mesh | None, logical: str = 'masks'):
  """Places x [N, ...] with its leading axis on the mesh axis of `logical`.

  Every process passes the same full value (the sweep engine's inputs are
  identical on all hosts); each process transfers only the rows of its own
  devices, the other axes are replicated. Without a mesh the value goes to
  the default device. N must be divisible by the axis size.
  """
  if mesh is None:
    return jax.numpy.asarray(x)
  x = np.asarray(x)
  spec = spec_for(x.shape, (logical,) + (None,) * (x.ndim - 1), mesh)
  return _put(x, NamedSharding(mesh, spec))


def put_replicated(tree, mesh: Mesh | None):
  """Places every leaf of tree on all devices of the mesh (or leaves it).

  Every process passes the same value and copies it to its own devices.
  """
  if mesh is None:
    return tree
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: _put(x, sharding), tree)


def to_host(x) -> np.ndarray:
  """The full value of a (possibly multi-process) array as numpy.

  A multi-process array that is not replicated is all-gathered, a collective
  every process must call.
  """
  if getattr(x, 'is_fully_addressable', True):
    return np.asarray(x)
  if x.is_fully_replicated:
    return np.asarray(x.addressable_data(0))
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def describe(mesh: Mesh) -> str:
  """A one-line description for logs: process, mesh and local devices."""
  me = jax.process_index()
  ids = sorted(d.id for d in mesh.devices.flat if d.process_index == me)
  rows = [i for i, block in enumerate(mesh.devices)
          if any(d.process_index == me for d in block.flat)]
  return (f'process {me}/{jax.process_count()}, mesh {dict(mesh.shape)}, '
          f'{len(ids)} of {mesh.size} {mesh.devices.flat[0].platform} '
          f'devices local (ids {ids}, data rows {rows})')
