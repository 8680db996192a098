"""SAE encode/decode against the published formulas, re-written in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax.sae import SAE
from refusal_jax.sae.model import fold_input_scaling

D, A = 16, 64


def _params(seed=0, dec_norm_spread=False):
  rng = np.random.default_rng(seed)
  w_dec = rng.normal(size=(A, D))
  w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
  if dec_norm_spread:
    w_dec *= rng.uniform(0.3, 2.0, size=(A, 1))
  return {
      'W_enc': rng.normal(size=(D, A)) / np.sqrt(D),
      'b_enc': rng.normal(size=(A,)) * 0.1,
      'W_dec': w_dec,
      'b_dec': rng.normal(size=(D,)) * 0.5,
      'threshold': rng.uniform(0.05, 0.4, size=(A,)),
  }


def _sae(p, architecture, *, k=None, apply_b_dec=True, rescale=False,
         dtype='float32'):
  cast = lambda a: jnp.asarray(np.asarray(a, np.float32)).astype(dtype)
  return SAE(
      W_enc=cast(p['W_enc']), b_enc=cast(p['b_enc']), W_dec=cast(p['W_dec']),
      b_dec=cast(p['b_dec']),
      threshold=(jnp.asarray(p['threshold'], jnp.float32)
                 if architecture == 'jumprelu' else None),
      architecture=architecture, k=k, apply_b_dec_to_input=apply_b_dec,
      rescale_acts_by_decoder_norm=rescale, site='resid_post', layer=3,
      hook_name='blocks.3.hook_resid_post', model_name='toy',
      neuronpedia_id=None, dtype=dtype)


def _ref_encode(p, x, architecture, *, k=None, apply_b_dec=True,
                rescale=False):
  """SAELens semantics in float64 numpy (paper.md section 5.3)."""
  sae_in = x - p['b_dec'] if apply_b_dec else x
  pre = sae_in @ p['W_enc'] + p['b_enc']
  if architecture == 'jumprelu':
    return np.maximum(pre, 0) * (pre > p['threshold'])
  if architecture == 'relu':
    return np.maximum(pre, 0)
  if rescale:
    pre = pre * np.linalg.norm(p['W_dec'], axis=1)
  out = np.zeros_like(pre)
  for row in range(pre.shape[0]):
    top = np.argsort(-pre[row])[:k]
    out[row, top] = np.maximum(pre[row, top], 0)
  return out


def _ref_decode(p, f, *, rescale=False):
  if rescale:
    f = f / np.linalg.norm(p['W_dec'], axis=1)
  return f @ p['W_dec'] + p['b_dec']


def _encode_bound(p, x, *, apply_b_dec=True, rescale=False, scale=1.0, **_):
  """Rounding bound of each pre-activation sum (tests/numerics.py)."""
  sae_in = scale * np.abs(x) + (np.abs(p['b_dec']) if apply_b_dec else 0)
  bound = numerics.sum_bound(
      numerics.abs_matmul(sae_in, p['W_enc'], p['b_enc']), D + 2)
  return bound * np.linalg.norm(p['W_dec'], axis=1) if rescale else bound


def _decode_terms(p, f, *, rescale=False, **_):
  """sum |terms| of each reconstruction element."""
  if rescale:
    f = f / np.linalg.norm(p['W_dec'], axis=1)
  return numerics.abs_matmul(f, p['W_dec'], p['b_dec'])


CASES = [
    dict(architecture='jumprelu', apply_b_dec=True),
    dict(architecture='jumprelu', apply_b_dec=False),
    dict(architecture='relu', apply_b_dec=True),
    dict(architecture='topk', k=5, apply_b_dec=True),
    dict(architecture='topk', k=5, apply_b_dec=False, rescale=True),
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: '-'.join(
    f'{k}={v}' for k, v in c.items()))
def test_encode_decode_match_numpy_reference(case):
  p = _params(1, dec_norm_spread=case.get('rescale', False))
  x = np.random.default_rng(2).normal(size=(32, D))
  sae = _sae(p, **case)
  ref_f = _ref_encode(p, x, **case)
  f = np.asarray(sae.encode(jnp.asarray(x, jnp.float32)))
  assert f.dtype == np.float32
  enc_bound = _encode_bound(p, x, **case)
  numerics.assert_within(f, ref_f, enc_bound, 'encode')
  ref_x_hat = _ref_decode(p, ref_f, rescale=case.get('rescale', False))
  x_hat = np.asarray(sae.decode(jnp.asarray(ref_f, jnp.float32)))
  dec_bound = numerics.sum_bound(_decode_terms(p, ref_f, **case), A + 1)
  numerics.assert_within(x_hat, ref_x_hat, dec_bound, 'decode')
  # reconstruct: the decode bound plus the encode error carried through W_dec
  carried = _decode_terms(p, enc_bound, **case) - np.abs(p['b_dec'])
  numerics.assert_within(sae.reconstruct(jnp.asarray(x, jnp.float32)),
                         ref_x_hat, dec_bound + carried, 'reconstruct')
  fired = (ref_f > 0).sum(-1)
  assert 0 < fired.mean() < A  # the case exercises sparsity
  if case['architecture'] == 'topk':
    assert fired.max() <= case['k']


def test_encode_pre_is_float32_and_matches_reference():
  p = _params(3)
  x = np.random.default_rng(4).normal(size=(2, 5, D))
  pre = _sae(p, 'jumprelu').encode_pre(jnp.asarray(x, jnp.bfloat16))
  assert pre.dtype == jnp.float32 and pre.shape == (2, 5, A)
  x_bf = np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64)
  ref = (x_bf - p['b_dec']) @ p['W_enc'] + p['b_enc']
  numerics.assert_within(pre, ref, _encode_bound(p, x_bf), 'encode_pre')


def test_bf16_weights_keep_float32_threshold():
  p = _params(5)
  sae = _sae(p, 'jumprelu', dtype='bfloat16')
  assert sae.W_enc.dtype == jnp.bfloat16
  assert sae.threshold.dtype == jnp.float32
  x = jnp.asarray(np.random.default_rng(6).normal(size=(8, D)), jnp.bfloat16)
  f = sae.encode(x)
  assert f.dtype == jnp.float32 and sae.decode(f).dtype == jnp.float32
  # bf16 weights are close to, not equal to, the f32 SAE.
  f32 = _sae(p, 'jumprelu').encode(x)
  pre_err = np.max(np.abs(np.asarray(sae.encode_pre(x) - _sae(
      p, 'jumprelu').encode_pre(x))))
  assert 0 < pre_err < 0.05
  assert np.mean(np.asarray((f > 0) == (f32 > 0))) > 0.95
  # threshold survives tree transformations as float32
  moved = jax.tree_util.tree_map(lambda a: a, sae)
  assert moved.threshold.dtype == jnp.float32


@pytest.mark.parametrize('architecture,k', [('jumprelu', None), ('topk', 4),
                                            ('relu', None)])
def test_jit_and_vmap(architecture, k):
  p = _params(7)
  sae = _sae(p, architecture, k=k)
  x = jnp.asarray(np.random.default_rng(8).normal(size=(3, 6, D)),
                  jnp.float32)
  # two float32 evaluations of the same sums: each within the bound of exact
  bound = 2 * _encode_bound(p, np.asarray(x))
  direct = sae.encode(x)
  jitted = jax.jit(lambda s, v: s.encode(v))(sae, x)
  vmapped = jax.vmap(sae.encode)(x)
  vmapped_over_saes = jax.vmap(lambda s: s.encode(x[0]))(
      jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), sae))
  numerics.assert_within(jitted, direct, bound, 'jit')
  numerics.assert_within(vmapped, direct, bound, 'vmap')
  numerics.assert_within(vmapped_over_saes[1], direct[0], bound[0],
                         'vmap over SAEs')
  recon = jax.jit(lambda s, v: s.reconstruct(v))(sae, x)
  assert recon.shape == x.shape


def test_properties():
  sae = _sae(_params(9), 'relu')
  assert (sae.d_in, sae.d_sae) == (D, A)
  # a root of a sum of D squares that add up to 1 (rows rounded to float32)
  numerics.assert_within(sae.decoder_norms(), np.ones(A),
                         numerics.sum_bound(np.ones(A), D), 'decoder norms')


def test_fold_input_scaling_equals_scaled_inputs():
  p = _params(10)
  x = np.random.default_rng(11).normal(size=(16, D)) * 7.0
  s = 0.37
  plain = _sae(p, 'jumprelu', apply_b_dec=True)
  w_enc, w_dec, b_dec = fold_input_scaling(p['W_enc'], p['W_dec'], p['b_dec'],
                                           s, s)
  folded = _sae(dict(p, W_enc=w_enc, W_dec=w_dec, b_dec=b_dec), 'jumprelu',
                apply_b_dec=True)
  f_ref = plain.encode(jnp.asarray(s * x, jnp.float32))
  f = folded.encode(jnp.asarray(x, jnp.float32))
  # both sides are float32 sums of the same terms (folded weights rounded)
  enc_bound = 2 * _encode_bound(p, x, scale=s)
  numerics.assert_within(f, f_ref, enc_bound, 'folded encode')
  assert 0 < float(jnp.mean(jnp.sum(f > 0, -1))) < A
  x_hat_ref = plain.decode(f_ref) / s
  dec_bound = (2 * numerics.sum_bound(_decode_terms(p, np.asarray(f)), A + 1)
               + _decode_terms(p, enc_bound) - np.abs(p['b_dec'])) / s
  numerics.assert_within(folded.decode(f), x_hat_ref, dec_bound,
                         'folded decode')
