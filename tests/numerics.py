"""Tolerances derived from the computation's scale, not from the machine.

Two computations in float32 that are the same math in a different order
(another CPU's reduction blocking, jit against eager, a prefix cache against a
full pass) differ by rounding only, and rounding is relative: it scales with
the magnitudes involved. So every tolerance in the suite is a multiple of the
float32 unit roundoff `U32` times a scale read off the data:

* **One sum of n terms** (a dot product, a matmul column plus its bias):
  `sum_bound`. The worst case over every summation order is
  (n - 1) * U32 * sum |terms| (Higham, *Accuracy and Stability of Numerical
  Algorithms*, 2002, section 4.2), far from what any order reaches. We use the
  probabilistic bound of Higham and Mary (SIAM J. Sci. Comput. 41(5), 2019):
  for any order, |error| <= LAMBDA * sqrt(n) * U32 * sum |terms| fails with
  probability at most 2 * exp(-LAMBDA**2 / 2) per element (about 1e-14 with
  LAMBDA = 8). It is zero where the terms are zero, so it stays tight where
  the math is exact.
* **A composite computation** (a forward pass, a sweep, a fitted model):
  `assert_close` with `ulps` units of `EPS32` relative to the reference's
  largest magnitude (or a scale the caller names). Each test states why its
  `ulps` fits the depth of the computation it compares.
"""

import math

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23, the spacing of floats at 1
U32 = EPS32 / 2  # unit roundoff: the largest relative error of one rounding
LAMBDA = 8.0
# Two float32 evaluations of one forward pass (another op order, a prefix
# cache, a trimmed last layer, a mesh, jit against eager) agree within this
# many epsilons of the output's largest magnitude. The port's parity with
# transformers measures 2 to 12 (tests/models/test_parity.py).
FORWARD_ULPS = 64


def sum_bound(abs_terms, n: int) -> np.ndarray:
  """Elementwise rounding bound of float32 sums of `n` terms in any order.

  Args:
    abs_terms: per result element, the sum of the absolute values of the
      terms that were added (for `x @ w + b`: `|x| @ |w| + |b|`).
    n: the number of terms added per element (counting biases).

  Returns:
    LAMBDA * sqrt(n + 1) * U32 * abs_terms, as float64 (the + 1 is the
    rounding of the result itself).
  """
  return LAMBDA * math.sqrt(n + 1) * U32 * np.asarray(abs_terms, np.float64)


def abs_matmul(x, w, *biases) -> np.ndarray:
  """sum |terms| of `x @ w + sum(biases)` in float64, for `sum_bound`."""
  out = np.abs(np.asarray(x, np.float64)) @ np.abs(np.asarray(w, np.float64))
  for b in biases:
    out = out + np.abs(np.asarray(b, np.float64))
  return out


def assert_within(got, want, bound, what: str = '') -> None:
  """|got - want| <= bound elementwise; the message gives the worst ratio."""
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  err = np.abs(got - want)
  bound = np.broadcast_to(np.asarray(bound, np.float64), err.shape)
  bad = err > bound
  if bad.any():
    i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)),
                         err.shape)
    raise AssertionError(
        f'{what}: {int(bad.sum())} of {err.size} elements exceed their '
        f'rounding bound; worst at {tuple(int(j) for j in i)}: '
        f'|{got[i]!r} - {want[i]!r}| = {err[i]:.3e} > {bound[i]:.3e}')


def assert_close(got, want, *, ulps: float, scale=None, what: str = '') -> None:
  """|got - want| <= ulps * EPS32 * scale, elementwise.

  Args:
    got: the value under test.
    want: the reference.
    ulps: the allowed error in float32 epsilons of `scale`.
    scale: the magnitude the error is relative to; default: max |want|
      (a composite computation's rounding scales with its largest values).
    what: names the comparison in the failure message.
  """
  want64 = np.asarray(want, np.float64)
  if scale is None:
    scale = float(np.max(np.abs(want64))) if want64.size else 0.0
  assert_within(got, want64, ulps * EPS32 * np.asarray(scale, np.float64),
                what or f'within {ulps} ulps of scale')
