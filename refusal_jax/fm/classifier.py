"""A factorization machine (or linear probe) classifying prompts by activations.

Stage 3 as the note on the paper describes it (paper.md section 2.8b): a
2-way FM, embedding dimension 20, Adam with learning rate 1e-3, 20 epochs,
fitted on SAE activations to tell harmful from benign prompts (98% test
accuracy reported), its features ranked and the top K ablated; the linear
probe baseline ranks by weight magnitude. Inputs, loss, batch size, split
and ranking rule are not given; this module's choices:

* Inputs: x [N, I], one row per prompt (e.g. each candidate's peak
  activation over the prompt's tokens), divided by each feature's largest
  |x| on the training rows (features never seen get scale 1), so every
  input lies in [-1, 1], zeros stay zeros and weights are comparable across
  features whose activations differ in scale.
* Model: `fm.model.predict` gives the logit w0 + x.w + sum_{i<j} <v_i,
  v_j> x_i x_j; rank 0 is the logistic-regression probe.
* Loss: mean sigmoid cross-entropy (label 1 = harmful) plus l2 * (|w|^2 +
  |V|^2), minibatches of `batch_size`, reshuffled every epoch.
* Split: stratified and deterministic: per class, a seeded permutation,
  the first round(test_fraction * n_class) rows held out.
* FM importance (`fm_importance`), the expected size of feature i's terms in
  the logit over the training inputs:

      I_i = E|w_i x_i| + sum_{j != i} |<v_i, v_j>| E|x_i x_j|.

  The weights alone are not enough: an interaction weight between features
  that never fire together, or a weight on a feature that never fires,
  changes no prediction, and the expectations weigh each term by how much it
  moves the logit on the data. Each pair term is credited in full to both of
  its features. Without interactions this is |w_i| E|x_i|.
* Probe importance (`probe_importance`): |w_i| on the scaled inputs, the
  paper's "weight magnitude".

Axis letters (as refusal_jax/fm/model.py): N rows (prompts), I features (J a
second copy), R rank.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from refusal_jax import errors
from refusal_jax.fm.model import predict


@dataclasses.dataclass
class ClassifierFit:
  """A fitted classifier and how it did.

  Attributes:
    params: {'w0': [], 'w': [I], 'v': [I, R]} on the scaled inputs.
    scale: [I] each feature's divisor.
    train_index: rows fitted on.
    test_index: rows held out.
    train_accuracy: accuracy on the training rows.
    test_accuracy: accuracy on the held-out rows (threshold: logit 0).
    test_loss: mean cross-entropy on the held-out rows.
    history: [(epoch, training cross-entropy (without the L2 term), test
      accuracy)] after every epoch.
  """
  params: dict
  scale: np.ndarray
  train_index: np.ndarray
  test_index: np.ndarray
  train_accuracy: float
  test_accuracy: float
  test_loss: float
  history: list

  def logits(self, x) -> np.ndarray:
    """[N] logits (harmful > 0) of raw inputs x [N, I]."""
    return np.asarray(predict(self.params, jnp.asarray(
        np.asarray(x, np.float32) / self.scale)))


def stratified_split(labels, test_fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic held-out split with the class balance of `labels`.

  Args:
    labels: [N] 0/1.
    test_fraction: share of each class held out (rounded; at least one row
      of each class stays in training).
    seed: numpy Generator seed.

  Returns:
    (train indices, test indices), each sorted.
  """
  y = np.asarray(labels).astype(int)
  rng = np.random.default_rng(seed)
  test = []
  for c in (0, 1):
    rows = rng.permutation(np.flatnonzero(y == c))
    n = min(int(round(test_fraction * len(rows))), max(len(rows) - 1, 0))
    test.extend(rows[:n].tolist())
  test = np.sort(np.asarray(test, np.int64))
  train = np.setdiff1d(np.arange(len(y)), test)
  return train, test


