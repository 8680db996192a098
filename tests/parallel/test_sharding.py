"""Sharded loading and sweeps on 8 simulated devices (separate processes)."""

import json
import os
import subprocess
import sys

import pytest

import hf_tiny
import numerics
from refusal_jax import errors
from refusal_jax.parallel import mesh as mesh_lib

HERE = os.path.dirname(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))


def run_with_devices(script, *args, n=8, timeout=300):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={n}',
             JAX_PLATFORMS='cpu', PYTHONPATH=REPO)
  res = subprocess.run([sys.executable, os.path.join(HERE, script), *args],
                       env=env, capture_output=True, text=True,
                       timeout=timeout)
  assert res.returncode == 0, res.stderr[-3000:]
  return json.loads(res.stdout.strip().splitlines()[-1])


def test_sharded_loading_places_rule_shardings_and_keeps_logits(tmp_path):
  hf = hf_tiny.make('llama', num_attention_heads=8, num_key_value_heads=4,
                    head_dim=6, hidden_size=24, intermediate_size=32,
                    vocab_size=96)
  out = run_with_devices('sharded_load_check.py', hf_tiny.save(hf, tmp_path))
  for shape, r in out.items():
    assert r['shardings_match'], shape
    assert r['err'] <= numerics.FORWARD_ULPS, (shape, r['err'])
  assert out['(1, 1, 8)']['q_spec'] == [None, 'tensor', None]
  assert out['(1, 8, 1)']['q_spec'] == ['fsdp', None, None]


def test_mesh_sizes_are_checked():
  assert mesh_lib.mesh_shape({'data': -1, 'tensor': 2}, 8) == (4, 1, 2)
  with pytest.raises(errors.ConfigError, match='only 1 exist'):
    mesh_lib.mesh_shape({'data': 4}, 1)
  with pytest.raises(errors.ConfigError, match='do not divide'):
    mesh_lib.mesh_shape({'data': -1, 'tensor': 3}, 8)


def test_sweeps_on_meshes_equal_the_single_device_result(tmp_path):
  hf = hf_tiny.make('gemma2', num_attention_heads=8, num_key_value_heads=4,
                    head_dim=6, hidden_size=24, intermediate_size=32,
                    vocab_size=96)
  out = run_with_devices('sharded_sweep_check.py', hf_tiny.save(hf, tmp_path))
  assert set(out) == {'(8, 1, 1)', '(2, 2, 2)', '(1, 1, 8)'}
  for shape, r in out.items():
    assert r['shape_ok'], shape
    assert r['sae_err'] <= numerics.FORWARD_ULPS, (shape, r)
    assert r['direction_err'] <= numerics.FORWARD_ULPS, (shape, r)
    assert r['prompt_split_err'] <= numerics.FORWARD_ULPS, (shape, r)
    assert r['feature_space_err'] <= numerics.FORWARD_ULPS, (shape, r)
