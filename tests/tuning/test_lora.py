"""LoRA adapters: merging, the zero adapter, files, and the assembled folder."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import hf_tiny
import numerics
import refusal_jax
from refusal_jax import errors
from refusal_jax.tuning import assemble
from refusal_jax.tuning import lora

ALL = tuple(lora.MODULES)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  hf = hf_tiny.make('llama')
  path = hf_tiny.save(hf, tmp_path_factory.mktemp('tiny'))
  return hf, refusal_jax.load_model(path)


def _random_adapter(spec, config, seed=1):
  """An adapter whose b is random too (a fresh one has b = 0)."""
  adapter = lora.init_adapter(spec, config, seed)
  key = jax.random.key(seed + 100)
  return {name: {'a': ab['a'], 'b': 0.3 * jax.random.normal(
      jax.random.fold_in(key, i), ab['b'].shape)}
          for i, (name, ab) in enumerate(sorted(adapter.items()))}


def test_merged_forward_equals_transformers_with_merged_weights(tiny):
  hf, model = tiny
  spec = lora.LoraSpec(rank=3, alpha=5.0, modules=ALL, layers=(0, 2))
  adapter = _random_adapter(spec, model.config)
  merged = lora.merge(model.params, adapter, spec, model.config)
  ids = np.random.default_rng(0).integers(0, 97, (2, 9))
  got = np.asarray(refusal_jax.models.transformer.forward(
      merged, model.config, jnp.asarray(ids)).logits)
  # The same update applied in transformers' own [out, in] weights.
  state = {k: v.clone() for k, v in hf.state_dict().items()}
  for name, ab in adapter.items():
    b, a = (torch.tensor(np.asarray(ab[p], np.float64)) for p in ('b', 'a'))
    key = f'{name}.weight'
    state[key] = (state[key].double() + spec.scale * (b @ a)).float()
  hf_merged = hf_tiny.make('llama')
  hf_merged.load_state_dict(state)
  with torch.no_grad():
    want = hf_merged(torch.tensor(ids)).logits.numpy()
  # A forward pass in float32 against transformers' (as in test_parity).
  numerics.assert_close(got, want, ulps=numerics.FORWARD_ULPS,
                        what='merged LoRA logits')
  base = np.asarray(refusal_jax.models.transformer.forward(
      model.params, model.config, jnp.asarray(ids)).logits)
  assert np.abs(base - want).max() > 1e-2  # the adapter changes the model


def test_fresh_adapter_is_the_base_model(tiny):
  _, model = tiny
  spec = lora.LoraSpec(rank=4, alpha=8.0, modules=ALL, layers=(0, 1, 2))
  merged = lora.merge(model.params, lora.init_adapter(spec, model.config, 0),
                      spec, model.config)
  for got, want in zip(jax.tree.leaves(merged), jax.tree.leaves(model.params)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_save_load_round_trip(tiny, tmp_path, dtype):
  _, model = tiny
  spec = lora.LoraSpec(rank=2, alpha=4.0, modules=('q_proj', 'down_proj'),
                       layers=(1,))
  adapter = _random_adapter(spec, model.config)
  path = lora.save_adapter(adapter, spec, str(tmp_path / 'a'), dtype=dtype,
                           extra={'base_model_name_or_path': 'tiny'})
  loaded, spec2, meta = lora.load_adapter(path)
  assert spec2 == spec and meta['base_model_name_or_path'] == 'tiny'
  assert sorted(loaded) == sorted(adapter)
  for name in adapter:
    for part in ('a', 'b'):
      want = np.asarray(jnp.asarray(adapter[name][part]).astype(dtype)
                        .astype(jnp.float32))
      np.testing.assert_array_equal(np.asarray(loaded[name][part]), want)
  assert 'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight' in (
      __import__('safetensors.numpy').numpy.load_file(
          os.path.join(path, lora.WEIGHTS_FILE)))


def test_assemble_writes_the_merged_checkpoint(tiny, tmp_path):
  _, model = tiny
  spec = lora.LoraSpec(rank=2, alpha=2.0, modules=ALL, layers=(0, 1, 2))
  adapter = _random_adapter(spec, model.config)
  adapter_dir = lora.save_adapter(adapter, spec, str(tmp_path / 'adapter'))
  out = assemble.assemble(model.path, adapter_dir, str(tmp_path / 'out'))
  loaded = refusal_jax.load_model(out)
  want = lora.merge(model.params, adapter, spec, model.config)
  for got, exp in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(exp))
  assert sorted(os.listdir(out)) == sorted(os.listdir(model.path))


@pytest.mark.parametrize('kw, match', [
    (dict(rank=0), 'lora.rank must be >= 1'),
    (dict(modules=('qproj',)), 'lora.modules'),
    (dict(layers=(3,)), 'lora.layers'),
    (dict(layers=()), 'lora.layers'),
])
def test_spec_errors_are_one_line(tiny, kw, match):
  _, model = tiny
  spec = dict(rank=2, alpha=2.0, modules=ALL, layers=(0,))
  with pytest.raises(errors.ConfigError, match=match) as e:
    lora.LoraSpec(**dict(spec, **kw)).check(model.config)
  assert '\n' not in str(e.value)


def test_adapter_not_matching_its_spec_is_one_line(tiny):
  _, model = tiny
  spec = lora.LoraSpec(rank=2, alpha=2.0, modules=('q_proj',), layers=(0,))
  other = lora.LoraSpec(rank=2, alpha=2.0, modules=('k_proj',), layers=(0,))
  with pytest.raises(errors.CheckpointError, match='does not match') as e:
    lora.merge(model.params, lora.init_adapter(other, model.config, 0), spec,
               model.config)
  assert '\n' not in str(e.value)


def test_unreadable_adapter_is_one_line(tmp_path):
  with pytest.raises(errors.CheckpointError, match='cannot read the adapter'
                     ) as e:
    lora.load_adapter(str(tmp_path))
  assert '\n' not in str(e.value)
