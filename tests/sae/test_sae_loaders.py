"""Loaders on folders built in the published layouts, against numpy references.

Run with `-s` to print the measured encode/decode agreement table.
"""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import numerics
from refusal_jax import errors
from refusal_jax.sae import check_sae_fits
from refusal_jax.sae import load_sae
from refusal_jax.sae import save_sae

MEASURED = {}


@pytest.fixture(scope='module', autouse=True)
def _report_table():
  yield
  if MEASURED:
    print('\n\n| format | encode max abs err | decode max abs err | '
          'worst error / rounding bound | mean L0 |')
    print('|---|---|---|---|---|')
    for name, (enc, dec, ratio, l0) in MEASURED.items():
      print(f'| {name} | {enc:.2e} | {dec:.2e} | {ratio:.3f} | {l0:.1f} |')


def _check(name, f, ref_f, enc_terms, n_enc, x_hat, ref_x_hat, dec_terms,
           n_dec):
  """Encode and decode within the rounding bound of their sums (numerics.py).

  Args:
    name: row name in the printed table.
    f, ref_f: latents, ours and the float64 reference.
    enc_terms, n_enc: sum |terms| of each pre-activation, and how many terms.
    x_hat, ref_x_hat: reconstructions, ours and the reference.
    dec_terms, n_dec: the same for each reconstruction element.
  """
  enc_bound = numerics.sum_bound(enc_terms, n_enc)
  dec_bound = numerics.sum_bound(dec_terms, n_dec)
  f = np.asarray(f, np.float64)
  x_hat = np.asarray(x_hat, np.float64)
  ratio = max(float(np.max(np.abs(f - ref_f) / enc_bound)),
              float(np.max(np.abs(x_hat - ref_x_hat) / dec_bound)))
  MEASURED[name] = (float(np.max(np.abs(f - ref_f))),
                    float(np.max(np.abs(x_hat - ref_x_hat))), ratio,
                    float((ref_f > 0).sum(-1).mean()))
  numerics.assert_within(f, ref_f, enc_bound, f'{name} encode')
  numerics.assert_within(x_hat, ref_x_hat, dec_bound, f'{name} decode')


def _r32(a):
  """Rounds to float32 and back, so references see exactly the SAE's inputs."""
  return np.asarray(a, np.float32).astype(np.float64)


def _unit_rows(w):
  return w / np.linalg.norm(w, axis=1, keepdims=True)


# --------------------------------------------------------------- builders


def _gemma_arrays(rng, d=8, a=16384):
  return {
      'W_enc': (rng.normal(size=(d, a)) / np.sqrt(d)).astype(np.float32),
      'W_dec': _unit_rows(rng.normal(size=(a, d))).astype(np.float32),
      'b_enc': (rng.normal(size=(a,)) * 0.1).astype(np.float32),
      'b_dec': (rng.normal(size=(d,)) * 0.3).astype(np.float32),
      # pre-activations have std ~1.5 on the test inputs: L0 ~ 10-50
      'threshold': rng.uniform(4.0, 7.0, size=(a,)).astype(np.float32),
  }


def _write_gemma(root, arrays, leaf='average_l0_71', layer=5, width='16k'):
  folder = root / 'gemma-scope-2b-pt-res' / f'layer_{layer}' / (
      f'width_{width}') / leaf
  folder.mkdir(parents=True)
  np.savez(folder / 'params.npz', **arrays)
  return folder


LLAMA_HP = {
    'd_model': 64, 'd_sae': 512, 'expansion_factor': 8,
    'hook_point_in': 'blocks.8.hook_resid_post',
    'hook_point_out': 'blocks.8.hook_resid_post',
    'act_fn': 'jumprelu', 'jump_relu_threshold': 0.2021484375,
    'norm_activation': 'dataset-wise',
    'dataset_average_activation_norm': {'in': 6.3125, 'out': 6.3125},
    'use_decoder_bias': True, 'apply_decoder_bias_to_pre_encoder': False,
    'sparsity_include_decoder_norm': True, 'top_k': 50,
    'k_warmup_steps': 0.1, 'l1_coefficient': 8e-05,
    'dtype': 'torch.float32',
}


