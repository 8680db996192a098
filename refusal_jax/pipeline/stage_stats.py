"""Per-stage cost: XLA compile seconds and count, and peak host memory.

`StageMeter` brackets one pipeline stage. Compile time is the sum of JAX's own
compile events (tracing to a jaxpr, lowering to MLIR, the backend compile)
reported through `jax.monitoring` while the stage runs; the number of
compilations counts the backend compile events (one per jitted function,
shape and trace context, eager operations included; a hit in JAX's
persistent compilation cache counts too, with its short duration). Peak
host memory is the process's peak resident set size (VmHWM) during the
stage: Linux resets it when "5" is written to /proc/self/clear_refs; where
that is not possible the peak since the process started is reported instead
(and marked so).
"""

import os
import resource
import threading

import jax

# JAX's duration events of one compilation (jax/_src/dispatch.py).
BACKEND_COMPILE = '/jax/core/compile/backend_compile_duration'
COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration',
                  '/jax/core/compile/jaxpr_to_mlir_module_duration',
                  BACKEND_COMPILE)

_LOCK = threading.Lock()
_COMPILE_SECONDS = [0.0]
_N_COMPILES = [0]
_REGISTERED = [False]


def _on_duration(event: str, duration: float, **_) -> None:
  if event in COMPILE_EVENTS:
    with _LOCK:
      _COMPILE_SECONDS[0] += duration
      if event == BACKEND_COMPILE:
        _N_COMPILES[0] += 1


def _register() -> None:
  with _LOCK:
    if not _REGISTERED[0]:
      jax.monitoring.register_event_duration_secs_listener(_on_duration)
      _REGISTERED[0] = True


def compile_seconds() -> float:
  """Seconds JAX has spent compiling since the first meter was created."""
  with _LOCK:
    return _COMPILE_SECONDS[0]


def n_compiles() -> int:
  """Backend compilations since the first meter was created."""
  with _LOCK:
    return _N_COMPILES[0]


def _peak_rss_bytes() -> int:
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
  """Resets VmHWM to the current RSS; False where the kernel does not allow."""
  try:
    with open(f'/proc/{os.getpid()}/clear_refs', 'w') as f:
      f.write('5')
    return True
  except OSError:
    return False


class StageMeter:
  """Measures compile seconds and count, and peak host memory of a block.

  Usage:
    with StageMeter() as meter:
      ...
    meter.stats  # {'compile_seconds': ..., 'n_compiles': ...,
                 #  'peak_host_gb': ..., 'peak_host_since_start': bool}
  """

  def __init__(self):
    _register()
    self.stats = {}
    self._compile_start = 0.0
    self._n_start = 0
    self._reset = False

  def __enter__(self) -> 'StageMeter':
    self._compile_start = compile_seconds()
    self._n_start = n_compiles()
    self._reset = _reset_peak_rss()
    return self

  def __exit__(self, *exc) -> bool:
    self.stats = dict(
        compile_seconds=round(compile_seconds() - self._compile_start, 2),
        n_compiles=n_compiles() - self._n_start,
        peak_host_gb=round(_peak_rss_bytes() / 1e9, 3),
        peak_host_since_start=not self._reset)
    return False
