"""StageMeter counts JAX's backend compilations and their seconds."""

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax.pipeline import stage_stats


def test_the_meter_counts_each_compilation_once():
  f = jax.jit(lambda x: jnp.sin(x) * 2.0 + 1.0)
  a, b = np.ones((3, 5), np.float32), np.ones((3, 6), np.float32)
  with stage_stats.StageMeter() as first:
    f(a).block_until_ready()
    f(b).block_until_ready()  # a new shape: compiles again
  with stage_stats.StageMeter() as cached:
    f(a).block_until_ready()
    f(b).block_until_ready()
  assert first.stats['n_compiles'] == 2 and first.stats['compile_seconds'] > 0
  assert cached.stats['n_compiles'] == 0
  assert cached.stats['compile_seconds'] == 0
  assert set(first.stats) == {'compile_seconds', 'n_compiles',
                              'peak_host_gb', 'peak_host_since_start'}