def _llama_tensors(rng, d=64, a=512, dtype=torch.float32):
  dec = _unit_rows(rng.normal(size=(a, d))) * rng.uniform(0.2, 1.5, (a, 1))
  return {
      'encoder.weight': torch.tensor(rng.normal(size=(a, d)) / np.sqrt(d),
                                     dtype=dtype),
      'encoder.bias': torch.tensor(rng.normal(size=(a,)) * 0.2, dtype=dtype),
      'decoder.weight': torch.tensor(dec.T.copy(), dtype=dtype),
      'decoder.bias': torch.tensor(rng.normal(size=(d,)) * 0.1, dtype=dtype),
  }


def _write_llama(root, hp, tensors, name='Llama3_1-8B-Base-L8R-8x'):
  folder = root / name
  (folder / 'checkpoints').mkdir(parents=True)
  (folder / 'hyperparams.json').write_text(json.dumps(hp))
  safetensors.torch.save_file(tensors,
                              str(folder / 'checkpoints' / 'final.safetensors'))
  (folder / 'lm_config.json').write_text('{}')
  return folder


def _saelens_arrays(rng, d=16, a=96, architecture='jumprelu', spread=False):
  w_dec = _unit_rows(rng.normal(size=(a, d)))
  if spread:
    w_dec = w_dec * rng.uniform(0.3, 2.0, (a, 1))
  arrays = {
      'W_enc': rng.normal(size=(d, a)) / np.sqrt(d),
      'W_dec': w_dec,
      'b_enc': rng.normal(size=(a,)) * 0.1,
      'b_dec': rng.normal(size=(d,)) * 0.5,
  }
  if architecture == 'jumprelu':
    arrays['threshold'] = rng.uniform(0.1, 0.6, size=(a,))
  return {k: v.astype(np.float32) for k, v in arrays.items()}


def _cfg6(architecture='jumprelu', d=16, a=96, **extra):
  cfg = {
      'architecture': architecture, 'd_in': d, 'd_sae': a,
      'dtype': 'float32', 'device': 'cpu', 'apply_b_dec_to_input': True,
      'normalize_activations': 'none', 'reshape_activations': 'none',
      'metadata': {
          'model_name': 'gemma-2-2b', 'hook_name': 'blocks.12.hook_resid_post',
          'hook_head_index': None, 'prepend_bos': True, 'context_size': 1024,
          'dataset_path': 'monology/pile-uncopyrighted',
          'neuronpedia_id': 'gemma-2-2b/12-res', 'sae_lens_version': '6.18.0',
      },
  }
  cfg.update(extra)
  return cfg


def _cfg_old(**extra):
  cfg = {
      'architecture': 'standard', 'd_in': 16, 'd_sae': 96,
      'activation_fn_str': 'relu', 'finetuning_scaling_factor': False,
      'context_size': 128, 'model_name': 'gpt2-small',
      'hook_point': 'blocks.7.hook_resid_pre', 'hook_point_layer': 7,
      'hook_point_head_index': None, 'prepend_bos': True,
      'dataset_path': 'Skylion007/openwebtext', 'normalize_activations': False,
      'dtype': 'torch.float32', 'device': 'cpu',
      'sae_lens_training_version': '3.5.0',
  }
  cfg.update(extra)
  return cfg


def _write_saelens(root, cfg, arrays, name='sae'):
  folder = root / name
  folder.mkdir(parents=True)
  (folder / 'cfg.json').write_text(json.dumps(cfg))
  safetensors.numpy.save_file(arrays, str(folder / 'sae_weights.safetensors'))
  return folder


# ---------------------------------------------------------- numpy references


def _jumprelu_ref(x, w_enc, b_enc, w_dec, b_dec, thr, apply_b_dec):
  x = np.asarray(x, np.float64)
  sae_in = x - b_dec if apply_b_dec else x
  pre = sae_in @ w_enc + b_enc
  f = (pre > thr) * np.maximum(pre, 0)
  return f, _r32(f) @ w_dec + b_dec


# --------------------------------------------------------------- Gemma Scope


