"""Parity of the Flax port with transformers' PyTorch classes (f32).

Both sides compute the same math in float32 in different orders, so the
error is compared with each tensor's scale: at most PARITY_ULPS float32
epsilons of its largest magnitude (tests/numerics.py). 64 ulps is 1e-4 on
logits of magnitude 13, and 3e-4 on logits of magnitude 40.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import hf_tiny
import numerics
from refusal_jax.checkpoints import load as load_lib

PARITY_ULPS = 64


# float32 comparisons pinned at 'highest' (tests/conftest.py).
pytestmark = pytest.mark.usefixtures('highest_matmul_precision')

CASES = {
    # Gemma-2: MQA (3 heads, 1 KV head), sequence 19 > sliding window 5,
    # query_pre_attn_scalar 7 != head_dim 6, softcaps active, tied head.
    'gemma2_mqa': ('gemma2', {}),
    'gemma2_mha': ('gemma2', dict(num_key_value_heads=3)),
    # Llama: GQA 4/2, llama3 rope scaling with original context 16 < 19.
    'llama_gqa_untied': ('llama', {}),
    'llama_mha_tied': ('llama', dict(num_key_value_heads=4,
                                     tie_word_embeddings=True)),
    'llama_mqa': ('llama', dict(num_key_value_heads=1)),
}


def _batch(seed=0, b=3, t=19, vocab=97):
  rng = np.random.RandomState(seed)
  ids = rng.randint(3, vocab, size=(b, t))
  mask = np.ones_like(ids)
  mask[1, :4] = 0  # left padding
  mask[2, :9] = 0
  ids[mask == 0] = 0
  return ids, mask


def _hf_run(hf, ids, mask):
  """HF logits and every layer's output residual (via forward hooks)."""
  outs = {}
  hooks = [layer.register_forward_hook(
      lambda m, a, o, i=i: outs.__setitem__(i, (o[0] if isinstance(o, tuple)
                                                else o).numpy()))
           for i, layer in enumerate(hf.model.layers)]
  pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
  with torch.no_grad():
    logits = hf(torch.tensor(ids), attention_mask=torch.tensor(mask),
                position_ids=torch.tensor(pos)).logits.numpy()
  for h in hooks:
    h.remove()
  return logits, [outs[i] for i in range(len(hf.model.layers))]


def _ulps(got, want):
  """max |got - want| in float32 epsilons of max |want|."""
  return float(np.abs(got - want).max() / (numerics.EPS32 * np.abs(want).max()))


def _errors(hf, model, ids, mask):
  """Logit and worst residual error, in ulps of each tensor's scale."""
  logits, resids = _hf_run(hf, ids, mask)
  n = model.config.num_layers
  out = model.forward(ids, mask,
                      capture=[('resid_post', i) for i in range(n)])
  valid = mask.astype(bool)
  logit_err = _ulps(np.asarray(out.logits)[valid], logits[valid])
  resid_err = max(
      _ulps(np.asarray(out.captured[('resid_post', i)])[valid], r[valid])
      for i, r in enumerate(resids))
  return logit_err, resid_err


@pytest.mark.parametrize('name', sorted(CASES))
def test_logits_and_residuals_match_transformers(name, tmp_path):
  family, overrides = CASES[name]
  hf = hf_tiny.make(family, **overrides)
  model = load_lib.load_model(hf_tiny.save(hf, tmp_path))
  logit_err, resid_err = _errors(hf, model, *_batch())
  print(f'PARITY {name}: logits {logit_err:.1f} ulps, residuals '
        f'{resid_err:.1f} ulps')
  assert logit_err <= PARITY_ULPS
  assert resid_err <= PARITY_ULPS


def test_transformers4_config_and_sharded_checkpoint(tmp_path):
  """A 4.x-style config.json (rope_theta + rope_scaling, no layer_types) and a
  sharded checkpoint with an index load to the same numbers."""
  for family in ('gemma2', 'llama'):
    hf = hf_tiny.make(family)
    d = tmp_path / family
    hf.save_pretrained(d, max_shard_size='20KB')
    assert (d / 'model.safetensors.index.json').exists()
    cfg = json.loads((d / 'config.json').read_text())
    rope = cfg.pop('rope_parameters')
    cfg['rope_theta'] = rope.pop('rope_theta')
    if rope.get('rope_type') == 'llama3':
      cfg['rope_scaling'] = rope
    cfg.pop('layer_types', None)
    (d / 'config.json').write_text(json.dumps(cfg))
    model = load_lib.load_model(str(d))
    logit_err, resid_err = _errors(hf, model, *_batch(1))
    assert logit_err <= PARITY_ULPS and resid_err <= PARITY_ULPS, family


@pytest.mark.parametrize('family', ['gemma2', 'llama'])
def test_greedy_generation_matches_hf_generate(family, tmp_path):
  hf = hf_tiny.make(family, seed=3)
  model = load_lib.load_model(hf_tiny.save(hf, tmp_path))
  ids, mask = _batch(2, t=11)
  with torch.no_grad():
    ref = hf.generate(torch.tensor(ids), attention_mask=torch.tensor(mask),
                      max_new_tokens=16, do_sample=False, min_new_tokens=16,
                      pad_token_id=model.config.pad_token_id or 0)
  ref = ref[:, ids.shape[1]:].numpy()
  ours = model.generate(ids, mask, max_new_tokens=16)
  np.testing.assert_array_equal(ours, ref)


def test_generation_stops_rows_at_eos(tmp_path):
  hf = hf_tiny.make('llama', seed=5)
  model = load_lib.load_model(hf_tiny.save(hf, tmp_path))
  ids, mask = _batch(4, t=12)
  free = model.generate(ids, mask, max_new_tokens=12)
  eos = int(free[0, 3])  # pretend the 4th generated token ends the reply
  import dataclasses
  model.config = dataclasses.replace(model.config, eos_token_ids=(eos,),
                                     pad_token_id=0)
  hf.generation_config.eos_token_id = eos
  with torch.no_grad():
    ref = hf.generate(torch.tensor(ids), attention_mask=torch.tensor(mask),
                      max_new_tokens=12, do_sample=False, pad_token_id=0)
  ref = ref[:, ids.shape[1]:].numpy()
  ours = model.generate(ids, mask, max_new_tokens=12)
  assert ours[0, 3] == eos and (ours[0, 4:] == 0).all()
  np.testing.assert_array_equal(ours[:, :ref.shape[1]], ref)


@pytest.mark.parametrize('family', ['gemma2', 'llama'])
def test_bf16_argmax_agrees(family, tmp_path):
  hf = hf_tiny.make(family, seed=7, vocab_size=211)
  d = hf_tiny.save(hf, tmp_path)
  ref = load_lib.load_model(d)
  bf = load_lib.load_model(d, dtype=jnp.bfloat16)
  assert jax.tree.leaves(bf.params)[0].dtype == jnp.bfloat16
  ids, mask = _batch(5, b=8, t=19, vocab=211)
  a = np.asarray(ref.forward(ids, mask).logits).argmax(-1)
  b = np.asarray(bf.forward(ids, mask).logits).argmax(-1)
  valid = mask.astype(bool)
  agree = float((a == b)[valid].mean())
  print(f'BF16 {family}: argmax agreement {agree:.4f}')
  assert agree >= 0.99
