"""The factorization machine recovers pairwise interactions a linear probe misses."""

import jax.numpy as jnp
import numpy as np

import numerics
from refusal_jax import fm


def _pairwise_bruteforce(params, x):
  v = np.asarray(params['v'])
  out = np.full(len(x), float(params['w0'])) + x @ np.asarray(params['w'])
  for i in range(x.shape[1]):
    for j in range(i + 1, x.shape[1]):
      out += (v[i] @ v[j]) * x[:, i] * x[:, j]
  return out


def test_prediction_equals_the_pairwise_sum():
  rng = np.random.RandomState(0)
  params = {'w0': np.float32(0.3), 'w': rng.randn(7).astype(np.float32),
            'v': rng.randn(7, 3).astype(np.float32)}
  x = (rng.rand(20, 7) < 0.5).astype(np.float32)
  # predict uses ((sum v x)^2 - sum v^2 x^2) / 2: its rounding scales with
  # the squared sums of |v x|, not with the pairwise terms themselves
  terms = (abs(params['w0']) + np.abs(x) @ np.abs(params['w'])
           + ((np.abs(x) @ np.abs(params['v'])) ** 2).sum(-1))
  numerics.assert_within(fm.predict(params, jnp.asarray(x)),
                         _pairwise_bruteforce(params, x),
                         numerics.sum_bound(terms, 4 * x.shape[1] + 1),
                         'FM prediction')


def test_fm_finds_an_and_interaction_the_probe_cannot():
  # y drops only when features 2 AND 5 are both ablated (a redundant pair).
  rng = np.random.RandomState(1)
  x = (rng.rand(600, 10) < 0.5).astype(np.float32)
  y = 2.0 - 3.0 * x[:, 2] * x[:, 5] + 0.1 * x[:, 0] + 0.01 * rng.randn(600)
  kw = dict(l2=1e-4, steps=1500, lr=0.05)
  f = fm.fit(x[:500], y[:500], x[500:], y[500:], rank=4, **kw)
  lin = fm.fit(x[:500], y[:500], x[500:], y[500:], rank=0, **kw)
  assert f.val_loss < 0.05 < lin.val_loss
  assert sorted(fm.greedy_set(f.params, 10, 2)) == [2, 5]
  effects = fm.marginal_effects(f.params)
  assert set(np.argsort(effects)[:2]) == {2, 5}