def test_gemma_scope_matches_published_formula(tmp_path):
  rng = np.random.default_rng(0)
  arrays = _gemma_arrays(rng)
  sae = load_sae(_write_gemma(tmp_path, arrays))
  assert (sae.architecture, sae.site, sae.layer) == ('jumprelu',
                                                     'resid_post', 5)
  assert sae.hook_name == 'blocks.5.hook_resid_post'
  assert (sae.d_in, sae.d_sae, sae.apply_b_dec_to_input) == (8, 16384, False)
  assert sae.dtype == 'float32' and sae.threshold.dtype == jnp.float32
  x = _r32(rng.normal(size=(24, 8)) * 1.5)
  a = {k: v.astype(np.float64) for k, v in arrays.items()}
  ref_f, ref_x_hat = _jumprelu_ref(x, a['W_enc'], a['b_enc'], a['W_dec'],
                                   a['b_dec'], a['threshold'], False)
  f = sae.encode(jnp.asarray(x, jnp.float32))
  x_hat = sae.decode(jnp.asarray(ref_f, jnp.float32))
  _check('Gemma Scope (params.npz)',
         f, ref_f, numerics.abs_matmul(x, a['W_enc'], a['b_enc']), 8 + 1,
         x_hat, ref_x_hat, numerics.abs_matmul(ref_f, a['W_dec'], a['b_dec']),
         16384 + 1)
  assert 0 < (ref_f > 0).sum(-1).mean() < 16384
  # subtracting b_dec (the SAELens default) would give a different answer
  wrong, _ = _jumprelu_ref(x, a['W_enc'], a['b_enc'], a['W_dec'], a['b_dec'],
                           a['threshold'], True)
  assert np.max(np.abs(wrong - ref_f)) > 1e-2


def test_gemma_scope_canonical_lowercase_keys_and_scaling_factor(tmp_path):
  rng = np.random.default_rng(1)
  arrays = _gemma_arrays(rng)
  scaling = rng.uniform(0.5, 2.0, size=(16384,)).astype(np.float32)
  stored = {('w_enc' if k == 'W_enc' else 'w_dec' if k == 'W_dec' else k): v
            for k, v in arrays.items()}
  stored['scaling_factor'] = scaling
  sae = load_sae(_write_gemma(tmp_path, stored, leaf='canonical', layer=20))
  assert sae.layer == 20
  f = np.random.default_rng(2).uniform(0, 1, size=(4, 16384))
  f = _r32(f)
  ref = (f * scaling) @ arrays['W_dec'].astype(np.float64) + arrays['b_dec']
  numerics.assert_within(
      sae.decode(jnp.asarray(f, jnp.float32)), ref,
      numerics.sum_bound(numerics.abs_matmul(
          f * scaling, arrays['W_dec'], arrays['b_dec']), 16384 + 1),
      'decode with scaling_factor')


def test_gemma_scope_bf16_keeps_float32_threshold(tmp_path):
  rng = np.random.default_rng(3)
  arrays = _gemma_arrays(rng)
  sae = load_sae(_write_gemma(tmp_path, arrays), dtype='bfloat16')
  assert sae.W_enc.dtype == jnp.bfloat16 and sae.b_dec.dtype == jnp.bfloat16
  assert sae.dtype == 'bfloat16'
  assert sae.threshold.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(sae.threshold),
                                arrays['threshold'])


# --------------------------------------------------------------- Llama Scope


def _openmoss_reference(x, hp, t):
  """OpenMOSS inference in float64: normalise, JumpReLU, decode, scale back."""
  d = hp['d_model']
  s_in = math.sqrt(d) / hp['dataset_average_activation_norm']['in']
  s_out = math.sqrt(d) / hp['dataset_average_activation_norm']['out']
  enc = t['encoder.weight'].double().numpy()
  dec = t['decoder.weight'].double().numpy()
  theta = hp['jump_relu_threshold'] * s_in  # SAELens's scalar threshold
  x_n = s_in * x
  if hp['apply_decoder_bias_to_pre_encoder']:
    x_n = x_n - t['decoder.bias'].double().numpy()
  pre = x_n @ enc.T + t['encoder.bias'].double().numpy()
  norms = np.linalg.norm(dec, axis=0) if hp[
      'sparsity_include_decoder_norm'] else 1.0
  f = pre * (pre * norms > theta)
  x_hat = (_r32(f) @ dec.T + t['decoder.bias'].double().numpy()) / s_out
  return f, x_hat


