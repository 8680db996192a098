"""What every experiment binary shares: distributed flags and error handling.

* `--coordinator_address`, `--num_processes`, `--process_id` call
  `jax.distributed.initialize` (on TPU pods and SLURM, `--distributed` alone
  lets JAX detect them); on CPU (JAX_PLATFORMS=cpu) cross-process
  collectives use gloo, so several processes on one or more machines can run
  one job (BUILD.md, "Multi-host");
* `--mesh_data`, `--mesh_fsdp`, `--mesh_tensor` size the device mesh
  (-1 = all remaining devices);
* `main_wrapper(fn)` prints a `RefusalJaxError` as one line on stderr and
  exits 1, with the traceback only under `--debug` (or `--verbosity=1`);
  it also keeps other libraries' INFO lines (JAX's "Unable to initialize
  backend 'tpu'" on a machine without one, orbax's progress) off stderr:
  only this project's log lines, progress bars and warnings or worse from
  anyone are shown, unless `--debug` or `--verbosity=1` asks for everything.
"""

import functools
import json
import logging as std_logging
import os
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


def _cpu_only() -> bool:
  """Whether JAX is restricted to the CPU (JAX_PLATFORMS / jax_platforms)."""
  platforms = (jax.config.jax_platforms or
               os.environ.get('JAX_PLATFORMS', '') or '')
  return [p.strip() for p in platforms.split(',') if p.strip()] == ['cpu']


def init_distributed() -> None:
  """Initialises jax.distributed when the flags ask for it, then logs layout.

  Must run before anything touches a JAX backend. On CPU, cross-process
  collectives need an implementation: gloo (TCP) unless the environment
  already names one (JAX_CPU_COLLECTIVES_IMPLEMENTATION, e.g. mpi).

  Raises:
    errors.ConfigError: when the flags are incomplete or initialisation fails.
  """
  if not (_COORD.value or _AUTO.value):
    return
  kwargs = {}
  if _COORD.value:
    if _NPROC.value is None or _PID.value is None:
      raise errors.ConfigError('--coordinator_address needs --num_processes '
                               'and --process_id')
    if not 0 <= _PID.value < _NPROC.value:
      raise errors.ConfigError(f'--process_id={_PID.value} is not in '
                               f'[0, --num_processes={_NPROC.value})')
    kwargs = dict(coordinator_address=_COORD.value,
                  num_processes=_NPROC.value, process_id=_PID.value)
  if (_cpu_only() and
      'JAX_CPU_COLLECTIVES_IMPLEMENTATION' not in os.environ):
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(**kwargs)
  except (RuntimeError, ValueError) as e:
    raise errors.ConfigError(
        f'jax.distributed.initialize failed: {str(e).splitlines()[0]}; '
        'check --coordinator_address/--num_processes/--process_id') from None
  logging.info('jax.distributed: process %d of %d, %d local of %d %s '
               'devices', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.default_backend())


def mesh_from_flags():
  """The mesh of the --mesh_* flags over all devices of all processes."""
  mesh = mesh_lib.make_mesh({a: f.value for a, f in _MESH.items()})
  logging.info('%s', mesh_lib.describe(mesh))
  return mesh


# Source folders whose INFO log lines are the user's business: experiments/
# and the refusal_jax package.
_OWN_SOURCES = tuple(
    os.path.join(os.path.dirname(os.path.abspath(f)), '')
    for f in (__file__, errors.__file__))


class _OwnInfoOnly(std_logging.Filter):
  """Passes warnings and worse from anyone, INFO only from this project."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING or
            os.path.abspath(record.pathname).startswith(_OWN_SOURCES))


def quiet_foreign_info() -> None:
  """Drops other libraries' INFO lines unless --debug / --verbosity >= 1."""
  if _DEBUG.value or logging.get_verbosity() >= logging.DEBUG:
    return
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _OwnInfoOnly) for f in handler.filters):
    handler.addFilter(_OwnInfoOnly())


def main_wrapper(fn):
  """Wraps an absl main: one-line errors, non-zero exit, no traceback."""

  @functools.wraps(fn)
  def main(argv):
    quiet_foreign_info()
    try:
      init_distributed()
      return fn(argv)
    except errors.RefusalJaxError as e:
      if _DEBUG.value or logging.get_verbosity() >= logging.DEBUG:
        raise
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
      # Sweeps and generations halve their own chunks down to 1 before
      # giving up (sweeps/engine.py, ChunkSizes).
      if not errors.is_out_of_memory(e):
        raise
      print('error: out of memory on the device; lower '
            '--config.chunks.masks / --config.chunks.prompts / '
            '--config.eval.batch_size',
            file=sys.stderr)
      sys.exit(1)

  return main


def print_json(result, out: str = '') -> None:
  """Prints `result` as indented JSON, and writes it to `out` when given."""
  text = json.dumps(result, indent=2)
  print(text)
  if out:
    with open(out, 'w') as f:
      f.write(text + '\n')

