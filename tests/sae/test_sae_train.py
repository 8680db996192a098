"""SAE training on synthetic sparse data; JumpReLU pseudo-derivatives."""

import dataclasses
import logging as py_logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax import errors
from refusal_jax.sae import SAETrainConfig
from refusal_jax.sae import load_sae
from refusal_jax.sae import save_sae
from refusal_jax.sae import train_sae
from refusal_jax.sae import train as train_lib

D, N_DIRS, N = 48, 64, 8192


@pytest.fixture(scope='module')
def sparse_data():
  """Rows are sparse non-negative combinations of 64 unit directions in D=48.

  Each direction is on with probability 4/64 and has magnitude U(0.5, 2);
  a fixed offset makes the mean non-zero and rows are scaled by 3 so the
  raw scale is not 1.
  """
  rng = np.random.default_rng(0)
  dirs = rng.normal(size=(N_DIRS, D))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  on = rng.random((N, N_DIRS)) < 4 / N_DIRS
  coef = rng.uniform(0.5, 2.0, (N, N_DIRS)) * on
  return ((coef @ dirs + 0.3 * rng.normal(size=D)) * 3.0).astype(np.float32)


def _raw_fve(sae, x):
  x = jnp.asarray(x)
  x_hat = sae.reconstruct(x)
  return 1.0 - float(jnp.sum((x - x_hat) ** 2) /
                     jnp.sum((x - x.mean(0)) ** 2))


@pytest.mark.parametrize('architecture,steps', [('topk', 600),
                                                ('jumprelu', 1000)])
def test_trains_to_high_fve_in_seconds(sparse_data, architecture, steps,
                                       caplog):
  config = SAETrainConfig(architecture=architecture, d_sae=128, k=8,
                          steps=steps, batch_size=512, lr=3e-3, seed=1)
  start = time.perf_counter()
  with caplog.at_level(py_logging.INFO):
    sae, history = train_sae(sparse_data, config, site='resid_post', layer=4,
                             model_name='toy', log_every=250)
  elapsed = time.perf_counter() - start
  assert elapsed < 20.0, f'training took {elapsed:.1f}s'

  assert [h['step'] for h in history] == list(range(250, steps, 250)) + [
      steps]
  for h in history:
    assert set(h) == {'step', 'loss', 'l0', 'fve', 'dead_latents'}
    assert isinstance(h['dead_latents'], int)
  assert history[-1]['fve'] >= 0.9
  assert history[-1]['fve'] > history[0]['fve']
  assert history[-1]['loss'] < history[0]['loss']
  assert any('fve=' in r.getMessage() for r in caplog.records)

  # the returned SAE works on raw activations (input scaling folded back)
  assert _raw_fve(sae, sparse_data) >= 0.9
  l0 = float(jnp.mean(jnp.sum(sae.encode(jnp.asarray(sparse_data)) > 0, -1)))
  assert abs(l0 - history[-1]['l0']) < 1.0
  if architecture == 'topk':
    assert l0 <= 8
  else:
    assert l0 < 16  # the data has ~4 active directions per row
    assert sae.threshold.dtype == jnp.float32
    assert float(jnp.min(sae.threshold)) > config.initial_threshold * 0.5
  assert (sae.site, sae.layer, sae.hook_name, sae.d_sae) == (
      'resid_post', 4, 'blocks.4.hook_resid_post', 128)


def test_trained_sae_round_trips(sparse_data, tmp_path):
  config = SAETrainConfig(architecture='jumprelu', d_sae=32, steps=20,
                          batch_size=64)
  sae, history = train_sae(sparse_data[:512], config, site='resid_pre',
                           layer=0, model_name='toy', log_every=100)
  assert len(history) == 1 and history[0]['step'] == 20
  again = load_sae(save_sae(sae, tmp_path / 'trained'))
  x = jnp.asarray(sparse_data[:64])
  np.testing.assert_array_equal(np.asarray(again.encode(x)),
                                np.asarray(sae.encode(x)))


