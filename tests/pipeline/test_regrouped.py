"""Regrouped generation gives every row the tokens of one uninterrupted pass."""

import dataclasses

import flax.struct
import jax.numpy as jnp
import numpy as np
import pytest

from refusal_jax.models import generation
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.models.model import Model
from refusal_jax.pipeline import regrouped
from refusal_jax.sweeps.engine import ChunkSizes

CFG = ModelConfig.gemma2(vocab_size=23, d_model=14, num_layers=3, num_heads=2,
                         num_kv_heads=1, head_dim=8, mlp_dim=17,
                         sliding_window=4)
N, T, G = 11, 7, 12


@flax.struct.dataclass
class _RowShift:
  """Adds shift[b] to row b's residual stream before layer 1."""
  shift: jnp.ndarray  # [B, 1, D]

  def apply(self, site, layer, x, ctx):
    del ctx
    return x + self.shift if (site, layer) == ('resid_pre', 1) else x


@pytest.fixture(scope='module')
def setup():
  params = transformer.init_params(CFG, seed=3)
  rng = np.random.RandomState(0)
  ids = rng.randint(0, 23, size=(N, T)).astype(np.int32)
  mask = np.ones_like(ids)
  for r in range(N):
    mask[r, :r % 4] = 0
  shifts = rng.normal(size=(N, 1, CFG.d_model)).astype(np.float32)
  free = np.asarray(generation.greedy_generate(
      params, CFG, ids, mask, max_new_tokens=G,
      interventions=_RowShift(jnp.asarray(shifts))))
  # Stop tokens met at different steps, so rows stop at different phases
  # and some never do: the tokens a row switches to after its first
  # (this tiny model repeats itself), and row 3's first token.
  eos = sorted({int(v) for row in free for v in row[1:] if v != row[0]} |
               {int(free[3, 0])})
  cfg = dataclasses.replace(CFG, eos_token_ids=tuple(eos), pad_token_id=0)
  return Model(cfg, params), ids, mask, shifts


def _plain(model, ids, mask, shifts):
  return model.generate(ids, mask, max_new_tokens=G,
                        interventions=_RowShift(jnp.asarray(shifts)))


@pytest.mark.parametrize('phases,cont', [((), 0), ((2, 5), 3), ((1, 3, 6, 9), 2),
                                         ((4, 40), 5)])
def test_regrouped_rows_equal_one_uninterrupted_pass(setup, phases, cont):
  model, ids, mask, shifts = setup
  want = _plain(model, ids, mask, shifts)
  stops = np.isin(want, model.config.eos_token_ids)
  first = np.where(stops.any(1), stops.argmax(1), G)
  assert len(set(first.tolist())) >= 3, first  # rows stop at several steps
  finished = []
  got = regrouped.generate(
      model, ids, mask, G,
      lambda idx: _RowShift(jnp.asarray(shifts[idx])),
      sizes=ChunkSizes(batch=4), op='gen', rows=4, phases=phases,
      continue_rows=cont, progress=finished.append)
  np.testing.assert_array_equal(got, want)
  assert sum(finished) == N


def test_phase_bounds():
  assert regrouped.phase_bounds((24, 48, 96, 192), 64) == [24, 48, 64]
  assert regrouped.phase_bounds((), 64) == [64]
  assert regrouped.phase_bounds((0, 64, 8, 8), 64) == [8, 64]
