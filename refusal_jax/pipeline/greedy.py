"""Stage 2: greedy filtering of the stage-1 features to a minimal jailbreak set.

A feature set "flips" when, with its latents edited (zero-ablated by
default), the refusal metric of at least `min_flip_fraction` of the harmful
prompts falls below `threshold`. Two orders (config `greedy.order`):

* 'backward' (prune, default): start from all K stage-1 features (which must
  flip); at each step try removing every remaining feature, in one batched
  call, and drop the one whose removal keeps the set flipping with the lowest
  mean metric; stop when no removal keeps it flipping.
* 'forward' (grow, as the predecessor's `minimize_circuit`): start empty; at
  each step add the feature that lowers the mean metric most given the set
  already chosen; stop as soon as the set flips (or at `max_size`).

Every step evaluates all remaining candidates with `engine.feature_sweep`
(features of `ctx.space`: one SAE's latents, or (SAE, latent) pairs).
"""

import numpy as np
from absl import logging

from refusal_jax import errors
from refusal_jax.pipeline.context import Context
from refusal_jax.sweeps import engine


def _threshold(ctx: Context) -> float:
  thr = ctx.config.greedy.threshold
  return ctx.metric.threshold_default if thr is None else float(thr)


def evaluate_sets(ctx: Context, ps, features, masks, progress=None,
                  op: str = 'greedy'):
  """[M, P] metric with each row of masks [M, K] over `features` edited.

  Features are of `ctx.space`; each SAE's are edited at its own site.

  `op` names the sweep in ctx.chunk_sizes (each caller keeps its own chunk
  sizes when one runs out of memory).
  """
  g = ctx.config.greedy
  return engine.feature_sweep(
      ctx.model.params, ctx.model.config, ctx.space, ps.ids, ps.mask,
      np.asarray(features), np.asarray(masks, np.float32),
      metric=ctx.metric, mode=g.mode, value=g.value, chunks=ctx.chunk_sizes,
      op=op, skip_ids=ctx.skip_array, progress=progress, mesh=ctx.mesh)


def run(ctx: Context, features: list[int], progress=None) -> dict:
  """Stage 2. Returns the JSON summary (minimal set and trajectory)."""
  g = ctx.config.greedy
  if not features:
    raise errors.ConfigError('stage 1 found no features to filter')
  ps = ctx.prompts['harmful_train']
  ps = ps.subset(range(min(g.n_prompts, len(ps))))
  thr = _threshold(ctx)
  k = len(features)

  memo = ctx.memo('greedy')
  steps = iter(range(10**9))

  def score(masks):
    vals = memo(f'step{next(steps):04d}', lambda: dict(v=evaluate_sets(
        ctx, ps, features, masks, progress)))['v']
    return vals.mean(1), (vals < thr).mean(1)

  trajectory = []
  if g.order == 'backward':
    cur = np.ones(k, np.float32)
    mean, frac = score(cur[None])
    trajectory.append(dict(size=k, mean_metric=float(mean[0]),
                           flip_fraction=float(frac[0])))
    flips = frac[0] >= g.min_flip_fraction
    if not flips:
      logging.warning('all %d stage-1 features together flip only %.2f of '
                      'prompts; keeping the full set', k, frac[0])
    while flips and cur.sum() > 1:
      live = np.flatnonzero(cur)
      rows = np.repeat(cur[None], len(live), axis=0)
      rows[np.arange(len(live)), live] = 0.0
      mean, frac = score(rows)
      ok = frac >= g.min_flip_fraction
      if not ok.any():
        break
      pick = int(np.argmin(np.where(ok, mean, np.inf)))
      cur = rows[pick]
      trajectory.append(dict(size=int(cur.sum()), removed=int(
          features[live[pick]]), mean_metric=float(mean[pick]),
                             flip_fraction=float(frac[pick])))
  elif g.order == 'forward':
    cur = np.zeros(k, np.float32)
    flips = False
    max_size = g.max_size or k
    while not flips and cur.sum() < min(max_size, k):
      free = np.flatnonzero(cur == 0)
      rows = np.repeat(cur[None], len(free), axis=0)
      rows[np.arange(len(free)), free] = 1.0
      mean, frac = score(rows)
      pick = int(np.argmin(mean))
      cur = rows[pick]
      flips = frac[pick] >= g.min_flip_fraction
      trajectory.append(dict(size=int(cur.sum()), added=int(
          features[free[pick]]), mean_metric=float(mean[pick]),
                             flip_fraction=float(frac[pick])))
  else:
    raise errors.ConfigError(
        f"greedy.order {g.order!r}: expected 'backward' or 'forward'")
  minimal = [int(features[i]) for i in np.flatnonzero(cur)]
  return dict(features=minimal, flips=bool(flips), threshold=thr,
              mean_metric=trajectory[-1]['mean_metric'],
              flip_fraction=trajectory[-1]['flip_fraction'],
              trajectory=trajectory, n_prompts=len(ps), order=g.order)
