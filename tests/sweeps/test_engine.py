"""The sweep engine equals the plain forward pass run one intervention at a time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax import errors
from refusal_jax.interventions.directions import DirectionalAblation, ActAdd
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace
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


# float32 comparisons pinned at 'highest' (tests/conftest.py).
pytestmark = pytest.mark.usefixtures('highest_matmul_precision')


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


# --------------------------------------------------------------------------
# Many SAEs: one feature space


def _topk(sae):
  return sae.replace(architecture='topk', k=6, threshold=None)


SPACES = {
    # Residual SAEs from layer 0 on: the first SAE's latents come with the
    # prefix; resid_post[2] and resid_pre[3] are one residual, edited twice.
    'residual': lambda: [_sae(0, 'resid_post'), _sae(2, 'resid_pre'),
                         _sae(2, 'resid_post'), _topk(_sae(3, 'resid_pre'))],
    # Sub-block outputs first and last: no latents with the prefix, and an
    # edit in the last layer after its resid_pre (no trimmed last layer).
    'sub_blocks': lambda: [_sae(1, 'attn_out'), _topk(_sae(1, 'resid_post')),
                           _sae(2, 'mlp_out'), _sae(3, 'attn_out')],
}


def _plain_edits(space, features, mask, mode, value):
  """One SAEEdit per SAE of the space, with `mask` [C] over `features`."""
  sae_of, latent_of = space.locate(features)
  edits = []
  for s, sae in enumerate(space.saes):
    dense = np.zeros(sae.d_sae, np.float32)
    dense[latent_of[sae_of == s]] = mask[sae_of == s]
    edits.append(SAEEdit(sae=sae, latent_mask=jnp.asarray(dense),
                         value=value, mode=mode))
  return tuple(edits)


@pytest.mark.parametrize('name,mode,value,trim', [
    ('residual', 'zero', 0.0, True), ('residual', 'scale', -1.0, False),
    ('sub_blocks', 'clamp', 1.5, True)])
def test_feature_sweep_equals_one_edit_per_sae(params, monkeypatch, name,
                                               mode, value, trim):
  """Each mask's edits at every SAE's own site in one pass equal the plain
  pass with one SAEEdit per SAE; the shared prefix ends where the first SAE
  with a feature in some mask is read."""
  space = FeatureSpace.of(SPACES[name]()[::-1])  # `of` sorts into pass order
  features = np.concatenate([space.feature_ids(s, RNG.choice(A, 5, False))
                             for s in range(4)])
  RNG.shuffle(features)
  masks = (RNG.rand(6, len(features)) < 0.4).astype(np.float32)
  prefixes = []
  real = engine.prefix_residual
  monkeypatch.setattr(engine, 'prefix_residual', lambda *a: (
      prefixes.append(a[4]), real(*a))[1])
  kw = dict(metric=METRIC, mode=mode, value=value, trim_last_layer=trim,
            chunks=engine.Chunks(masks=4, prompts=3))
  got = engine.feature_sweep(params, CFG, space, IDS, MASK, features, masks,
                             **kw)
  first = space.saes[0]
  assert set(prefixes) == {first.layer + (first.site == 'resid_post')}
  # Without the first SAE's features the prefix runs up to the second's.
  later = masks * (space.locate(features)[0] > 0)
  prefixes.clear()
  got_later = engine.feature_sweep(params, CFG, space, IDS, MASK, features,
                                   later, **kw)
  second = space.saes[1]
  assert set(prefixes) == {second.layer + (second.site == 'resid_post')}
  clean = METRIC(transformer.forward(
      params, CFG, jnp.asarray(IDS), attention_mask=jnp.asarray(MASK),
      logits_at='last').logits[:, 0])
  assert np.abs(got - clean).max() > 1e-3  # the edits matter
  logits = jax.jit(lambda iv: transformer.forward(
      params, CFG, jnp.asarray(IDS), attention_mask=jnp.asarray(MASK),
      interventions=iv, logits_at='last').logits[:, 0])
  for vals, rows in ((got, masks), (got_later, later)):
    for m in range(len(rows)):
      edited = logits(_plain_edits(space, features, rows[m], mode, value))
      numerics.assert_close(vals[m], METRIC(edited),
                            ulps=numerics.FORWARD_ULPS,
                            scale=float(jnp.abs(edited).max()),
                            what=f'{name}, mask {m}')


def test_one_sae_of_a_space_equals_sae_sweep_bit_for_bit(params):
  """SAEs without a feature in any mask take no part: a sweep over one SAE
  of a larger space is the single-SAE sweep, exactly."""
  space = FeatureSpace.of(SPACES['residual']())
  candidates = np.array([2, 7, 11, 23, 31, 38])
  masks = (RNG.rand(7, len(candidates)) < 0.5).astype(np.float32)
  kw = dict(metric=METRIC, mode='scale', value=-2.0,
            chunks=engine.Chunks(masks=3, prompts=2))
  want = engine.sae_sweep(params, CFG, space.saes[1], IDS, MASK, candidates,
                          masks, **kw)
  others = space.feature_ids(2, candidates[:3])
  got = engine.feature_sweep(
      params, CFG, space, IDS, MASK,
      np.concatenate([others, space.feature_ids(1, candidates)]),
      np.concatenate([np.zeros((7, 3), np.float32), masks], axis=1), **kw)
  np.testing.assert_array_equal(got, want)


def test_feature_space_numbers_latents_in_pass_order():
  saes = SPACES['sub_blocks']()
  space = FeatureSpace.of(saes[::-1])
  assert [s.hook_name for s in space.saes] == [s.hook_name for s in saes]
  assert space.size == 4 * A and list(space.offsets) == [0, A, 2 * A, 3 * A,
                                                         4 * A]
  s, a = space.locate([0, A - 1, A, 3 * A + 5])
  assert list(s) == [0, 0, 1, 3] and list(a) == [0, A - 1, 0, 5]
  assert space.label(A + 3) == 'blocks.1.hook_resid_post/3'
  with pytest.raises(errors.ConfigError, match='outside'):
    space.locate([4 * A])
  with pytest.raises(errors.ConfigError, match='distinct sites'):
    FeatureSpace.of([saes[0], saes[0]])
  with pytest.raises(errors.ConfigError, match='pass'):
    FeatureSpace(tuple(saes[::-1]))