@pytest.mark.parametrize('include_decoder_norm,pre_bias',
                         [(True, False), (False, False), (True, True)])
def test_llama_scope_matches_openmoss_semantics(tmp_path, include_decoder_norm,
                                                pre_bias):
  rng = np.random.default_rng(4)
  hp = dict(LLAMA_HP, sparsity_include_decoder_norm=include_decoder_norm,
            apply_decoder_bias_to_pre_encoder=pre_bias)
  tensors = _llama_tensors(rng)
  sae = load_sae(_write_llama(tmp_path, hp, tensors))
  assert (sae.site, sae.layer, sae.architecture) == ('resid_post', 8,
                                                     'jumprelu')
  assert sae.model_name == 'meta-llama/Llama-3.1-8B'
  assert sae.threshold.dtype == jnp.float32
  # raw residuals with average norm ~ dataset_average_activation_norm['in']
  x = _r32(rng.normal(size=(32, 64)) * 6.3125 / 8.0)
  ref_f, ref_x_hat = _openmoss_reference(x, hp, tensors)
  f = sae.encode(jnp.asarray(x, jnp.float32))
  x_hat = sae.decode(jnp.asarray(ref_f, jnp.float32))
  name = ('Llama Scope, sparsity_include_decoder_norm='
          f'{str(include_decoder_norm).lower()}')
  if pre_bias:
    name += ', apply_decoder_bias_to_pre_encoder=true'
  s_in = 8.0 / 6.3125  # sqrt(d_model) / dataset_average_activation_norm
  b_dec = tensors['decoder.bias'].double().numpy()
  enc_in = s_in * np.abs(x) + (np.abs(b_dec) if pre_bias else 0)
  _check(name, f, ref_f,
         numerics.abs_matmul(enc_in, tensors['encoder.weight'].double().numpy().T,
                             tensors['encoder.bias'].double().numpy()), 64 + 2,
         x_hat, ref_x_hat,
         numerics.abs_matmul(ref_f, tensors['decoder.weight'].double().numpy().T,
                             b_dec) / s_in, 512 + 1)
  l0 = (ref_f > 0).sum(-1).mean()
  assert 5 < l0 < 500
  # the decoder-norm rule changes which latents fire in this fixture
  other = dict(hp, sparsity_include_decoder_norm=not include_decoder_norm)
  other_f, _ = _openmoss_reference(x, other, tensors)
  assert np.sum((other_f > 0) != (ref_f > 0)) > 10


def test_llama_scope_bf16_file(tmp_path):
  rng = np.random.default_rng(5)
  hp = dict(LLAMA_HP, dtype='torch.bfloat16')
  tensors = _llama_tensors(rng, dtype=torch.bfloat16)
  sae = load_sae(_write_llama(tmp_path, hp, tensors))
  assert sae.dtype == 'bfloat16' and sae.W_enc.dtype == jnp.bfloat16
  assert sae.threshold.dtype == jnp.float32
  x = _r32(rng.normal(size=(16, 64)) * 0.8)
  ref_f, _ = _openmoss_reference(x, hp, tensors)
  f = np.asarray(sae.encode(jnp.asarray(x, jnp.float32)))
  # bf16 weights (W_enc is folded then rounded): close, not exact
  assert np.mean((f > 0) == (ref_f > 0)) > 0.98
  both = (f > 0) & (ref_f > 0)
  assert np.max(np.abs(f - ref_f)[both]) < 0.02 * np.max(ref_f)


# ------------------------------------------------------------------- SAELens


def test_saelens_6x_jumprelu(tmp_path):
  rng = np.random.default_rng(6)
  arrays = _saelens_arrays(rng)
  sae = load_sae(_write_saelens(tmp_path, _cfg6(), arrays))
  assert (sae.site, sae.layer, sae.model_name) == ('resid_post', 12,
                                                   'gemma-2-2b')
  assert sae.neuronpedia_id == 'gemma-2-2b/12-res'
  x = _r32(rng.normal(size=(20, 16)))
  a = {k: v.astype(np.float64) for k, v in arrays.items()}
  ref_f, ref_x_hat = _jumprelu_ref(x, a['W_enc'], a['b_enc'], a['W_dec'],
                                   a['b_dec'], a['threshold'], True)
  f = sae.encode(jnp.asarray(x, jnp.float32))
  x_hat = sae.decode(jnp.asarray(ref_f, jnp.float32))
  _check('SAELens 6.x jumprelu', f, ref_f,
         numerics.abs_matmul(np.abs(x) + np.abs(a['b_dec']), a['W_enc'],
                             a['b_enc']), 16 + 2,
         x_hat, ref_x_hat, numerics.abs_matmul(ref_f, a['W_dec'], a['b_dec']),
         96 + 1)
  assert 0 < (ref_f > 0).sum(-1).mean() < 96


