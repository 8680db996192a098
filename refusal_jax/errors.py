"""The project's own error types.

Every error a user can cause (a wrong path, a mismatched SAE, an unsupported
config field, a malformed prompt file) is raised as a subclass of
`RefusalJaxError` with a one-line message that names the problem and the fix.
The absl binaries catch `RefusalJaxError`, print the message and exit non-zero
without a traceback.
"""


class RefusalJaxError(Exception):
  """Base class for errors caused by the user's input or environment."""


class ConfigError(RefusalJaxError):
  """A model or experiment config has a field or value that is not supported."""


class CheckpointError(RefusalJaxError):
  """A model checkpoint is missing, unreadable, corrupt or incomplete."""


class SAEError(RefusalJaxError):
  """An SAE is missing, in an unknown format, corrupt, or does not fit the model."""


class PromptError(RefusalJaxError):
  """A prompt file or prompt list is missing, empty or malformed."""


class NumericsError(RefusalJaxError):
  """NaN or Inf appeared in activations, logits or metrics."""


def check_finite(name: str, array) -> None:
  """Raises NumericsError when `array` holds NaN or Inf.

  Args:
    name: what the array is, for the message.
    array: anything numpy can read.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  a = np.asarray(array)
  if a.dtype.kind == 'f' and not np.isfinite(a).all():
    bad = int((~np.isfinite(a)).sum())
    raise NumericsError(
        f'{bad} NaN/Inf value(s) in {name}; the weights or the dtype '
        'overflow (try --config.dtype=float32) or the SAE does not fit')


def is_out_of_memory(error: BaseException) -> bool:
  """Whether `error` is the device (or host) running out of memory.

  XLA reports an allocation that does not fit as a `jax.errors.
  JaxRuntimeError` whose message contains RESOURCE_EXHAUSTED; the host
  raises `MemoryError`.

  Args:
    error: any exception.
  """
  if isinstance(error, MemoryError):
    return True
  import jax  # pylint: disable=g-import-not-at-top
  return (isinstance(error, jax.errors.JaxRuntimeError) and
          'RESOURCE_EXHAUSTED' in str(error))
