"""SAE latent edits inside the model and first-order attribution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax import errors
from refusal_jax.interventions import attribution
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sae.model import SAE

CFG = ModelConfig.llama(vocab_size=41, d_model=16, num_layers=3, num_heads=2,
                        num_kv_heads=1, head_dim=8, mlp_dim=23)
IDS = jnp.asarray(np.random.RandomState(0).randint(0, 41, (3, 8)))
MASK = jnp.asarray(np.r_[np.ones((2, 8)), [[0, 0] + [1] * 6]].astype(np.int32))
A = 48


def make_sae(layer=1, site='resid_post', seed=0, arch='relu'):
  k = jax.random.split(jax.random.key(seed), 4)
  return SAE(W_enc=jax.random.normal(k[0], (16, A)) * 0.5,
             b_enc=jax.random.normal(k[1], (A,)) * 0.1,
             W_dec=jax.random.normal(k[2], (A, 16)) * 0.3,
             b_dec=jax.random.normal(k[3], (16,)) * 0.1,
             threshold=jnp.full((A,), 0.05) if arch == 'jumprelu' else None,
             architecture=arch, k=None, apply_b_dec_to_input=False,
             rescale_acts_by_decoder_norm=False, site=site, layer=layer,
             hook_name=f'blocks.{layer}.hook_{site}', model_name='tiny',
             neuronpedia_id=None, dtype='float32')


@pytest.fixture(scope='module')
def params():
  return transformer.init_params(CFG, seed=7)


def test_empty_edit_reproduces_clean_logits_exactly(params):
  sae = make_sae(arch='jumprelu')
  clean = transformer.forward(params, CFG, IDS, attention_mask=MASK)
  for mode in ('zero', 'clamp', 'scale'):
    edit = SAEEdit(sae=sae, latent_mask=jnp.zeros(A), value=3.0, mode=mode)
    out = transformer.forward(params, CFG, IDS, attention_mask=MASK,
                              interventions=edit)
    np.testing.assert_array_equal(np.asarray(out.logits),
                                  np.asarray(clean.logits))


@pytest.mark.parametrize('mode,value', [('zero', 0.0), ('clamp', 2.5),
                                        ('scale', -3.0)])
def test_edit_changes_only_edited_latents_and_keeps_error(params, mode, value):
  sae = make_sae()
  site = (sae.site, sae.layer)
  mask = jnp.zeros(A).at[jnp.array([3, 10, 20])].set(1.0)
  clean = transformer.forward(params, CFG, IDS, attention_mask=MASK,
                              capture=[site])
  out = transformer.forward(params, CFG, IDS, attention_mask=MASK,
                            capture=[site],
                            interventions=SAEEdit(sae=sae, latent_mask=mask,
                                                  value=value, mode=mode))
  x = np.asarray(clean.captured[site])
  f = np.maximum(x @ np.asarray(sae.W_enc) + np.asarray(sae.b_enc), 0)
  g = f.copy()
  idx = [3, 10, 20]
  g[..., idx] = {'zero': 0.0, 'clamp': value,
                 'scale': value * f[..., idx]}[mode]
  expect = x + (g - f) @ np.asarray(sae.W_dec)
  real = np.asarray(MASK, bool)
  numerics.assert_close(np.asarray(out.captured[site])[real], expect[real],
                        ulps=numerics.FORWARD_ULPS)
  # Padding positions are left alone.
  np.testing.assert_array_equal(np.asarray(out.captured[site])[~real],
                                x[~real])


def test_prompt_only_edits_do_not_touch_generated_tokens(params):
  sae = make_sae()
  mask = jnp.zeros(A).at[5].set(1.0)
  plain = transformer.forward(params, CFG, IDS, attention_mask=MASK,
                              interventions=SAEEdit(sae=sae, latent_mask=mask,
                                                    positions='prompt'),
                              prompt_mask=jnp.zeros((3, 8), bool))
  clean = transformer.forward(params, CFG, IDS, attention_mask=MASK)
  np.testing.assert_array_equal(np.asarray(plain.logits),
                                np.asarray(clean.logits))


def test_skipped_token_ids_are_left_unchanged_everywhere(params):
  """skip_ids leave their tokens' residual as clean: in a full pass, in a
  pass resumed from a residual (given the ids), and while generating."""
  sae = make_sae(layer=0)
  site = (sae.site, sae.layer)
  ids = np.asarray(IDS).copy()
  real = np.asarray(MASK, bool)
  first = real.argmax(axis=1)
  ids[np.arange(3), first] = 40  # a "BOS" at each row's first real token
  ids[0, 5] = 39  # another special token mid-prompt
  skip = jnp.asarray([39, 40])
  mask = jnp.ones(A)
  edit = lambda s: SAEEdit(sae=sae, latent_mask=mask, skip_ids=s)
  kw = dict(attention_mask=MASK, capture=[site], logits_at='none')
  clean = np.asarray(transformer.forward(params, CFG, ids, **kw).captured[
      site])
  got = np.asarray(transformer.forward(params, CFG, ids, interventions=edit(
      skip), **kw).captured[site])
  everywhere = np.asarray(transformer.forward(
      params, CFG, ids, interventions=edit(None), **kw).captured[site])
  skipped = np.isin(ids, [39, 40]) & real
  np.testing.assert_array_equal(got[skipped], clean[skipped])
  assert np.abs(everywhere[skipped] - clean[skipped]).max() > 1e-3
  # every other real token is edited as without skip_ids
  np.testing.assert_array_equal(got[real & ~skipped],
                                everywhere[real & ~skipped])
  # Resumed from resid_pre[1]: the ids still reach the edit.
  late = SAEEdit(sae=make_sae(layer=1), latent_mask=mask, skip_ids=skip)
  resid = transformer.forward(params, CFG, ids, attention_mask=MASK,
                              stop_layer=1).resid
  resumed = transformer.forward(params, CFG, ids, attention_mask=MASK,
                                start_layer=1, resid=resid,
                                interventions=late)
  full = transformer.forward(params, CFG, ids, attention_mask=MASK,
                             interventions=late)
  numerics.assert_close(resumed.logits, full.logits,
                        ulps=numerics.FORWARD_ULPS)
  with pytest.raises(errors.ConfigError, match='needs the token ids'):
    transformer.forward(params, CFG, None, attention_mask=MASK,
                        start_layer=1, resid=resid, interventions=late)
  # A generation step (one new token, not in the prompt): a skipped id is
  # left alone there too.
  step = lambda iv: np.asarray(transformer.forward(
      params, CFG, jnp.full((3, 1), 40), attention_mask=jnp.ones((3, 1)),
      capture=[site], logits_at='none', interventions=iv,
      prompt_mask=jnp.zeros((3, 1), bool)).captured[site])
  np.testing.assert_array_equal(step(edit(skip)), step(None))
  assert np.abs(step(edit(None)) - step(None)).max() > 1e-3


def test_attribution_is_exact_for_a_linear_metric(params):
  sae = make_sae()
  site = (sae.site, sae.layer)
  w = jax.random.normal(jax.random.key(9), (16,))
  metric = lambda out: jnp.einsum('BTD,D,BT->', out.captured[site], w, MASK)
  est = attribution.latent_attribution(params, CFG, sae, IDS, MASK, metric,
                                       capture=[site], logits_at='none')
  base = metric(transformer.forward(params, CFG, IDS, attention_mask=MASK,
                                    capture=[site], logits_at='none'))

  def ablated(a):
    edit = SAEEdit(sae=sae, latent_mask=jax.nn.one_hot(a, A))
    return metric(transformer.forward(params, CFG, IDS, attention_mask=MASK,
                                      capture=[site], logits_at='none',
                                      interventions=edit)) - base

  true = jax.jit(jax.vmap(ablated))(jnp.arange(A))
  # exact for a linear metric, up to rounding of the A ablated passes
  numerics.assert_close(est, true, ulps=numerics.FORWARD_ULPS)


def _ranks(x):
  return np.argsort(np.argsort(x))


def test_attribution_ranks_true_ablation_effects(params):
  """On the full nonlinear model the estimate ranks true effects well."""
  sae = make_sae(layer=1)
  metric = lambda out: jax.nn.log_softmax(out.logits[:, -1])[:, 7].mean()
  est = attribution.latent_attribution(params, CFG, sae, IDS, MASK, metric)
  base = metric(transformer.forward(params, CFG, IDS, attention_mask=MASK,
                                    logits_at='last'))

  def ablated(a):
    edit = SAEEdit(sae=sae, latent_mask=jax.nn.one_hot(a, A))
    return metric(transformer.forward(params, CFG, IDS, attention_mask=MASK,
                                      logits_at='last',
                                      interventions=edit)) - base

  true = np.asarray(jax.jit(jax.vmap(ablated))(jnp.arange(A)))
  rho = np.corrcoef(_ranks(np.asarray(est)), _ranks(true))[0, 1]
  print(f'ATTRIBUTION spearman {rho:.3f}')
  assert rho > 0.8
