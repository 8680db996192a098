"""The PyTorch baseline runs its float32 matmuls as the JAX side does."""

import torch

from refusal_jax.bench import torch_baseline

B = torch.backends
SETTINGS = (B.cuda.matmul, B.cudnn, B.cudnn.conv, B.cudnn.rnn)


def _flags():
  return tuple(s.fp32_precision for s in SETTINGS)


def test_the_baseline_runs_without_tf32_where_jax_runs_highest(monkeypatch):
  seen = []
  monkeypatch.setattr(torch_baseline, '_time_torch',
                      lambda setup, config: seen.append(_flags()) or {})
  saved = _flags()
  try:
    B.cuda.matmul.fp32_precision = 'tf32'  # TF32 allowed before the run
    B.cudnn.conv.fp32_precision = 'tf32'
    before = _flags()
    run = torch_baseline.time_torch(None, None, 'highest')
    assert seen[-1] == ('ieee',) * 4
    assert run['float32_matmul'] == 'ieee'
    assert _flags() == before  # restored after the run
    torch_baseline.time_torch(None, None, 'backend default')  # bf16 runs
    assert seen[-1] == before
  finally:
    for setting, value in zip(SETTINGS, saved):
      setting.fp32_precision = value
