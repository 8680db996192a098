"""The factorization machine and how feature sets are read off it.

For a binary ablation mask x in {0, 1}^n (1 = feature ablated),

    y(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j,

with the pairwise term computed in O(n R) as
    1/2 sum_f [ (sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2 ].
A rank-0 model (no V) is the linear probe baseline.

Axis letters: N masks, n is written I here (features), R rank.
"""

import jax
import jax.numpy as jnp
import numpy as np


def predict(params: dict, x: jax.Array) -> jax.Array:
  """FM prediction.

  Args:
    params: {'w0': [], 'w': [I], 'v': [I, R] or absent (linear)}.
    x: [N, I] masks (or any real features).

  Returns:
    [N] predictions.
  """
  x = x.astype(jnp.float32)
  y = params['w0'] + x @ params['w']
  v = params.get('v')
  if v is not None and v.shape[-1]:
    xv = jnp.einsum('NI,IR->NR', x, v)
    x2v2 = jnp.einsum('NI,IR->NR', x * x, v * v)
    y = y + 0.5 * (xv * xv - x2v2).sum(-1)
  return y


def marginal_effects(params: dict, density: float = 0.5) -> np.ndarray:
  """Expected change of y when feature i is ablated, others ablated w.p. density.

  effect_i = w_i + density * sum_{j != i} <v_i, v_j>. More negative means
  ablating the feature lowers refusal more.
  """
  w = np.asarray(params['w'], np.float64)
  v = params.get('v')
  if v is None or not np.asarray(v).shape[-1]:
    return w
  v = np.asarray(v, np.float64)
  gram = v @ v.T
  return w + density * (gram.sum(1) - np.diag(gram))


def greedy_set(params: dict, n_features: int, budget: int) -> list[int]:
  """Greedily builds the ablation set that minimises the predicted y.

  Each step adds the feature whose addition gives the lowest prediction, so
  interactions with already-chosen features are taken into account (for a
  linear probe this is the `budget` most negative weights).

  Returns:
    Feature indices in the order they were added.
  """
  chosen: list[int] = []
  cur = np.zeros(n_features, np.float32)
  for _ in range(min(budget, n_features)):
    rows = np.repeat(cur[None], n_features, axis=0)
    rows[np.arange(n_features), np.arange(n_features)] = 1.0
    pred = np.array(predict(params, jnp.asarray(rows)))
    pred[chosen] = np.inf
    best = int(np.argmin(pred))
    chosen.append(best)
    cur[best] = 1.0
  return chosen
