"""What every experiment binary shares: distributed flags and error handling.

* `--coordinator_address`, `--num_processes`, `--process_id` call
  `jax.distributed.initialize` (on TPU pods and SLURM, `--distributed` alone
  lets JAX detect them);
* `--mesh_data`, `--mesh_fsdp`, `--mesh_tensor` size the device mesh
  (-1 = all remaining devices);
* `main_wrapper(fn)` prints a `RefusalJaxError` as one line on stderr and
  exits 1, with the traceback only under `--debug` (or `--verbosity=1`).
"""

import functools
import sys

import jax
from absl import flags
from absl import logging

from refusal_jax import errors
from refusal_jax.parallel import mesh as mesh_lib

_COORD = flags.DEFINE_string('coordinator_address', None,
                             'host:port of process 0 (multi-host runs).')
_NPROC = flags.DEFINE_integer('num_processes', None,
                              'Number of processes (multi-host runs).')
_PID = flags.DEFINE_integer('process_id', None,
                            'Index of this process (multi-host runs).')
_AUTO = flags.DEFINE_bool('distributed', False,
                          'Call jax.distributed.initialize() and let JAX '
                          'detect the cluster (TPU pods, SLURM).')
_MESH = {a: flags.DEFINE_integer(f'mesh_{a}', -1 if a == 'data' else 1,
                                 f'Size of the {a!r} mesh axis (-1 = fill).')
         for a in mesh_lib.AXES}
_DEBUG = flags.DEFINE_bool('debug', False,
                           'Show Python tracebacks for input errors.')


def init_distributed() -> None:
  """Initialises jax.distributed when the flags ask for it, then logs layout."""
  if _COORD.value or _AUTO.value:
    kwargs = {}
    if _COORD.value:
      kwargs = dict(coordinator_address=_COORD.value,
                    num_processes=_NPROC.value, process_id=_PID.value)
    try:
      jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as e:
      raise errors.ConfigError(
          f'jax.distributed.initialize failed: {str(e).splitlines()[0]}; '
          'check --coordinator_address/--num_processes/--process_id') from None


def mesh_from_flags():
  mesh = mesh_lib.make_mesh({a: f.value for a, f in _MESH.items()})
  logging.info('%s', mesh_lib.describe(mesh))
  return mesh


def main_wrapper(fn):
  """Wraps an absl main: one-line errors, non-zero exit, no traceback."""

  @functools.wraps(fn)
  def main(argv):
    try:
      init_distributed()
      return fn(argv)
    except errors.RefusalJaxError as e:
      if _DEBUG.value or logging.get_verbosity() >= logging.DEBUG:
        raise
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
      if not (isinstance(e, MemoryError) or 'RESOURCE_EXHAUSTED' in str(e)):
        raise
      print('error: out of memory on the device; lower '
            '--config.chunks.masks / --config.chunks.prompts',
            file=sys.stderr)
      sys.exit(1)

  return main
