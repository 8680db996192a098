"""The scanned-layers decoder (models/scan.py) computes transformer.forward."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from refusal_jax import errors
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models import scan
from refusal_jax.models import sites
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig, RopeScaling
from refusal_jax.sae.model import SAE

# Distinct sizes, a window shorter than the prompts (Gemma-2's sliding
# layers differ from its global ones), llama3 RoPE scaling and an untied head.
GEMMA = ModelConfig.gemma2(vocab_size=31, d_model=14, num_layers=4,
                           num_heads=3, num_kv_heads=1, head_dim=6, mlp_dim=17,
                           query_pre_attn_scalar=7, sliding_window=3,
                           attn_softcap=2.0, final_softcap=3.0)
LLAMA = ModelConfig.llama(vocab_size=31, d_model=20, num_layers=3,
                          num_heads=4, num_kv_heads=2, head_dim=12, mlp_dim=29,
                          rope_theta=10000.0, rope_scaling=RopeScaling(
                              factor=8.0, low_freq_factor=1.0,
                              high_freq_factor=4.0,
                              original_max_position_embeddings=16))
CONFIGS = {'gemma2': GEMMA, 'llama': LLAMA}
TOL = 1e-5
A = 11


def _params(config):
  """Random float32 parameters, norm weights included (they start at 0 / 1,
  so a norm applied with another layer's weights would not show), drawn
  with numpy: no JAX compilation."""
  rng = np.random.RandomState(3)
  one = 0.0 if config.norm_unit_offset else 1.0

  def draw(leaf):
    noise = rng.standard_normal(leaf.shape).astype(np.float32)
    if len(leaf.shape) == 1:
      return jnp.asarray(one + 0.2 * noise)
    return jnp.asarray(0.15 * noise)

  return jax.tree.map(draw, transformer.abstract_params(config))


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def setup(request):
  config = CONFIGS[request.param]
  params = _params(config)
  ids = np.random.RandomState(0).randint(0, 31, size=(2, 9))
  mask = np.ones_like(ids)
  mask[0, :3] = 0
  return config, params, scan.stack_layers(params, config), (
      jnp.asarray(ids), jnp.asarray(mask))


@functools.partial(jax.jit, static_argnames='config')
def _unrolled(params, config, ids, mask):
  return transformer.forward(params, config, ids, attention_mask=mask).logits


@functools.partial(jax.jit, static_argnames='config')
def _scanned(stacked, config, ids, mask):
  return scan.scan_forward(stacked, config, ids, attention_mask=mask).logits


@functools.partial(jax.jit, static_argnames='config')
def _split_scanned(stacked, config, ids, mask):
  """(resid_pre[2], last-position logits resumed from it)."""
  head = scan.scan_forward(stacked, config, ids, attention_mask=mask,
                           stop_layer=2)
  assert head.logits is None
  tail = scan.scan_forward(stacked, config, ids, attention_mask=mask,
                           start_layer=2, resid=head.resid, logits_at='last')
  return head.resid, tail.logits


def _close(got, want):
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0,
                             atol=TOL)


def test_logits_equal_the_unrolled_pass(setup):
  config, params, stacked, (ids, mask) = setup
  want = _unrolled(params, config, ids, mask)
  got = _scanned(stacked, config, ids, mask)
  assert got.shape == want.shape == (2, 9, 31)
  _close(got, want)


def test_stop_and_resume_equal_the_unrolled_pass(setup):
  config, params, stacked, (ids, mask) = setup
  want = jax.jit(functools.partial(
      transformer.forward, config=config, stop_layer=2))(
          params, input_ids=ids, attention_mask=mask).resid
  resid, last = _split_scanned(stacked, config, ids, mask)
  _close(resid, want)
  # Left padding: each row's last real token is the last slot.
  _close(last[:, 0], _unrolled(params, config, ids, mask)[:, -1])


def test_ablation_at_a_traced_layer_per_row(setup):
  """A sweep whose rows ablate a direction each at their own layer."""
  config, params, stacked, (ids, mask) = setup
  at = [config.num_layers - 1, 0]  # Gemma-2: a global, then a sliding layer
  dirs = jnp.asarray(np.random.RandomState(1).standard_normal(
      (len(at), config.d_model)), jnp.float32)

  def unrolled(d, layer):
    iv = DirectionalAblation(d, sites=(sites.RESID_PRE,), layers=(layer,))
    return transformer.forward(params, config, ids, attention_mask=mask,
                               interventions=iv, logits_at='last').logits

  want = jax.jit(lambda dirs: jnp.stack(
      [unrolled(d, l) for d, l in zip(dirs, at)]))(dirs)

  @jax.jit
  def scanned(dirs, at):
    def one(d, layer):
      iv = scan.AtLayer(DirectionalAblation(d, sites=(sites.RESID_PRE,)),
                        layer)
      return scan.scan_forward(stacked, config, ids, attention_mask=mask,
                               interventions=iv, logits_at='last').logits
    return jax.vmap(one)(dirs, at)

  got = scanned(dirs, jnp.asarray(at, jnp.int32))
  _close(got, want)
  clean = _unrolled(params, config, ids, mask)[:, -1:]
  assert all(np.abs(np.asarray(row - clean)).max() > 1e-3 for row in got)


def test_sae_edit_at_its_layer_vmapped_over_masks(setup):
  config, params, stacked, (ids, mask) = setup
  d = config.d_model
  rng = np.random.RandomState(2)
  sae = SAE(W_enc=jnp.asarray(0.5 * rng.standard_normal((d, A)), jnp.float32),
            b_enc=jnp.zeros(A),
            W_dec=jnp.asarray(0.3 * rng.standard_normal((A, d)), jnp.float32),
            b_dec=jnp.zeros(d), threshold=None, architecture='relu', k=None,
            apply_b_dec_to_input=False, rescale_acts_by_decoder_norm=False,
            site=sites.RESID_POST, layer=1,
            hook_name=sites.hook_name(sites.RESID_POST, 1), model_name='tiny',
            neuronpedia_id=None, dtype='float32')
  masks = jnp.asarray(rng.rand(3, A) < 0.5, jnp.float32)

  def unrolled(m):
    return transformer.forward(
        params, config, ids, attention_mask=mask, logits_at='last',
        interventions=SAEEdit(sae=sae, latent_mask=m)).logits

  def scanned(m):
    iv = scan.AtLayer(SAEEdit(sae=sae, latent_mask=m), sae.layer,
                      inner_layer=sae.layer)
    return scan.scan_forward(stacked, config, ids, attention_mask=mask,
                             logits_at='last', interventions=iv).logits

  _close(jax.jit(jax.vmap(scanned))(masks),
         jax.jit(jax.vmap(unrolled))(masks))


def test_bad_input_raises(setup):
  config, params, stacked, (ids, _) = setup
  with pytest.raises(errors.ConfigError):
    scan.scan_forward(stacked, config, ids, stop_layer=9)
  with pytest.raises(errors.ConfigError):
    scan.scan_forward(stacked, config, ids, start_layer=1)
  with pytest.raises(errors.ConfigError):
    scan.scan_forward(stacked, config, ids, logits_at='first')
  other = GEMMA if config is LLAMA else LLAMA
  with pytest.raises(errors.ConfigError):
    scan.stack_layers(params, other)
