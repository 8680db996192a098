"""Training JumpReLU or TopK SAEs on an activations array with JAX + Optax.

Inputs are scaled by one dataset-wide factor `s` so that E||s x||^2 = 1
(Rajamanoharan et al. 2024); training runs on `s x` and the factor is folded
back into the weights at the end (`model.fold_input_scaling`), so the returned
`SAE` takes raw activations.

JumpReLU (Rajamanoharan et al. 2024, "Jumping Ahead"): thresholds are
parameterised as `theta = exp(log_theta)`; the loss is

  L = mean_B ||x - x_hat||^2 + lambda_t * mean_B sum_A H(pre - theta)

with H the Heaviside step. Gradients reach theta through pseudo-derivatives
with a rectangle kernel K(u) = 1[|u| < 1/2] of bandwidth eps:

  d/dtheta [z H(z - theta)] = -(theta / eps) K((z - theta) / eps)
  d/dtheta H(z - theta)     = -(1 / eps) K((z - theta) / eps)

and d/dz H = 0, d/dz [z H(z - theta)] = H(z - theta). lambda_t ramps linearly
from 0 to `l0_coefficient` over the first `l0_warmup_fraction` of the steps.

TopK (Gao et al. 2024): f = relu(top_k(pre)), loss = mean_B ||x - x_hat||^2.

Both: W_dec rows start random unit-norm and are renormalised to unit norm
after every update, W_enc starts as W_dec^T, b_enc at 0 and b_dec at the data
mean; the input has b_dec subtracted before encoding.
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from refusal_jax import errors
from refusal_jax.models import sites
from refusal_jax.sae.model import SAE
from refusal_jax.sae.model import fold_input_scaling


@dataclasses.dataclass(frozen=True)
class SAETrainConfig:
  """Hyperparameters of `train_sae`.

  Attributes:
    architecture: 'jumprelu' or 'topk'.
    d_sae: number of latents A.
    k: latents kept per token (topk).
    l0_coefficient: weight lambda of the L0 penalty (jumprelu), in units of
      the reconstruction loss on inputs scaled to unit mean squared norm.
    bandwidth: rectangle-kernel width eps of the pseudo-derivatives
      (jumprelu), in the same scaled units.
    initial_threshold: starting JumpReLU threshold (scaled units).
      The jumprelu defaults (lambda 3e-3, eps = theta_0 = 0.05) were tuned on
      synthetic sparse data scaled to unit mean squared norm, where single
      latents are O(0.1-1); sweep lambda for real activations.
    l0_warmup_fraction: fraction of the steps over which lambda ramps up.
    lr: peak Adam learning rate.
    adam_b1: Adam beta1.
    adam_b2: Adam beta2.
    lr_warmup_steps: linear learning-rate warm-up from 0.
    lr_decay_fraction: final fraction of the steps over which the learning
      rate decays linearly to 0.
    grad_clip: global gradient-norm clip.
    steps: optimiser steps.
    batch_size: rows sampled (with replacement) per step.
    seed: PRNG seed for initialisation and batch sampling.
    dead_window: a latent that has not fired for this many steps is dead.
    eval_size: rows of the fixed evaluation sample used for logged metrics.
  """

  architecture: str = 'jumprelu'
  d_sae: int = 4096
  k: int = 32
  l0_coefficient: float = 3e-3
  bandwidth: float = 0.05
  initial_threshold: float = 0.05
  l0_warmup_fraction: float = 0.1
  lr: float = 3e-4
  adam_b1: float = 0.9
  adam_b2: float = 0.999
  lr_warmup_steps: int = 100
  lr_decay_fraction: float = 0.2
  grad_clip: float = 1.0
  steps: int = 10_000
  batch_size: int = 4096
  seed: int = 0
  dead_window: int = 1000
  eval_size: int = 4096


def train_sae(acts: Any, config: SAETrainConfig, *, site: str, layer: int,
              model_name: str, log_every: int = 500,
              checkpoint_dir: str | None = None
              ) -> tuple[SAE, list[dict[str, float]]]:
  """Trains an SAE on activations.

  Args:
    acts: activations [N, D] (numpy or jax, any float dtype).
    config: hyperparameters.
    site: residual-stream site the activations come from.
    layer: layer the activations come from.
    model_name: model the activations come from.
    log_every: evaluate and log every this many steps (and after the last).
    checkpoint_dir: if set, the training state is saved there with orbax
      after every logged step (with the history), and a rerun with the same
      activations and config resumes from the last save; the result equals
      an uninterrupted run.

  Returns:
    (sae, history): a float32 SAE on raw activations, and one dict per logged
    step with keys 'step', 'loss', 'l0', 'fve', 'dead_latents', evaluated on a
    fixed sample of `config.eval_size` rows; 'loss' uses the full
    `l0_coefficient`, 'fve' is 1 - sum((x - x_hat)^2) / sum((x - mean x)^2),
    and 'dead_latents' counts latents that fired on no training batch of the
    last `config.dead_window` steps.

  Raises:
    errors.ConfigError: bad config values or an activations array that is not
      a finite [N, D] float array.
  """
  _validate(config, log_every)
  hook = sites.hook_name(site, layer)
  data = np.asarray(acts, np.float32)
  if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
    raise errors.ConfigError(
        f'activations must be a non-empty [N, D] array, got shape '
        f'{list(data.shape)}')
  if not np.isfinite(data).all():
    raise errors.ConfigError('activations contain NaN/Inf values')
  mean_sq = float(np.mean(np.einsum('ND,ND->N', data, data)))
  if mean_sq <= 0:
    raise errors.ConfigError('activations are all zero')
  scale = 1.0 / math.sqrt(mean_sq)
  data = jnp.asarray(data * np.float32(scale))

  key = jax.random.PRNGKey(config.seed)
  key, init_key, eval_key = jax.random.split(key, 3)
  params = _init_params(init_key, data, config)
  optimizer = _optimizer(config)
  state = {
      'params': params,
      'opt_state': optimizer.init(params),
      'step': jnp.zeros((), jnp.int32),
      'since_fired': jnp.zeros((config.d_sae,), jnp.int32),
      'key': key,
  }
  n_eval = min(config.eval_size, data.shape[0])
  eval_x = data[jax.random.choice(eval_key, data.shape[0], (n_eval,),
                                  replace=False)]

  history = []
  done = 0
  manager = None
  if checkpoint_dir:
    _check_run(checkpoint_dir, config, data, hook)
    manager = ocp.CheckpointManager(
        os.path.abspath(checkpoint_dir),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
    done = manager.latest_step() or 0
    if done:
      abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
      state = manager.restore(done, args=ocp.args.StandardRestore(abstract))
      with open(os.path.join(checkpoint_dir, f'history_{done}.json')) as f:
        history = json.load(f)
      logging.info('sae %s: resumed from step %d', hook, done)
  while done < config.steps:
    n = min(log_every, config.steps - done)
    state = _run_steps(state, data, config, jnp.int32(n))
    done += n
    metrics = _evaluate(state['params'], eval_x, config)
    dead = int(jnp.sum(state['since_fired'] >= config.dead_window))
    record = {'step': done, 'loss': float(metrics['loss']),
              'l0': float(metrics['l0']), 'fve': float(metrics['fve']),
              'dead_latents': dead}
    history.append(record)
    logging.info('sae %s step %d/%d: loss=%.5f l0=%.2f fve=%.4f dead=%d',
                 hook, done, config.steps, record['loss'], record['l0'],
                 record['fve'], dead)
    if manager is not None:
      _save_history(checkpoint_dir, done, history)  # before the state
      manager.save(done, args=ocp.args.StandardSave(state))
      manager.wait_until_finished()
  if manager is not None:
    manager.close()
  return _to_sae(state['params'], scale, config, site, layer, hook,
                 model_name), history


_RUN_FILE = 'run.json'


def _check_run(checkpoint_dir: str, config: SAETrainConfig, data: np.ndarray,
               hook: str) -> None:
  """Records what a checkpoint directory trains, and refuses another run.

  A checkpoint of other activations or hyperparameters must never be resumed
  (the result would be neither run): the directory keeps the config, the
  hook and a digest of the activations, and a rerun that differs stops with
  a one-line error.
  """
  digest = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
  run = json.loads(json.dumps({  # as read back: tuples become lists
      'config': dataclasses.asdict(config), 'hook': hook,
      'shape': list(data.shape), 'activations_sha256': digest}))
  path = os.path.join(checkpoint_dir, _RUN_FILE)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if old != run:
      changed = sorted(k for k in run if old.get(k) != run[k])
      raise errors.ConfigError(
          f'checkpoint directory {checkpoint_dir} holds an SAE training of '
          f'other {", ".join(changed)}; use a new directory or delete it')
    return
  os.makedirs(checkpoint_dir, exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    json.dump(run, f)
  os.replace(path + '.tmp', path)


def _save_history(checkpoint_dir: str, step: int, history) -> None:
  path = os.path.join(checkpoint_dir, f'history_{step}.json')
  with open(path + '.tmp', 'w') as f:
    json.dump(history, f)
  os.replace(path + '.tmp', path)


def _validate(config: SAETrainConfig, log_every: int) -> None:
  if config.architecture not in ('jumprelu', 'topk'):
    raise errors.ConfigError(
        f"SAETrainConfig.architecture {config.architecture!r}; expected "
        "'jumprelu' or 'topk'")
  positive_ints = ('d_sae', 'steps', 'batch_size', 'dead_window',
                   'eval_size', 'k')
  for name in positive_ints:
    if getattr(config, name) < 1:
      raise errors.ConfigError(f'SAETrainConfig.{name} must be >= 1')
  if config.architecture == 'topk' and config.k > config.d_sae:
    raise errors.ConfigError(
        f'SAETrainConfig.k {config.k} exceeds d_sae {config.d_sae}')
  positive = ('lr', 'bandwidth', 'initial_threshold')
  for name in positive:
    if not getattr(config, name) > 0:
      raise errors.ConfigError(f'SAETrainConfig.{name} must be > 0')
  if config.l0_coefficient < 0:
    raise errors.ConfigError('SAETrainConfig.l0_coefficient must be >= 0')
  if log_every < 1:
    raise errors.ConfigError('log_every must be >= 1')


def _init_params(key: jax.Array, data: jax.Array,
                 config: SAETrainConfig) -> dict[str, jax.Array]:
  """W_dec [A, D] unit rows, W_enc = W_dec^T, b_enc = 0, b_dec = data mean."""
  w_dec = jax.random.normal(key, (config.d_sae, data.shape[1]), jnp.float32)
  w_dec = _unit_rows(w_dec)
  params = {
      'W_enc': w_dec.T,
      'b_enc': jnp.zeros((config.d_sae,), jnp.float32),
      'W_dec': w_dec,
      'b_dec': jnp.mean(data, axis=0),
  }
  if config.architecture == 'jumprelu':
    params['log_threshold'] = jnp.full(
        (config.d_sae,), math.log(config.initial_threshold), jnp.float32)
  return params


def _optimizer(config: SAETrainConfig) -> optax.GradientTransformation:
  decay_steps = int(config.steps * config.lr_decay_fraction)
  warmup = min(config.lr_warmup_steps, config.steps - decay_steps)
  flat = config.steps - decay_steps - warmup
  schedule = optax.join_schedules(
      [optax.linear_schedule(0.0, config.lr, max(warmup, 1)),
       optax.constant_schedule(config.lr),
       optax.linear_schedule(config.lr, 0.0, max(decay_steps, 1))],
      boundaries=[warmup, warmup + flat])
  return optax.chain(
      optax.clip_by_global_norm(config.grad_clip),
      optax.adam(schedule, b1=config.adam_b1, b2=config.adam_b2))


def _unit_rows(w: jax.Array) -> jax.Array:
  norms = jnp.sqrt(jnp.einsum('AD,AD->A', w, w))
  return w / jnp.maximum(norms, 1e-8)[:, None]


def _rectangle(u: jax.Array) -> jax.Array:
  return ((u > -0.5) & (u < 0.5)).astype(u.dtype)


def _sum_to(g: jax.Array, like: jax.Array) -> jax.Array:
  """Sums a broadcast gradient [..., A] back to the shape [A] of `like`."""
  return g.reshape(-1, like.shape[-1]).sum(axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _jumprelu(z: jax.Array, threshold: jax.Array, bandwidth: float):
  """z * H(z - threshold): [..., A], threshold [A]."""
  return z * (z > threshold)


def _jumprelu_fwd(z, threshold, bandwidth):
  del bandwidth
  return z * (z > threshold), (z, threshold)


def _jumprelu_bwd(bandwidth, res, g):
  z, threshold = res
  dz = (z > threshold) * g
  dth = -(threshold / bandwidth) * _rectangle((z - threshold) / bandwidth) * g
  return dz, _sum_to(dth, threshold)


_jumprelu.defvjp(_jumprelu_fwd, _jumprelu_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _step(z: jax.Array, threshold: jax.Array, bandwidth: float):
  """H(z - threshold) as float32: [..., A]."""
  return (z > threshold).astype(jnp.float32)


def _step_fwd(z, threshold, bandwidth):
  del bandwidth
  return (z > threshold).astype(jnp.float32), (z, threshold)


def _step_bwd(bandwidth, res, g):
  z, threshold = res
  dth = -(1.0 / bandwidth) * _rectangle((z - threshold) / bandwidth) * g
  return jnp.zeros_like(z), _sum_to(dth, threshold)


_step.defvjp(_step_fwd, _step_bwd)


def _forward(params: dict[str, jax.Array], x: jax.Array,
             config: SAETrainConfig) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Returns (x_hat [B, D], latents [B, A], fired-count per row [B])."""
  pre = jnp.einsum('BD,DA->BA', x - params['b_dec'], params['W_enc'])
  pre = pre + params['b_enc']
  if config.architecture == 'jumprelu':
    threshold = jnp.exp(params['log_threshold'])
    f = _jumprelu(pre, threshold, config.bandwidth)
    l0 = jnp.sum(_step(pre, threshold, config.bandwidth), axis=-1)
  else:
    values, idx = jax.lax.top_k(pre, config.k)
    rows = jnp.arange(pre.shape[0])[:, None]
    f = jnp.zeros_like(pre).at[rows, idx].set(jax.nn.relu(values))
    l0 = jnp.sum(f > 0, axis=-1).astype(jnp.float32)
  x_hat = jnp.einsum('BA,AD->BD', f, params['W_dec']) + params['b_dec']
  return x_hat, f, l0


