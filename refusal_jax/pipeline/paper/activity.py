"""Per-prompt summaries of SAE activations over tokens, and which are active.

Activations of the candidate features come as [P, T, I] (prompts, tokens,
candidates; 0 at padding, as `pipeline.latents.site_latents` leaves them)
or already summarised per prompt as [P, I]. A feature is active where its
activation exceeds `eps` (0 by default: any firing counts).

Axis letters (refusal_jax/axes.py): P prompts, T tokens, I candidate
features (the flattened (SAE, latent) list).
"""

import numpy as np

from refusal_jax import errors

REDUCTIONS = ('max', 'mean')


def per_prompt(acts, reduce: str = 'max', mask=None) -> np.ndarray:
  """[P, I] per-prompt summary of [P, T, I] activations ([P, I] passes).

  Args:
    acts: [P, T, I] or [P, I] activations.
    reduce: 'max' (the feature's peak on the prompt) or 'mean' (over the
      prompt's real tokens).
    mask: [P, T], 1 at real tokens; needed for 'mean' over padded prompts
      (None: every position is real).

  Returns:
    [P, I] float64.
  """
  a = np.asarray(acts, np.float64)
  if a.ndim == 2:
    return a
  if a.ndim != 3:
    raise errors.ConfigError(
        f'activations of shape {a.shape}: expected [P, T, I] or [P, I]')
  if reduce == 'max':
    return a.max(axis=1)
  if reduce == 'mean':
    m = (np.ones(a.shape[:2]) if mask is None
         else np.asarray(mask, np.float64))
    return np.einsum('PTI,PT->PI', a, m) / np.maximum(m.sum(1), 1.0)[:, None]
  raise errors.ConfigError(
      f'token reduction {reduce!r}: expected one of {REDUCTIONS}')


def active(acts, eps: float = 0.0) -> np.ndarray:
  """[..., I] bool, activation above `eps`, elementwise."""
  return np.asarray(acts, np.float64) > eps