def fit(x, labels, *, rank: int, lr: float = 1e-3, epochs: int = 20,
        batch_size: int = 32, l2: float = 0.0, test_fraction: float = 0.2,
        seed: int = 0) -> ClassifierFit:
  """Fits the FM (rank > 0) or the logistic probe (rank 0) with Adam.

  Args:
    x: [N, I] per-prompt features (e.g. peak SAE activations).
    labels: [N] 1 = harmful, 0 = benign.
    rank: R, the embedding dimension (the paper: 20); 0 for the probe.
    lr: Adam learning rate (the paper: 1e-3).
    epochs: passes over the training rows (the paper: 20).
    batch_size: rows per Adam step.
    l2: weight on |w|^2 + |V|^2.
    test_fraction: share of each class held out.
    seed: seed of the split, the initialisation and the shuffles.

  Returns:
    ClassifierFit.
  """
  x = np.asarray(x, np.float32)
  y = np.asarray(labels).astype(np.float32)
  if x.ndim != 2 or y.shape != (len(x),):
    raise errors.ConfigError(f'classifier inputs {x.shape} and labels '
                             f'{y.shape}: expected [N, I] and [N]')
  if not set(np.unique(y)) <= {0.0, 1.0} or len(np.unique(y)) < 2:
    raise errors.ConfigError('classifier labels must hold both 0 (benign) '
                             'and 1 (harmful)')
  if batch_size < 1 or epochs < 1:
    raise errors.ConfigError(f'batch size {batch_size} and epochs {epochs} '
                             'must be >= 1')
  errors.check_finite('classifier inputs', x)
  train, test = stratified_split(y, test_fraction, seed)
  if not len(test):
    raise errors.ConfigError(f'test fraction {test_fraction} holds out no '
                             f'prompt of {len(y)}')
  peak = np.abs(x[train]).max(0)
  scale = np.where(peak > 0, peak, 1.0).astype(np.float32)
  xs = x / scale
  n_train = len(train)
  n_batches = -(-n_train // batch_size)
  # [E, n_batches * batch_size] shuffled rows, padded with weight-0 rows
  rng = np.random.default_rng(seed)
  order = np.stack([rng.permutation(n_train) for _ in range(epochs)])
  pad = n_batches * batch_size - n_train
  rows = np.concatenate([order, np.zeros((epochs, pad), np.int64)], 1)
  weight = np.concatenate([np.ones((epochs, n_train), np.float32),
                           np.zeros((epochs, pad), np.float32)], 1)
  rows = rows.reshape(epochs, n_batches, batch_size)
  weight = weight.reshape(epochs, n_batches, batch_size)

  xt, yt = jnp.asarray(xs[train]), jnp.asarray(y[train])
  xv, yv = jnp.asarray(xs[test]), jnp.asarray(y[test])
  n_features = x.shape[1]
  params = {'w0': jnp.zeros((), jnp.float32),
            'w': jnp.zeros((n_features,), jnp.float32),
            'v': 0.01 * jax.random.normal(jax.random.key(seed),
                                          (n_features, rank))}
  p, train_loss, test_acc = _train(params, xt, yt, xv, yv, jnp.asarray(rows),
                                   jnp.asarray(weight), jnp.float32(lr),
                                   jnp.float32(l2))
  train_loss, test_acc = np.asarray(train_loss), np.asarray(test_acc)
  errors.check_finite('the classifier loss', train_loss)
  return ClassifierFit(
      params=jax.tree.map(np.asarray, p), scale=scale, train_index=train,
      test_index=test, train_accuracy=float(_accuracy(p, xt, yt)),
      test_accuracy=float(test_acc[-1]),
      test_loss=float(_xent(p, xv, yv, jnp.ones_like(yv))),
      history=[(e + 1, float(train_loss[e]), float(test_acc[e]))
               for e in range(epochs)])


def _xent(p, x, y, weight):
  """Weighted mean sigmoid cross-entropy of the logits of x [N, I]."""
  per_row = optax.sigmoid_binary_cross_entropy(predict(p, x), y)
  return jnp.sum(weight * per_row) / jnp.maximum(jnp.sum(weight), 1.0)


def _accuracy(p, x, y):
  return jnp.mean((predict(p, x) > 0) == (y > 0.5))


@jax.jit
def _train(params, xt, yt, xv, yv, rows, weight, lr, l2):
  """Adam over rows [E, n_batches, batch] of xt; per-epoch loss, accuracy.

  Compiled once per shape: fits of the same sizes share the compilation.
  """
  opt = optax.adam(lr)

  def loss_fn(p, idx, wb):
    return _xent(p, xt[idx], yt[idx], wb) + l2 * (
        jnp.sum(p['w'] ** 2) + jnp.sum(p['v'] ** 2))

  def step(carry, batch):
    p, s = carry
    grads = jax.grad(loss_fn)(p, *batch)
    updates, s = opt.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), None

  def epoch(carry, batches):
    carry, _ = jax.lax.scan(step, carry, batches)
    p = carry[0]
    return carry, (_xent(p, xt, yt, jnp.ones_like(yt)), _accuracy(p, xv, yv))

  (p, _), (train_loss, test_acc) = jax.lax.scan(
      epoch, (params, opt.init(params)), (rows, weight))
  return p, train_loss, test_acc


def fm_importance(result: ClassifierFit, x, chunk: int = 1024) -> np.ndarray:
  """[I] I_i = E|w_i x_i| + sum_{j != i} |<v_i, v_j>| E|x_i x_j|.

  Expectations are over the training rows of x, scaled as the model saw
  them (module docstring: why this rule).

  Args:
    result: a fit of `fit`.
    x: [N, I] the raw inputs it was fitted on.
    chunk: features per block of the [I, I] sums (memory: chunk x I).

  Returns:
    [I] float64 importance.
  """
  a = np.abs(np.asarray(x, np.float64)[result.train_index] / result.scale)
  w = np.abs(np.asarray(result.params['w'], np.float64))
  v = np.asarray(result.params['v'], np.float64)
  out = w * a.mean(0)
  n = len(a)
  for i0 in range(0, a.shape[1], chunk):
    i1 = min(i0 + chunk, a.shape[1])
    gram = np.abs(np.einsum('IR,JR->IJ', v[i0:i1], v))
    co = np.einsum('NI,NJ->IJ', a[:, i0:i1], a) / n
    gram[np.arange(i1 - i0), np.arange(i0, i1)] = 0.0
    out[i0:i1] += (gram * co).sum(1)
  return out


def probe_importance(result: ClassifierFit) -> np.ndarray:
  """[I] |w_i| on the scaled inputs (the paper's weight magnitude)."""
  return np.abs(np.asarray(result.params['w'], np.float64))


def ranking(importance) -> list[int]:
  """Feature indices by importance, largest first (ties: lower index)."""
  imp = np.asarray(importance, np.float64)
  return np.lexsort((np.arange(len(imp)), -imp)).tolist()