def test_saelens_6x_topk_rescaled(tmp_path):
  rng = np.random.default_rng(7)
  arrays = _saelens_arrays(rng, architecture='topk', spread=True)
  cfg = _cfg6('topk', k=6, rescale_acts_by_decoder_norm=True)
  sae = load_sae(_write_saelens(tmp_path, cfg, arrays))
  assert (sae.architecture, sae.k, sae.rescale_acts_by_decoder_norm) == (
      'topk', 6, True)
  x = _r32(rng.normal(size=(20, 16)))
  a = {k: v.astype(np.float64) for k, v in arrays.items()}
  norms = np.linalg.norm(a['W_dec'], axis=1)
  pre = ((x - a['b_dec']) @ a['W_enc'] + a['b_enc']) * norms
  ref_f = np.zeros_like(pre)
  for i, row in enumerate(pre):
    top = np.argsort(-row)[:6]
    ref_f[i, top] = np.maximum(row[top], 0)
  ref_x_hat = (_r32(ref_f) / norms) @ a['W_dec'] + a['b_dec']
  f = sae.encode(jnp.asarray(x, jnp.float32))
  x_hat = sae.decode(jnp.asarray(ref_f, jnp.float32))
  _check('SAELens 6.x topk (rescale_acts_by_decoder_norm)', f, ref_f,
         numerics.abs_matmul(np.abs(x) + np.abs(a['b_dec']), a['W_enc'],
                             a['b_enc']) * norms, 16 + 2,
         x_hat, ref_x_hat,
         numerics.abs_matmul(ref_f / norms, a['W_dec'], a['b_dec']), 96 + 1)


def test_saelens_pre6_relu(tmp_path):
  rng = np.random.default_rng(8)
  arrays = _saelens_arrays(rng, architecture='standard')
  sae = load_sae(_write_saelens(tmp_path, _cfg_old(), arrays))
  assert (sae.architecture, sae.site, sae.layer) == ('relu', 'resid_pre', 7)
  assert sae.apply_b_dec_to_input  # pre-6.0 default
  assert sae.model_name == 'gpt2-small'
  x = _r32(rng.normal(size=(20, 16)))
  a = {k: v.astype(np.float64) for k, v in arrays.items()}
  ref_f = np.maximum((x - a['b_dec']) @ a['W_enc'] + a['b_enc'], 0)
  ref_x_hat = _r32(ref_f) @ a['W_dec'] + a['b_dec']
  _check('SAELens pre-6.0 standard (relu)',
         sae.encode(jnp.asarray(x, jnp.float32)), ref_f,
         numerics.abs_matmul(np.abs(x) + np.abs(a['b_dec']), a['W_enc'],
                             a['b_enc']), 16 + 2,
         sae.decode(jnp.asarray(ref_f, jnp.float32)), ref_x_hat,
         numerics.abs_matmul(ref_f, a['W_dec'], a['b_dec']), 96 + 1)


