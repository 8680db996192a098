"""The generation benchmark compares the same rows, regrouped and not."""

import pytest

import tiny_setup
from refusal_jax import errors
from refusal_jax.bench import generation


def test_both_ways_give_the_same_tokens(tmp_path):
  config = tiny_setup.build(str(tmp_path))
  config.eval.generation_phases = (2, 4)
  config.eval.continue_batch_size = 2
  out = generation.run_config(config)
  assert list(out['conditions']) == ['none']  # no refusal_direction.json
  got = out['conditions']['none']
  assert got['rows_differing'] == 0
  assert got['plain_seconds'] >= 0 and got['speedup'] > 0
  assert out['n_prompts'] == 6 and out['phases'] == [2, 4]
  config.eval.generation_phases = ()
  with pytest.raises(errors.ConfigError, match='generation_phases'):
    generation.run_config(config)
