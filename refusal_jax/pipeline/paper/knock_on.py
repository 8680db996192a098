"""Knock-on of the stage-3 ablation on the stage-2 features' activations.

The note on the paper (paper.md section 2.8b): ablating the stage-3 features
deactivates about 12% (up to 44%) of the active stage-2 features on LLaMA,
with an 81% drop in activation; on Gemma about 3% and no drop. A drop of 81%
with only 12% deactivated is read as the mean relative drop over all active
stage-2 features, not over the deactivated ones alone.

Units are (prompt, feature) pairs: a stage-2 feature on a prompt, with its
activation summarised over the prompt's tokens by its peak (`activity.
per_prompt`, 'max'). A pair is active when its clean peak exceeds `eps`, and
deactivated when it is active and its peak under the ablation does not.

Axis letters: P prompts, T tokens, I the stage-2 features.
"""

from typing import Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.pipeline.paper import activity


def knock_on(clean, ablated, *, eps: float = 0.0,
             exclude: Sequence[int] = ()) -> dict:
  """Deactivation and activation drop of the stage-2 features.

  Args:
    clean: [P, T, I] or [P, I] stage-2 activations without the ablation.
    ablated: the same with the stage-3 features ablated.
    eps: active means above this.
    exclude: feature indices left out (e.g. stage-2 features that the
      stage-3 set ablates directly, whose drop is by construction).

  Returns:
    {'n_active': active pairs, 'n_deactivated', 'deactivated_fraction',
    'mean_drop': mean of clean - ablated peaks over active pairs,
    'mean_relative_drop': mean of (clean - ablated) / clean over them
    (negative where activations rise)}; fractions 0.0 without active pairs.
  """
  before = activity.per_prompt(clean)
  after = activity.per_prompt(ablated)
  if before.shape != after.shape:
    raise errors.ConfigError(f'clean activations {before.shape} and ablated '
                             f'{after.shape} differ in shape')
  keep = np.ones(before.shape[-1], bool)
  keep[list(exclude)] = False
  on = activity.active(before, eps) & keep
  off = on & ~activity.active(after, eps)
  n_on = int(on.sum())
  drop = (before - after)[on]
  return dict(
      n_active=n_on, n_deactivated=int(off.sum()),
      deactivated_fraction=float(off.sum() / n_on) if n_on else 0.0,
      mean_drop=float(drop.mean()) if n_on else 0.0,
      mean_relative_drop=float((drop / before[on]).mean()) if n_on else 0.0)
