"""The loader refuses what it does not implement, with one-line errors."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

import hf_tiny
from refusal_jax import errors
from refusal_jax.checkpoints import load as load_lib
from refusal_jax.models import config as config_lib


@pytest.fixture(scope='module')
def llama_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('llama')
  return hf_tiny.save(hf_tiny.make('llama'), d)


def _with_config(src, dst, **changes):
  os.makedirs(dst, exist_ok=True)
  cfg = json.load(open(os.path.join(src, 'config.json')))
  for k, v in changes.items():
    if v is _DROP:
      cfg.pop(k, None)
    else:
      cfg[k] = v
  json.dump(cfg, open(os.path.join(dst, 'config.json'), 'w'))
  for f in os.listdir(src):
    if f.endswith('.safetensors'):
      os.symlink(os.path.join(src, f), os.path.join(dst, f))
  return str(dst)

_DROP = object()


@pytest.mark.parametrize('changes,field', [
    (dict(attention_bias=True), 'attention_bias'),
    (dict(mlp_bias=True), 'mlp_bias'),
    (dict(hidden_act='gelu'), 'hidden_act'),
    (dict(is_causal=False), 'is_causal'),
    (dict(rope_parameters={'rope_type': 'yarn', 'rope_theta': 1e4,
                           'factor': 4.0}), 'rope_type'),
    (dict(model_type='mistral'), 'model_type'),
    (dict(layer_types=['sliding_attention'] * 3), 'layer_types'),
    (dict(quantization_config={'quant_method': 'gptq'}),
     'quantization_config'),
])
def test_unimplemented_config_fields_raise_naming_the_field(
    llama_dir, tmp_path, changes, field):
  d = _with_config(llama_dir, tmp_path / 'm', **changes)
  with pytest.raises(errors.ConfigError) as e:
    load_lib.load_model(d)
  assert field in str(e.value) and '\n' not in str(e.value)


def test_gemma2_bidirectional_attention_raises():
  cfg = dict(model_type='gemma2', vocab_size=10, hidden_size=8,
             intermediate_size=8, num_hidden_layers=2, num_attention_heads=2,
             head_dim=4, use_bidirectional_attention=True)
  with pytest.raises(errors.ConfigError, match='use_bidirectional_attention'):
    config_lib.from_hf_config(cfg)


def test_config_round_trip_through_export():
  for cfg in (config_lib.ModelConfig.gemma2_2b(),
              config_lib.ModelConfig.llama31_8b()):
    assert config_lib.from_hf_config(config_lib.to_hf_config(cfg)) == cfg


def test_missing_and_extra_tensors_raise(llama_dir, tmp_path):
  tensors = {}
  from safetensors import safe_open
  with safe_open(os.path.join(llama_dir, 'model.safetensors'), 'np') as f:
    for k in f.keys():
      tensors[k] = f.get_tensor(k)
  d = _with_config(llama_dir, tmp_path / 'missing')
  os.remove(os.path.join(d, 'model.safetensors'))
  save_file({k: v for k, v in tensors.items() if 'layers.1.mlp' not in k},
            os.path.join(d, 'model.safetensors'))
  with pytest.raises(errors.CheckpointError, match='lacks'):
    load_lib.load_model(d)
  d = _with_config(llama_dir, tmp_path / 'extra')
  os.remove(os.path.join(d, 'model.safetensors'))
  save_file({**tensors, 'model.layers.0.self_attn.q_proj.bias':
             np.zeros(48, np.float32)}, os.path.join(d, 'model.safetensors'))
  with pytest.raises(errors.CheckpointError, match='does not use'):
    load_lib.load_model(d)


def test_shape_mismatch_raises(llama_dir, tmp_path):
  d = _with_config(llama_dir, tmp_path / 'shape', intermediate_size=31)
  with pytest.raises(errors.CheckpointError, match='shape'):
    load_lib.load_model(d)


def test_truncated_safetensors_raises(llama_dir, tmp_path):
  d = _with_config(llama_dir, tmp_path / 'trunc')
  src = os.path.realpath(os.path.join(d, 'model.safetensors'))
  os.remove(os.path.join(d, 'model.safetensors'))
  data = open(src, 'rb').read()
  open(os.path.join(d, 'model.safetensors'), 'wb').write(data[:len(data) // 2])
  with pytest.raises(errors.CheckpointError, match='truncated or corrupt'):
    load_lib.load_model(d)


def test_paths_that_are_not_checkpoints(tmp_path, monkeypatch):
  with pytest.raises(errors.CheckpointError, match='does not exist'):
    load_lib.load_model(str(tmp_path / 'nope' / 'deeper'))
  with pytest.raises(errors.CheckpointError, match='no config.json'):
    load_lib.load_model(str(tmp_path))
  # A hub id with the hub unreachable: one line telling to pass a directory.
  monkeypatch.setenv('HF_HUB_OFFLINE', '1')
  with pytest.raises(errors.CheckpointError) as e:
    load_lib.resolve_checkpoint_dir('google/gemma-2-2b-it')
  assert 'local checkpoint directory' in str(e.value)
  assert '\n' not in str(e.value)
