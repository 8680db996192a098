"""The ablation benchmark end to end on a tiny random model (no timing checks)."""

import json
import os

import numpy as np
import pytest

from configs import benchmark_gemma2_2b_shape
import numerics
from refusal_jax import bench
from refusal_jax import errors


def _tiny_config(family: str):
  config = benchmark_gemma2_2b_shape.get_config()
  config.model.update(dict(name=f'tiny-{family}', family=family,
                           vocab_size=101, d_model=32, num_layers=3,
                           num_heads=2, num_kv_heads=1, head_dim=16,
                           mlp_dim=48, sliding_window=5))
  config.sae.update(dict(d_sae=64, layer=1, target_l0=8.0))
  config.prompts.update(dict(n_prompts=2, n_tokens=12))
  config.sweep.update(dict(n_masks=4, n_candidates=8, chunk_masks=2,
                           chunk_prompts=2, repeats=1))
  config.metric.refusal_ids = (5, 17)
  config.torch.n_masks = 0
  config.torch.batch_prompts = 2
  config.peak.update(dict(size=64, repeats=2))
  config.plot.update(dict(n_masks=(2, 4), layers=(2,)))
  return config


@pytest.mark.parametrize('family', ['gemma2', 'llama'])
def test_benchmark_tiny(tmp_path, family):
  result = bench.run_benchmark(_tiny_config(family), str(tmp_path))
  with open(os.path.join(tmp_path, 'benchmark.json')) as f:
    written = json.load(f)
  for key in bench.KEYS:
    assert key in written, key
  assert written['max_abs_diff'] == result['max_abs_diff']
  # two frameworks, same math: within 64 float32 epsilons of the metric's
  # scale (tests/numerics.py)
  assert written['max_abs_diff'] <= (
      numerics.FORWARD_ULPS * numerics.EPS32 * written['max_abs_metric'])
  for key in ('jax_evals_per_s', 'torch_evals_per_s', 'speedup',
              'achieved_gflops', 'peak_gflops', 'fraction_of_peak'):
    assert np.isfinite(written[key]) and written[key] > 0, key
  assert written['compile_seconds'] >= 0
  assert (written['n_prompts'], written['n_masks'], written['layer'],
          written['n_tokens']) == (2, 4, 1, 12)
  assert written['torch_n_masks'] == 4
  # The random SAE fires about target_l0 latents per token and the edits
  # change the metric.
  assert 2 <= written['sae_l0'] <= 32
  assert written['metric_std_over_masks'] > 0
  assert set(written['profile']['stages']) >= {'prefix', 'sae_edit', 'last_layer',
                                     'logits'}
  assert [m for m, _ in written['throughput_vs_masks']] == [2, 4]
  assert [l for l, _ in written['throughput_vs_layer']] == [2]
  assert os.path.getsize(os.path.join(tmp_path, 'throughput.png')) > 1000


def test_missing_checkpoint_names_the_path(tmp_path):
  config = _tiny_config('llama')
  config.model.checkpoint = str(tmp_path / 'absent_organism')
  with pytest.raises(errors.CheckpointError, match='absent_organism'):
    bench.run_benchmark(config, str(tmp_path / 'out'))


def test_benchmark_tiny_with_an_sae_per_layer(tmp_path):
  """SAEs at every layer: the engine's one pass per mask agrees with the
  PyTorch loop's one hook per SAE."""
  config = _tiny_config('gemma2')
  config.sae.layers = (2, 0, 1)
  config.profile = False
  config.plot.layers = ()
  result = bench.run_benchmark(config, str(tmp_path))
  assert result['sae_layers'] == [0, 1, 2] and result['layer'] == 0
  assert result['n_candidates'] == 3 * 8
  assert result['metric_std_over_masks'] > 0
  assert result['max_abs_diff'] <= (
      numerics.FORWARD_ULPS * numerics.EPS32 * result['max_abs_metric'])
  config.profile = True
  with pytest.raises(errors.ConfigError, match='profile'):
    bench.run_benchmark(config, str(tmp_path / 'profiled'))
