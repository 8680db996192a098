"""The device check on the CPU at its smoke size: every step runs, one JSON.

The same command a GPU or TPU runs at full size (docs/accelerators.md), with
every size shrunk (`Plan.smoke`): one small test file, a 3-layer benchmark
model, the tiny Llama rehearsal searching 2 per-layer SAEs.
"""

import json
import os

import pytest

from refusal_jax import errors
from refusal_jax.bench import device_check


@pytest.mark.slow  # the whole device check at smoke size: 1.5 minutes alone
def test_the_smoke_run_writes_every_key(tmp_path):
  result = device_check.run_device_check(str(tmp_path),
                                         device_check.Plan.smoke())
  with open(tmp_path / 'device_check.json') as f:
    written = json.load(f)
  assert written == json.loads(json.dumps(result))
  assert set(written) >= set(device_check.SCHEMA['top'])
  assert written['device'].startswith('cpu')
  assert set(written['steps']) == set(device_check.STEPS)
  for name, step in written['steps'].items():
    assert step['status'] == 'ok', (name, step)
    assert set(step) >= set(device_check.SCHEMA['step']) | set(
        device_check.SCHEMA[name])
    assert os.path.exists(tmp_path / step['log'])
  tests = written['steps']['tests']
  assert tests['passed'] >= 1 and tests['failed'] == 0
  bench = written['steps']['benchmark']
  assert bench['speedup'] > 0 and bench['fraction_of_peak'] > 0
  assert bench['n_compiles'] >= 1 and bench['matmul_precision'] == 'highest'
  rehearsal = written['steps']['rehearsal']
  assert set(rehearsal['stages']) == {'direction', 'greedy', 'interactions',
                                      'hydra', 'evaluation'}
  for stage in rehearsal['stages'].values():
    assert set(stage) >= {'seconds', 'compile_seconds', 'n_compiles'}
  assert 0 <= rehearsal['compile_share'] <= 1
  assert rehearsal['n_compiles'] >= rehearsal['stages']['direction'][
      'n_compiles'] >= 1
  assert any('| direction |' in line
             for line in device_check.summary_lines(written))


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path):
  plan = device_check.Plan.smoke(
      steps=('tests', 'benchmark'), tests=('tests/absent_test_file.py',),
      benchmark_flags=('--config.dtype=float16',))
  result = device_check.run_device_check(str(tmp_path), plan)
  assert [s['status'] for s in result['steps'].values()] == ['failed',
                                                            'failed']
  assert result['steps']['benchmark']['speedup'] is None
  with pytest.raises(errors.ConfigError, match='unknown device-check'):
    device_check.run_device_check(str(tmp_path),
                                  device_check.Plan(steps=('gpu',)))