def test_saelens_pre6_topk_with_normalisation_folded(tmp_path):
  rng = np.random.default_rng(9)
  arrays = _saelens_arrays(rng, architecture='standard')
  cfg = _cfg_old(activation_fn_str='topk', activation_fn_kwargs={'k': 5},
                 normalize_activations=True)
  folder = _write_saelens(tmp_path, cfg, arrays)
  with pytest.raises(errors.SAEError, match='norm_scaling_factor'):
    load_sae(folder)
  s = 0.125
  sae = load_sae(folder, norm_scaling_factor=s)
  assert (sae.architecture, sae.k) == ('topk', 5)
  x = _r32(rng.normal(size=(20, 16)) * 8.0)
  a = {k: v.astype(np.float64) for k, v in arrays.items()}
  pre = (s * x - a['b_dec']) @ a['W_enc'] + a['b_enc']
  ref_f = np.zeros_like(pre)
  for i, row in enumerate(pre):
    top = np.argsort(-row)[:5]
    ref_f[i, top] = np.maximum(row[top], 0)
  ref_x_hat = (_r32(ref_f) @ a['W_dec'] + a['b_dec']) / s
  _check('SAELens pre-6.0 topk, expected_average_only_in folded',
         sae.encode(jnp.asarray(x, jnp.float32)), ref_f,
         numerics.abs_matmul(s * np.abs(x) + np.abs(a['b_dec']), a['W_enc'],
                             a['b_enc']), 16 + 2,
         sae.decode(jnp.asarray(ref_f, jnp.float32)), ref_x_hat,
         numerics.abs_matmul(ref_f, a['W_dec'], a['b_dec']) / s, 96 + 1)


def test_saelens_bf16_cfg(tmp_path):
  rng = np.random.default_rng(10)
  arrays = {k: v.astype(jnp.bfloat16) for k, v in
            _saelens_arrays(rng).items()}
  sae = load_sae(_write_saelens(tmp_path, _cfg6(dtype='bfloat16'), arrays))
  assert sae.W_dec.dtype == jnp.bfloat16 and sae.dtype == 'bfloat16'
  assert sae.threshold.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(sae.threshold),
                                arrays['threshold'].astype(np.float32))


# -------------------------------------------------------------- round trips


