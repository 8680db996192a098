"""Directional ablation and activation addition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax import errors
from refusal_jax.interventions import directions
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig, RopeScaling

LLAMA = ModelConfig.llama(vocab_size=37, d_model=20, num_layers=3, num_heads=4,
                          num_kv_heads=2, head_dim=6, mlp_dim=29)
GEMMA = ModelConfig.gemma2(vocab_size=37, d_model=20, num_layers=3,
                           num_heads=2, num_kv_heads=1, head_dim=8, mlp_dim=29,
                           sliding_window=4)
IDS = jnp.asarray(np.random.RandomState(0).randint(0, 37, (2, 7)))


def test_ablation_removes_the_direction_everywhere():
  params = transformer.init_params(GEMMA, seed=2)
  r = jax.random.normal(jax.random.key(0), (20,))
  sites = [(s, l) for l in range(3) for s in directions.ABLATION_SITES]
  out = transformer.forward(params, GEMMA, IDS, capture=sites,
                            interventions=directions.DirectionalAblation(r))
  ru = np.asarray(directions.unit(r))
  for key, act in out.captured.items():
    # zero up to the rounding of the projection's sum of 20 products
    act = np.asarray(act, np.float64)
    numerics.assert_within(act @ ru, 0.0, 2 * numerics.sum_bound(
        numerics.abs_matmul(act, ru), 20), str(key))
  clean = transformer.forward(params, GEMMA, IDS)
  assert np.abs(np.asarray(out.logits) - np.asarray(clean.logits)).max() > 1e-3


def test_weight_orthogonalization_equals_activation_ablation():
  params = transformer.init_params(LLAMA, seed=3)
  r = jax.random.normal(jax.random.key(1), (20,))
  act = transformer.forward(params, LLAMA, IDS,
                            interventions=directions.DirectionalAblation(r))
  ortho = directions.orthogonalize_params(params, LLAMA, r)
  wt = transformer.forward(ortho, LLAMA, IDS)
  numerics.assert_close(wt.logits, act.logits, ulps=numerics.FORWARD_ULPS)
  with pytest.raises(errors.ConfigError, match='Gemma-2'):
    directions.orthogonalize_params(transformer.init_params(GEMMA), GEMMA, r)


def test_actadd_adds_at_one_layer_only():
  params = transformer.init_params(LLAMA, seed=4)
  v = jax.random.normal(jax.random.key(2), (20,))
  cap = [('resid_pre', 1), ('resid_pre', 2), ('resid_post', 0)]
  clean = transformer.forward(params, LLAMA, IDS, capture=cap)
  added = transformer.forward(
      params, LLAMA, IDS, capture=cap,
      interventions=directions.ActAdd(vector=v, coeff=-1.0, layer=1))
  numerics.assert_close(
      added.captured[('resid_pre', 1)],
      np.asarray(clean.captured[('resid_post', 0)]) - np.asarray(v),
      ulps=numerics.FORWARD_ULPS)


def test_vmap_over_stacked_directions_equals_loop():
  params = transformer.init_params(LLAMA, seed=5)
  rs = jax.random.normal(jax.random.key(3), (4, 20))
  run = lambda r: transformer.forward(
      params, LLAMA, IDS, logits_at='last',
      interventions=directions.DirectionalAblation(r)).logits
  batched = jax.jit(jax.vmap(run))(rs)
  for i in range(4):
    numerics.assert_close(batched[i], run(rs[i]), ulps=numerics.FORWARD_ULPS)


def test_actadd_layer_weights_equal_static_layer():
  params = transformer.init_params(LLAMA, seed=6)
  v = jax.random.normal(jax.random.key(4), (20,))
  static = transformer.forward(
      params, LLAMA, IDS, interventions=directions.ActAdd(v, 1.0, layer=2))
  onehot = transformer.forward(
      params, LLAMA, IDS, interventions=directions.ActAdd(
          v, 1.0, layer_weights=jax.nn.one_hot(2, 3)))
  numerics.assert_close(onehot.logits, static.logits, ulps=numerics.FORWARD_ULPS)


def test_ablation_skips_the_positions_of_skip_ids():
  params = transformer.init_params(LLAMA, seed=7)
  r = jax.random.normal(jax.random.key(5), (20,))
  skip = jnp.asarray([int(IDS[0, 0]), int(IDS[1, 3])])
  cap = [('resid_pre', 1)]
  clean = transformer.forward(params, LLAMA, IDS, capture=cap)
  full = transformer.forward(params, LLAMA, IDS, capture=cap,
                             interventions=directions.DirectionalAblation(r))
  part = transformer.forward(
      params, LLAMA, IDS, capture=cap,
      interventions=directions.DirectionalAblation(r, skip_ids=skip))
  skipped = np.isin(np.asarray(IDS), np.asarray(skip))
  assert skipped.any() and (~skipped).any()
  got = np.asarray(part.captured[cap[0]])
  ru = np.asarray(directions.unit(r))
  # the first ablated layer's input: ablated positions have no component
  # along r; a skipped first token keeps its own (clean) residual
  assert np.abs(got[~skipped] @ ru).max() < 1e-4
  if skipped[0, 0]:
    numerics.assert_close(got[0, 0], clean.captured[cap[0]][0, 0],
                          ulps=numerics.FORWARD_ULPS)
  assert np.abs(got - np.asarray(full.captured[cap[0]])).max() > 1e-4