def test_pseudo_derivatives_match_rectangle_kernel():
  z = jnp.array([[0.10, 0.52, 0.48, 1.0], [0.505, 0.2, 0.9, 0.45]])
  theta = jnp.array([0.5, 0.5, 0.5, 0.5])
  eps = 0.1
  # d/dtheta sum(z * H(z - theta)) = -(theta/eps) * #{|z - theta| < eps/2}
  g_jump = jax.grad(lambda t: jnp.sum(train_lib._jumprelu(z, t, eps)))(theta)
  in_window = np.abs(np.asarray(z - theta)) < eps / 2
  # a count times a constant: a few roundings of the result
  numerics.assert_close(g_jump, -(0.5 / eps) * in_window.sum(0), ulps=4,
                        scale=np.abs(-(0.5 / eps) * in_window.sum(0)))
  g_step = jax.grad(lambda t: jnp.sum(train_lib._step(z, t, eps)))(theta)
  numerics.assert_close(g_step, -(1 / eps) * in_window.sum(0), ulps=4,
                        scale=np.abs(-(1 / eps) * in_window.sum(0)))
  # gradients w.r.t. z: H(z - theta) for JumpReLU, zero for the step
  gz = jax.grad(lambda v: jnp.sum(train_lib._jumprelu(v, theta, eps)))(z)
  np.testing.assert_array_equal(gz, np.asarray(z > theta, np.float32))
  gz_step = jax.grad(lambda v: jnp.sum(train_lib._step(v, theta, eps)))(z)
  np.testing.assert_array_equal(gz_step, np.zeros_like(z))


@pytest.mark.parametrize('overrides,pattern', [
    (dict(architecture='gated'), 'architecture'),
    (dict(architecture='topk', k=200, d_sae=64), 'exceeds d_sae'),
    (dict(lr=0.0), 'lr'),
    (dict(steps=0), 'steps'),
])
def test_bad_config_raises(sparse_data, overrides, pattern):
  with pytest.raises(errors.ConfigError, match=pattern):
    train_sae(sparse_data[:64], SAETrainConfig(**overrides), site='resid_post',
              layer=0, model_name='toy')


def test_bad_activations_raise():
  config = SAETrainConfig(d_sae=8, steps=1, batch_size=4)
  with pytest.raises(errors.ConfigError, match='shape'):
    train_sae(np.zeros((4,)), config, site='resid_post', layer=0,
              model_name='toy')
  bad = np.ones((8, 4), np.float32)
  bad[2, 1] = np.nan
  with pytest.raises(errors.ConfigError, match='NaN'):
    train_sae(bad, config, site='resid_post', layer=0, model_name='toy')
  with pytest.raises(errors.ConfigError, match='site'):
    train_sae(np.ones((8, 4)), config, site='embed', layer=0,
              model_name='toy')


def test_interrupted_training_resumes_to_the_same_sae(sparse_data, tmp_path,
                                                      monkeypatch):
  config = SAETrainConfig(architecture='jumprelu', d_sae=32, steps=120,
                          batch_size=64, lr_warmup_steps=10, eval_size=128)
  kw = dict(site='resid_post', layer=1, model_name='m', log_every=40)
  want, want_history = train_sae(sparse_data, config, **kw)
  real, calls = train_lib._run_steps, []  # pylint: disable=protected-access

  def dies_on_the_third_chunk(*args):
    calls.append(1)
    if len(calls) == 3:
      raise KeyboardInterrupt
    return real(*args)

  ckpt = str(tmp_path / 'ckpt')
  monkeypatch.setattr(train_lib, '_run_steps', dies_on_the_third_chunk)
  with pytest.raises(KeyboardInterrupt):
    train_sae(sparse_data, config, checkpoint_dir=ckpt, **kw)
  monkeypatch.setattr(train_lib, '_run_steps', real)
  got, got_history = train_sae(sparse_data, config, checkpoint_dir=ckpt, **kw)
  assert got_history == want_history
  np.testing.assert_array_equal(np.asarray(got.W_enc), np.asarray(want.W_enc))
  np.testing.assert_array_equal(np.asarray(got.threshold),
                                np.asarray(want.threshold))
  # A checkpoint of other activations or settings is never resumed.
  with pytest.raises(errors.ConfigError, match='activations_sha256'):
    train_sae(sparse_data[::-1], config, checkpoint_dir=ckpt, **kw)
  with pytest.raises(errors.ConfigError, match='config'):
    train_sae(sparse_data, dataclasses.replace(config, l0_coefficient=0.5),
              checkpoint_dir=ckpt, **kw)
