"""Fitting a factorization machine or a linear probe with Optax."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from refusal_jax import errors
from refusal_jax.fm.model import predict


@dataclasses.dataclass
class FitResult:
  """A fitted model and its losses.

  Attributes:
    params: {'w0', 'w', 'v'} in the units of y.
    train_loss: final mean squared error on the training masks.
    val_loss: mean squared error on the held-out masks.
    history: [(step, train_loss, val_loss)] every `log_every` steps.
  """
  params: dict
  train_loss: float
  val_loss: float
  history: list


def fit(x_train, y_train, x_val, y_val, *, rank: int, l2: float, steps: int,
        lr: float, seed: int = 0, log_every: int = 100) -> FitResult:
  """Full-batch Adam on MSE + l2 * (|w|^2 + |V|^2).

  Args:
    x_train: [N, I] masks; y_train: [N] targets.
    x_val: [N', I]; y_val: [N'] held-out masks and targets.
    rank: R; 0 fits the linear probe.
    l2: weight decay on w and V.
    steps: optimisation steps.
    lr: Adam learning rate.
    seed: initialisation seed for V.
    log_every: history spacing.

  Returns:
    FitResult (losses are MSE in the units of y).
  """
  x_train = jnp.asarray(x_train, jnp.float32)
  x_val = jnp.asarray(x_val, jnp.float32)
  y_train = jnp.asarray(y_train, jnp.float32)
  y_val = jnp.asarray(y_val, jnp.float32)
  if x_train.shape[0] < 2 or x_val.shape[0] < 1:
    raise errors.ConfigError('the factorization machine needs >= 2 training '
                             'masks and >= 1 validation mask')
  n = x_train.shape[1]
  params = {'w0': jnp.mean(y_train), 'w': jnp.zeros((n,), jnp.float32),
            'v': 0.01 * jax.random.normal(jax.random.key(seed), (n, rank))}
  opt = optax.adam(lr)
  state = opt.init(params)

  def loss_fn(p, x, y):
    mse = jnp.mean((predict(p, x) - y) ** 2)
    return mse + l2 * (jnp.sum(p['w'] ** 2) + jnp.sum(p['v'] ** 2))

  @jax.jit
  def run(params, state):
    def step(carry, _):
      p, s = carry
      grads = jax.grad(loss_fn)(p, x_train, y_train)
      updates, s = opt.update(grads, s, p)
      p = optax.apply_updates(p, updates)
      mse = lambda x, y: jnp.mean((predict(p, x) - y) ** 2)
      return (p, s), (mse(x_train, y_train), mse(x_val, y_val))
    return jax.lax.scan(step, (params, state), None, length=steps)

  (params, _), (train_l, val_l) = run(params, state)
  train_l, val_l = np.asarray(train_l), np.asarray(val_l)
  history = [(i + 1, float(train_l[i]), float(val_l[i]))
             for i in range(log_every - 1, steps, log_every)]
  return FitResult(params=jax.tree.map(np.asarray, params),
                   train_loss=float(train_l[-1]), val_loss=float(val_l[-1]),
                   history=history)