def _assert_same(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    assert x.dtype == y.dtype
    np.testing.assert_array_equal(np.asarray(x, np.float32),
                                  np.asarray(y, np.float32))


@pytest.mark.parametrize('arch', ['jumprelu', 'topk', 'standard'])
@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_save_load_round_trip(tmp_path, arch, dtype):
  rng = np.random.default_rng(11)
  extra = {'k': 7, 'rescale_acts_by_decoder_norm': True} if arch == 'topk' \
      else {}
  src = _write_saelens(tmp_path, _cfg6(arch, **extra),
                       _saelens_arrays(rng, architecture=arch, spread=True))
  sae = load_sae(src, dtype=dtype)
  out = save_sae(sae, tmp_path / 'copy')
  again = load_sae(out)
  _assert_same(sae, again)
  assert again.threshold is None or again.threshold.dtype == jnp.float32
  cfg = json.loads((out / 'cfg.json').read_text())
  assert cfg['normalize_activations'] == 'none'
  assert cfg['metadata']['hook_name'] == 'blocks.12.hook_resid_post'
  assert cfg['architecture'] == arch
  assert sorted(p.name for p in tmp_path.iterdir()) == ['copy', 'sae']


def test_round_trip_of_converted_formats(tmp_path):
  rng = np.random.default_rng(12)
  llama = load_sae(_write_llama(tmp_path, LLAMA_HP, _llama_tensors(rng)))
  gemma = load_sae(_write_gemma(tmp_path, _gemma_arrays(rng)))
  for name, sae in (('llama', llama), ('gemma', gemma)):
    again = load_sae(save_sae(sae, tmp_path / f'{name}_saved'))
    _assert_same(sae, again)


def test_save_refuses_to_clobber_unless_asked(tmp_path):
  rng = np.random.default_rng(13)
  sae = load_sae(_write_saelens(tmp_path, _cfg6(), _saelens_arrays(rng)))
  dest = save_sae(sae, tmp_path / 'out')
  with pytest.raises(errors.SAEError, match='already exists'):
    save_sae(sae, dest)
  relu = load_sae(_write_saelens(tmp_path, _cfg6('standard'),
                                 _saelens_arrays(rng, architecture='standard'),
                                 name='relu'))
  save_sae(relu, dest, overwrite=True)
  assert load_sae(dest).architecture == 'relu'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['out', 'relu', 'sae']


# -------------------------------------------------------------- fit checks


def test_check_sae_fits(tmp_path):
  rng = np.random.default_rng(14)
  sae = load_sae(_write_gemma(tmp_path, _gemma_arrays(rng)))
  check_sae_fits(sae, d_model=8, num_layers=26)
  with pytest.raises(errors.SAEError) as e:
    check_sae_fits(sae, d_model=4096, num_layers=26)
  assert str(e.value).startswith(
      "SAE d_in 8 does not match the model's hidden size 4096: ")
  with pytest.raises(errors.SAEError, match=r'layer 5 .*\[0, 5\)'):
    check_sae_fits(sae, d_model=8, num_layers=5)


# ------------------------------------------------------------------- errors


def _err_missing_path(tmp):
  return tmp / 'nope'


def _err_file_path(tmp):
  (tmp / 'cfg.json').write_text('{}')
  return tmp / 'cfg.json'


def _err_unknown_folder(tmp):
  (tmp / 'model.safetensors').write_text('x')
  (tmp / 'readme.txt').write_text('x')
  return tmp


def _err_mixed(tmp):
  _write_saelens(tmp, _cfg6(), _saelens_arrays(np.random.default_rng(0)),
                 name='m')
  np.savez(tmp / 'm' / 'params.npz', a=np.zeros(1))
  return tmp / 'm'


def _err_saelens_no_weights(tmp):
  (tmp / 'cfg.json').write_text(json.dumps(_cfg6()))
  return tmp


def _err_bad_json(tmp):
  f = _write_saelens(tmp, _cfg6(), _saelens_arrays(np.random.default_rng(0)))
  (f / 'cfg.json').write_text('{"d_in": 16,\n')
  return f


def _err_corrupt_safetensors(tmp):
  f = _write_saelens(tmp, _cfg6(), _saelens_arrays(np.random.default_rng(0)))
  (f / 'sae_weights.safetensors').write_bytes(b'\x00garbage\nmore')
  return f


def _err_missing_key(tmp):
  arrays = _saelens_arrays(np.random.default_rng(0))
  del arrays['threshold']
  return _write_saelens(tmp, _cfg6(), arrays)


def _err_extra_key(tmp):
  arrays = _saelens_arrays(np.random.default_rng(0))
  arrays['log_threshold'] = np.zeros(96, np.float32)
  return _write_saelens(tmp, _cfg6(), arrays)


def _err_shape(tmp):
  return _write_saelens(tmp, _cfg6(d=16, a=128),
                        _saelens_arrays(np.random.default_rng(0)))


def _err_nan(tmp):
  arrays = _saelens_arrays(np.random.default_rng(0))
  arrays['W_dec'][3, 4] = np.nan
  return _write_saelens(tmp, _cfg6(), arrays)


def _err_norm(kind):
  def build(tmp):
    return _write_saelens(tmp, _cfg6(normalize_activations=kind),
                          _saelens_arrays(np.random.default_rng(0)))
  return build


def _err_no_factor(tmp):
  return _write_saelens(
      tmp, _cfg6(normalize_activations='expected_average_only_in'),
      _saelens_arrays(np.random.default_rng(0)))


def _err_gated(tmp):
  return _write_saelens(tmp, _cfg6('gated'),
                        _saelens_arrays(np.random.default_rng(0)))


def _err_hook_z(tmp):
  cfg = _cfg6()
  cfg['metadata']['hook_name'] = 'blocks.3.attn.hook_z'
  return _write_saelens(tmp, cfg, _saelens_arrays(np.random.default_rng(0)))


def _err_gemma_inf(tmp):
  arrays = _gemma_arrays(np.random.default_rng(0))
  arrays['threshold'][7] = np.inf
  return _write_gemma(tmp, arrays)


def _err_gemma_width(tmp):
  return _write_gemma(tmp, _gemma_arrays(np.random.default_rng(0), a=1000))


def _err_gemma_layout(tmp):
  folder = tmp / 'somewhere'
  folder.mkdir()
  np.savez(folder / 'params.npz', **_gemma_arrays(np.random.default_rng(0),
                                                  a=16))
  return folder


def _err_llama_no_ckpt(tmp):
  folder = tmp / 'Llama3_1-8B-Base-L8R-8x'
  folder.mkdir()
  (folder / 'hyperparams.json').write_text(json.dumps(LLAMA_HP))
  return folder


def _err_llama_shape(tmp):
  return _write_llama(tmp, dict(LLAMA_HP, d_sae=256),
                      _llama_tensors(np.random.default_rng(0)))


def _err_llama_transcoder(tmp):
  hp = dict(LLAMA_HP, hook_point_in='blocks.8.ln2.hook_normalized',
            hook_point_out='blocks.8.hook_mlp_out')
  return _write_llama(tmp, hp, _llama_tensors(np.random.default_rng(0)))


def _err_llama_tokenwise(tmp):
  return _write_llama(tmp, dict(LLAMA_HP, norm_activation='token-wise'),
                      _llama_tensors(np.random.default_rng(0)))


ERROR_CASES = [
    ('missing_path', _err_missing_path, 'does not exist'),
    ('file_path', _err_file_path, 'is a file'),
    ('unknown_folder', _err_unknown_folder,
     'looked for SAELens .*found model.safetensors, readme.txt'),
    ('mixed_formats', _err_mixed, 'mixes files'),
    ('saelens_no_weights', _err_saelens_no_weights,
     'lacks sae_weights.safetensors'),
    ('bad_json', _err_bad_json, 'cannot read .*cfg.json'),
    ('corrupt_safetensors', _err_corrupt_safetensors,
     'cannot read .*sae_weights.safetensors'),
    ('missing_key', _err_missing_key, 'lacks tensor.* threshold'),
    ('extra_key', _err_extra_key, 'unexpected tensor.* log_threshold'),
    ('shape', _err_shape, r'W_enc has shape \[16, 96\], expected \[16, 128\]'),
    ('nan', _err_nan, 'W_dec has 1 NaN/Inf'),
    ('constant_norm_rescale', _err_norm('constant_norm_rescale'),
     "normalize_activations='constant_norm_rescale' cannot be folded"),
    ('layer_norm', _err_norm('layer_norm'),
     "normalize_activations='layer_norm' cannot be folded"),
    ('no_scaling_factor', _err_no_factor, 'normalize_activations.*'
     'norm_scaling_factor'),
    ('gated', _err_gated, "architecture 'gated' is not supported"),
    ('hook_z', _err_hook_z, 'unsupported hook'),
    ('gemma_inf', _err_gemma_inf, 'threshold has 1 NaN/Inf'),
    ('gemma_width', _err_gemma_width,
     r'W_enc has shape \[8, 1000\], expected \[8, 16384\]'),
    ('gemma_layout', _err_gemma_layout, 'must end in layer_<L>/width_<W>'),
    ('llama_no_checkpoint', _err_llama_no_ckpt,
     'lacks checkpoints/final.safetensors'),
    ('llama_shape', _err_llama_shape,
     r'encoder.weight has shape \[512, 64\], expected \[256, 64\]'),
    ('llama_transcoder', _err_llama_transcoder, 'transcoder'),
    ('llama_token_wise', _err_llama_tokenwise,
     "norm_activation 'token-wise' cannot be folded"),
]


@pytest.mark.parametrize('name,build,pattern', ERROR_CASES,
                         ids=[c[0] for c in ERROR_CASES])
def test_errors_are_one_line_sae_errors(tmp_path, name, build, pattern):
  del name
  path = build(tmp_path)
  with pytest.raises(errors.SAEError, match=pattern) as e:
    load_sae(path)
  assert '\n' not in str(e.value)
  assert isinstance(e.value, errors.RefusalJaxError)


def test_norm_scaling_factor_rejected_where_meaningless(tmp_path):
  folder = _write_saelens(tmp_path, _cfg6(),
                          _saelens_arrays(np.random.default_rng(0)))
  with pytest.raises(errors.SAEError, match="normalize_activations='none'"):
    load_sae(folder, norm_scaling_factor=2.0)
  gemma = _write_gemma(tmp_path, _gemma_arrays(np.random.default_rng(0)))
  with pytest.raises(errors.SAEError, match='only to SAELens'):
    load_sae(gemma, norm_scaling_factor=2.0)


def test_error_paths_are_pathlib_or_str(tmp_path):
  with pytest.raises(errors.SAEError):
    load_sae(str(tmp_path / 'missing'))
  with pytest.raises(errors.SAEError):
    load_sae(pathlib.Path(tmp_path / 'missing'))
