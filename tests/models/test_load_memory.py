"""Loading holds one copy of a checkpoint, not two (peak RSS of a subprocess).

A scaled-down bf16 checkpoint (~200-260 MB, sharded) is written to tmp_path
and loaded in a fresh process; the peak resident set size over the process's
RSS before loading must stay within 1.1 x the loaded parameters plus a fixed
allowance far below one copy, so a loader that keeps the mapped files
resident, or holds a transposed or cast copy of everything, fails.
Full-size figures: BUILD.md, "Loading memory".
"""

import pytest

from refusal_jax.checkpoints import memory
from refusal_jax.checkpoints import synthetic
from refusal_jax.models.config import ModelConfig

# Interpreter and XLA bookkeeping plus one small tensor in flight: a quarter
# of the smallest checkpoint below.
ALLOWANCE = 48 * 2**20

CONFIGS = {
    'gemma2': ModelConfig.gemma2(vocab_size=32000, d_model=1024,
                                 num_layers=4, num_heads=8, num_kv_heads=4,
                                 head_dim=128, mlp_dim=4096),
    'llama': ModelConfig.llama(vocab_size=32000, d_model=1024, num_layers=4,
                               num_heads=8, num_kv_heads=4, mlp_dim=4096),
}


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def checkpoint(request, tmp_path_factory):
  """(directory, bytes) of a bf16 checkpoint sharded at 100 MB."""
  d = str(tmp_path_factory.mktemp(request.param))
  synthetic.write_checkpoint(CONFIGS[request.param], d,
                             max_shard_size=100 * 10**6)
  return d, synthetic.checkpoint_bytes(d)


def _increase(m: dict) -> int:
  return m['load_peak'] - m['baseline']


def test_bf16_load_holds_one_copy(checkpoint):
  directory, nbytes = checkpoint
  m = memory.measure(directory, 'bfloat16', timeout=300)
  assert m['param_bytes'] == pytest.approx(nbytes, rel=0.01)
  assert _increase(m) <= 1.1 * nbytes + ALLOWANCE, (
      f'loading {nbytes / 2**20:.0f} MiB raised the peak RSS by '
      f'{_increase(m) / 2**20:.0f} MiB')


def test_f32_load_of_bf16_costs_its_f32_size(checkpoint):
  directory, nbytes = checkpoint
  m = memory.measure(directory, 'float32', timeout=300)
  assert m['param_bytes'] == pytest.approx(2 * nbytes, rel=0.01)
  assert _increase(m) <= 1.1 * m['param_bytes'] + ALLOWANCE, (
      f'loading {m["param_bytes"] / 2**20:.0f} MiB of float32 raised the '
      f'peak RSS by {_increase(m) / 2**20:.0f} MiB')
