"""Stage 3's ablation sweep: the top K of a feature ranking, K on a grid.

The note on the paper (paper.md section 2.8b) ablates the top K features of
the FM's ranking and of the linear probe's, with K swept from 100 to 2000 on
pools of a few thousand features. `k_grid` scales such a grid to the pool:
geometric from `min_fraction` of the pool to `max_fraction` of it.
"""

from typing import Any, Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.pipeline.paper.counts import JailbreakFn, asr_counts

def k_grid(pool_size: int, *, n_points: int = 8, min_fraction: float = 0.05,
           max_fraction: float = 1.0) -> list[int]:
  """Geometric grid of K, scaled to the pool.

  Args:
    pool_size: features in the pool.
    n_points: grid points before rounding (duplicates after rounding to
      integers are merged, so small pools get fewer).
    min_fraction: smallest K as a fraction of the pool (at least 1).
    max_fraction: largest K as a fraction of the pool.

  Returns:
    Increasing distinct K in [1, pool_size].
  """
  if pool_size < 1 or n_points < 1 or not (
      0 < min_fraction <= max_fraction <= 1):
    raise errors.ConfigError(
        f'K grid over a pool of {pool_size} with {n_points} points from '
        f'{min_fraction} to {max_fraction}: need pool >= 1, points >= 1 and '
        '0 < min_fraction <= max_fraction <= 1')
  lo = max(1, round(min_fraction * pool_size))
  hi = max(lo, round(max_fraction * pool_size))
  grid = np.geomspace(lo, hi, n_points) if n_points > 1 else [hi]
  return sorted({min(pool_size, max(1, int(round(k)))) for k in grid})


def asr_by_k(rankings: dict, ks: Sequence[int], candidates: Sequence[Any],
             jailbreak_fn: JailbreakFn) -> dict:
  """Jailbreaks with the top K of each ranking ablated, for every K.

  Sets that two rankings (or two K past a ranking's end) share are run once.

  Args:
    rankings: {name: candidate indices, most important first}.
    ks: the K grid.
    candidates: the candidate features the indices point into.
    jailbreak_fn: a feature list -> [P] bool, jailbroken per prompt.

  Returns:
    {name: [{'k', 'asr', 'asr_count'}] in grid order}.
  """
  memo = {}
  out = {}
  for name, ranking in rankings.items():
    rows = []
    for k in ks:
      key = tuple(sorted(int(i) for i in ranking[:k]))
      if key not in memo:
        memo[key] = asr_counts(jailbreak_fn([candidates[i] for i in key]))
      rows.append(dict(k=int(k), **memo[key]))
    out[name] = rows
  return out