def _loss(params: dict[str, jax.Array], x: jax.Array, l0_weight: jax.Array,
          config: SAETrainConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
  x_hat, f, l0 = _forward(params, x, config)
  recon = jnp.mean(jnp.sum(jnp.square(x - x_hat), axis=-1))
  loss = recon
  if config.architecture == 'jumprelu':
    loss = loss + l0_weight * jnp.mean(l0)
  centred = x - jnp.mean(x, axis=0)
  fve = 1.0 - jnp.sum(jnp.square(x - x_hat)) / jnp.sum(jnp.square(centred))
  return loss, {'loss': loss, 'l0': jnp.mean(l0), 'fve': fve, 'fired': f > 0}


@functools.partial(jax.jit, static_argnames=('config',))
def _evaluate(params: dict[str, jax.Array], x: jax.Array,
              config: SAETrainConfig) -> dict[str, jax.Array]:
  _, metrics = _loss(params, x, jnp.float32(config.l0_coefficient), config)
  return metrics


@functools.partial(jax.jit, static_argnames=('config',))
def _run_steps(state: dict[str, Any], data: jax.Array, config: SAETrainConfig,
               n_steps: jax.Array) -> dict[str, Any]:
  """Runs `n_steps` optimiser steps in one compiled loop (n_steps traced)."""
  optimizer = _optimizer(config)
  warmup = max(config.steps * config.l0_warmup_fraction, 1.0)

  def one_step(_, state):
    key, batch_key = jax.random.split(state['key'])
    idx = jax.random.randint(batch_key, (config.batch_size,), 0,
                             data.shape[0])
    x = data[idx]
    ramp = jnp.minimum(state['step'].astype(jnp.float32) / warmup, 1.0)
    l0_weight = config.l0_coefficient * ramp
    grads, metrics = jax.grad(_loss, has_aux=True)(
        state['params'], x, l0_weight, config)
    updates, opt_state = optimizer.update(grads, state['opt_state'],
                                          state['params'])
    params = optax.apply_updates(state['params'], updates)
    params = dict(params, W_dec=_unit_rows(params['W_dec']))
    fired = jnp.any(metrics['fired'], axis=0)
    since_fired = jnp.where(fired, 0, state['since_fired'] + 1)
    return {'params': params, 'opt_state': opt_state,
            'step': state['step'] + 1, 'since_fired': since_fired,
            'key': key}

  return jax.lax.fori_loop(0, n_steps, one_step, state)


def _to_sae(params: dict[str, jax.Array], scale: float, config: SAETrainConfig,
            site: str, layer: int, hook: str, model_name: str) -> SAE:
  """Folds the input scaling back and packs the parameters as an SAE."""
  w_enc, w_dec, b_dec = fold_input_scaling(
      np.asarray(params['W_enc']), np.asarray(params['W_dec']),
      np.asarray(params['b_dec']), scale, scale)
  jumprelu = config.architecture == 'jumprelu'
  threshold = None
  if jumprelu:
    threshold = jnp.asarray(np.exp(np.asarray(params['log_threshold'])),
                            jnp.float32)
  return SAE(
      W_enc=jnp.asarray(w_enc), b_enc=jnp.asarray(params['b_enc']),
      W_dec=jnp.asarray(w_dec), b_dec=jnp.asarray(b_dec),
      threshold=threshold, architecture=config.architecture,
      k=None if jumprelu else config.k, apply_b_dec_to_input=True,
      rescale_acts_by_decoder_norm=False, site=site, layer=layer,
      hook_name=hook, model_name=model_name, neuronpedia_id=None,
      dtype='float32')
