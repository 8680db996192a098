"""The sweep engine equals the plain forward pass run one intervention at a time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax.interventions.directions import DirectionalAblation, ActAdd
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sae.model import SAE
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import Metric, kl_div

CFG = ModelConfig.gemma2(vocab_size=43, d_model=16, num_layers=4, num_heads=2,
                         num_kv_heads=1, head_dim=8, mlp_dim=23,
                         sliding_window=3)
RNG = np.random.RandomState(0)
IDS = RNG.randint(3, 43, (5, 9)).astype(np.int32)
MASK = np.ones_like(IDS)
MASK[1, :3] = 0
MASK[4, :5] = 0
METRIC = Metric('refusal_score', (7, 11))
A = 40


def _sae(layer, site, arch='jumprelu'):
  k = jax.random.split(jax.random.key(layer), 4)
  return SAE(W_enc=jax.random.normal(k[0], (16, A)) * 0.4,
             b_enc=jax.random.normal(k[1], (A,)) * 0.1,
             W_dec=jax.random.normal(k[2], (A, 16)) * 0.4,
             b_dec=jax.random.normal(k[3], (16,)) * 0.1,
             threshold=jnp.full((A,), 0.1), architecture=arch, k=None,
             apply_b_dec_to_input=True, rescale_acts_by_decoder_norm=False,
             site=site, layer=layer, hook_name=f'blocks.{layer}.hook_{site}',
             model_name='tiny', neuronpedia_id=None, dtype='float32')


@pytest.fixture(scope='module')
def params():
  return transformer.init_params(CFG, seed=3)


def _assert_metric_close(got, params, interventions):
  """The engine's metric equals the plain pass's, up to rounding of the
  logits it is computed from (tests/numerics.py)."""
  out = transformer.forward(params, CFG, jnp.asarray(IDS),
                            attention_mask=jnp.asarray(MASK),
                            interventions=interventions, logits_at='last')
  numerics.assert_close(got, METRIC(out.logits[:, 0]),
                        ulps=numerics.FORWARD_ULPS,
                        scale=np.abs(np.asarray(out.logits)).max())


@pytest.mark.parametrize('site,layer,mode,value', [
    ('resid_post', 1, 'zero', 0.0), ('resid_pre', 2, 'clamp', 1.5),
    ('resid_post', 3, 'scale', -3.0)])
def test_sae_sweep_equals_one_at_a_time(params, site, layer, mode, value):
  sae = _sae(layer, site)
  candidates = np.array([1, 5, 9, 17, 30, 33, 39])
  masks = (RNG.rand(11, len(candidates)) < 0.5).astype(np.float32)
  got = engine.sae_sweep(params, CFG, sae, IDS, MASK, candidates, masks,
                         metric=METRIC, mode=mode, value=value,
                         chunks=engine.Chunks(masks=4, prompts=3))
  assert got.shape == (11, 5)
  for m in range(11):
    dense = np.zeros(A, np.float32)
    dense[candidates] = masks[m]
    _assert_metric_close(got[m], params, SAEEdit(
        sae=sae, latent_mask=jnp.asarray(dense), value=value, mode=mode))


def test_sae_sweep_skips_token_ids_as_the_edit_does(params):
  """With skip_ids (BOS, template specials) the fast path leaves those
  tokens alone exactly as SAEEdit(skip_ids=...) does."""
  sae = _sae(1, 'resid_post')
  ids = IDS.copy()
  ids[np.arange(5), MASK.argmax(axis=1)] = 2  # a BOS id first in every row
  skip = np.array([2, int(ids[0, 4])])
  candidates = np.arange(0, A, 2)
  masks = (RNG.rand(5, len(candidates)) < 0.6).astype(np.float32)
  kw = dict(metric=METRIC, mode='clamp', value=2.0,
            chunks=engine.Chunks(masks=2, prompts=3))
  got = engine.sae_sweep(params, CFG, sae, ids, MASK, candidates, masks,
                         skip_ids=skip, **kw)
  unskipped = engine.sae_sweep(params, CFG, sae, ids, MASK, candidates,
                               masks, **kw)
  assert np.abs(got - unskipped).max() > 1e-4
  for m in range(len(masks)):
    dense = np.zeros(A, np.float32)
    dense[candidates] = masks[m]
    out = transformer.forward(
        params, CFG, jnp.asarray(ids), attention_mask=jnp.asarray(MASK),
        interventions=SAEEdit(sae=sae, latent_mask=jnp.asarray(dense),
                              value=2.0, mode='clamp',
                              skip_ids=jnp.asarray(skip)), logits_at='last')
    numerics.assert_close(got[m], METRIC(out.logits[:, 0]),
                          ulps=numerics.FORWARD_ULPS,
                          scale=np.abs(np.asarray(out.logits)).max())


def _ablate(row, shared):
  del shared
  return DirectionalAblation(row)


def _actadd(row, shared):
  return ActAdd(vector=row[0], coeff=shared, layer_weights=row[1])


def test_general_sweep_equals_one_at_a_time(params):
  dirs = RNG.randn(6, 16).astype(np.float32)
  got = engine.sweep(params, CFG, IDS, MASK, dirs, _ablate, metric=METRIC,
                     chunks=engine.Chunks(masks=4, prompts=2))
  for m in range(6):
    _assert_metric_close(got[m], params,
                         DirectionalAblation(jnp.asarray(dirs[m])))
  # Candidates at different layers in one vmapped call, with a shared prefix.
  onehots = np.eye(4, dtype=np.float32)[[2, 3, 2]]
  got = engine.sweep(params, CFG, IDS, MASK, (dirs[:3], onehots), _actadd,
                     shared=jnp.float32(1.0), metric=METRIC, start_layer=2)
  for m, layer in enumerate([2, 3, 2]):
    _assert_metric_close(got[m], params,
                         ActAdd(jnp.asarray(dirs[m]), 1.0, layer=layer))
