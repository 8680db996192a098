"""Training checkpoints with orbax: open a directory and resume from it."""

from typing import Any

import jax
import orbax.checkpoint as ocp


def open_or_resume(directory: str, state: Any, max_to_keep: int
                   ) -> tuple[ocp.CheckpointManager, Any, int]:
  """Opens an orbax checkpoint directory and restores its latest step.

  Args:
    directory: the checkpoint directory (created when missing).
    state: the freshly initialised training state (a pytree); its shapes and
      dtypes are those restored.
    max_to_keep: checkpoints kept by the manager.

  Returns:
    (manager, state, step): `state` restored from the latest checkpoint and
    its step, or the given state and 0 when there is none.
  """
  manager = ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True))
  start = manager.latest_step() or 0
  if start:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state = manager.restore(start, args=ocp.args.StandardRestore(abstract))
  return manager, state, start
