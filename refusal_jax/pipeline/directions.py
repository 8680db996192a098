"""Difference-in-means refusal directions (Arditi et al. 2024).

Arditi et al., "Refusal in Language Models Is Mediated by a Single Direction"
(2024), take the mean residual stream entering each decoder block (resid_pre)
at each post-instruction token position over harmful prompts, subtract the
same mean over harmless prompts, and use r[i, l] = mu_harmful - mu_harmless as
candidate refusal directions, one per (position i, layer l).

Prompts are left-padded, so the post-instruction tokens of every row are the
last columns: position -n..-1 is column T - n..T - 1.

Axis letters: see refusal_jax/axes.py.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.models import matmul_precision
from refusal_jax.models import sites
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig


@functools.partial(jax.jit,
                   static_argnames=('config', 'layers', 'n_positions'))
def _batch_sum(params, config: ModelConfig, ids: jax.Array, mask: jax.Array,
               row_weight: jax.Array, *, layers: tuple[int, ...],
               n_positions: int) -> jax.Array:
  """Sum over rows of resid_pre at the last positions: [P, L, D] float32."""
  b, t = ids.shape
  cols = jnp.broadcast_to(jnp.arange(t - n_positions, t, dtype=jnp.int32),
                          (b, n_positions))
  out = transformer.forward(
      params, config, ids, attention_mask=mask,
      capture=[(sites.RESID_PRE, l) for l in layers], capture_positions=cols,
      stop_layer=max(layers) + 1)
  acts = jnp.stack([out.captured[(sites.RESID_PRE, l)] for l in layers],
                   axis=2).astype(jnp.float32)  # [B, P, L, D]
  return jnp.einsum('BPLD,B->PLD', acts, row_weight)


def mean_activations(params, config: ModelConfig, ids, mask, *,
                     layers: Sequence[int], n_positions: int,
                     batch_size: int) -> np.ndarray:
  """Mean resid_pre activation at the last `n_positions` tokens.

  One jitted forward per batch captures only resid_pre of `layers` at the
  last `n_positions` columns and stops after the deepest requested layer. The
  last batch is padded with repeated rows of weight 0, so every batch has the
  same shape; sums are accumulated in float32 and divided once. Matmuls
  follow the 'auto' precision policy (models/matmul_precision.py).

  Args:
    params: model parameters.
    config: the architecture.
    ids: [B, T] left-padded prompt ids.
    mask: [B, T] 1 at real tokens.
    layers: layers l whose resid_pre[l] is averaged.
    n_positions: P, the number of trailing (post-instruction) positions.
    batch_size: rows per forward pass.

  Returns:
    [P, L, D] float32 means; index p is position p - P (so [-1] is the last
    token), index l follows `layers`.

  Raises:
    errors.ConfigError: no layers, a layer out of range, or bad sizes.
    errors.PromptError: no prompts, or a row with fewer than `n_positions`
      real tokens at the end.
  """
  layers = tuple(int(l) for l in layers)
  if not layers or not all(0 <= l < config.num_layers for l in layers):
    raise errors.ConfigError(
        f'layers {list(layers)} must be a non-empty subset of '
        f'[0, {config.num_layers})')
  if n_positions < 1 or batch_size < 1:
    raise errors.ConfigError(
        f'n_positions ({n_positions}) and batch_size ({batch_size}) must be '
        '>= 1')
  ids = np.asarray(ids, np.int32)
  mask = np.asarray(mask, np.int32)
  if ids.ndim != 2 or ids.shape != mask.shape or not ids.shape[0]:
    raise errors.PromptError(
        f'ids {list(ids.shape)} and mask {list(mask.shape)} must be the same '
        'non-empty [B, T] shape')
  if ids.shape[1] < n_positions or not mask[:, -n_positions:].all():
    raise errors.PromptError(
        f'every row needs its last {n_positions} columns to be real tokens '
        '(left padding); encode the prompts with refusal_jax.data.chat')
  n = ids.shape[0]
  total = np.zeros((n_positions, len(layers), config.d_model), np.float32)
  with matmul_precision.scope('auto', matmul_precision.params_dtype(params)):
    for start in range(0, n, batch_size):
      rows = np.arange(start, start + batch_size)
      weight = (rows < n).astype(np.float32)
      rows = np.minimum(rows, n - 1)
      total += np.asarray(_batch_sum(
          params, config, ids[rows], mask[rows], weight, layers=layers,
          n_positions=n_positions))
  return total / np.float32(n)


def diff_in_means(params, config: ModelConfig, harmful, harmless, *,
                  layers: Sequence[int], n_positions: int,
                  batch_size: int) -> np.ndarray:
  """Candidate refusal directions r = mu_harmful - mu_harmless (Arditi et al.).

  Args:
    params: model parameters.
    config: the architecture.
    harmful: (ids [B, T], mask [B, T]) of left-padded harmful prompts.
    harmless: (ids [B', T'], mask [B', T']) of left-padded harmless prompts.
    layers: layers l of resid_pre[l].
    n_positions: P trailing (post-instruction) positions.
    batch_size: rows per forward pass.

  Both sets are left-padded to the longer one's length (padding the mask
  with 0 changes no real token's activations), so that one compiled pass
  serves both.

  Returns:
    [P, L, D] float32 directions (not normalised).
  """
  t = max(np.shape(harmful[0])[1], np.shape(harmless[0])[1])
  pad = lambda a: np.pad(np.asarray(a), ((0, 0), (t - np.shape(a)[1], 0)))
  kw = dict(layers=layers, n_positions=n_positions, batch_size=batch_size)
  return (mean_activations(params, config, *map(pad, harmful), **kw) -
          mean_activations(params, config, *map(pad, harmless), **kw))
