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
