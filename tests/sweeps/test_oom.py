"""Out of device memory: sweeps and generations halve their own chunk and retry.

XLA's out-of-memory is injected by test doubles of the compiled chunk
functions that raise it for chunks above a budget and run the real function
otherwise.
"""

import types

import jax
import numpy as np
import pytest

import numerics
from configs import dissect_base
from sweep_tiny import CFG, IDS, MASK, METRIC, OOM
from sweep_tiny import sae as _sae
from refusal_jax import errors
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.models import generation
from refusal_jax.models import transformer
from refusal_jax.models.model import Model
from refusal_jax.pipeline import evaluation
from refusal_jax.sweeps import engine

CANDIDATES = np.array([1, 5, 9, 17, 30, 33, 39])
MASKS = (np.random.RandomState(5).rand(11, len(CANDIDATES)) < 0.5).astype(
    np.float32)
DIRS = np.random.RandomState(6).randn(6, 16).astype(np.float32)


def _ablate(row, shared):
  del shared
  return DirectionalAblation(row)


@pytest.fixture(scope='module')
def params():
  return transformer.init_params(CFG, seed=3)


@pytest.fixture
def warnings(monkeypatch):
  """The messages engine logs with logging.warning."""
  lines = []
  monkeypatch.setattr(engine.logging, 'warning',
                      lambda msg, *args: lines.append(msg % args))
  return lines


def _over_budget(monkeypatch, module, name, budget, size, error=None):
  """Makes module.name raise an OOM when size(*args) > budget."""
  real = getattr(module, name)
  calls = []

  def double(*args, **kwargs):
    calls.append(size(*args))
    if size(*args) > budget:
      raise error or jax.errors.JaxRuntimeError(OOM)
    return real(*args, **kwargs)

  monkeypatch.setattr(module, name, double)
  return calls


def _sae_sweep(params, chunks, op='greedy'):
  return engine.sae_sweep(params, CFG, _sae(1, 'resid_post'), IDS, MASK,
                          CANDIDATES, MASKS, metric=METRIC, chunks=chunks,
                          op=op)


def _assert_same_values(got, want):
  """Chunk sizes change XLA's batching, so values agree to rounding."""
  numerics.assert_close(got, want, ulps=numerics.FORWARD_ULPS,
                        scale=np.abs(want).max())


def test_sae_sweep_halves_masks_then_prompts_and_remembers(
    params, monkeypatch, warnings):
  want = _sae_sweep(params, engine.Chunks(masks=8, prompts=5))
  # _sae_chunk(params, config, resid [Pc, T, D], ..., masks [Mc, C], ...):
  # fits while Mc * Pc <= 2.
  _over_budget(monkeypatch, engine, '_sae_chunk', 2,
               lambda *a: a[2].shape[0] * a[7].shape[0])
  sizes = engine.ChunkSizes(engine.Chunks(masks=8, prompts=5), batch=4)
  got = _sae_sweep(params, sizes)
  _assert_same_values(got, want)
  assert sizes.chunks('greedy') == engine.Chunks(masks=1, prompts=2)
  assert len(warnings) == 4, warnings  # masks 8 -> 4 -> 2 -> 1, prompts 5 -> 2
  assert all('greedy' in w for w in warnings)
  assert 'masks chunk 8 -> 4' in warnings[0]
  assert 'prompts chunk 5 -> 2' in warnings[-1]
  # Other operations keep the configured sizes.
  assert sizes.chunks('interactions') == engine.Chunks(masks=8, prompts=5)
  assert sizes.batch('evaluation/generate') == 4
  assert sizes.reduced() == {'greedy': engine.Chunks(masks=1, prompts=2)}
  # The reduced size is used from the start next time: no new halving.
  _assert_same_values(_sae_sweep(params, sizes), want)
  assert len(warnings) == 4


def test_a_prefix_pass_out_of_memory_halves_only_prompts(
    params, monkeypatch, warnings):
  want = _sae_sweep(params, engine.Chunks(masks=4, prompts=5))
  calls = _over_budget(monkeypatch, engine, 'prefix_residual', 2,
                       lambda *a: a[2].shape[0])
  sizes = engine.ChunkSizes(engine.Chunks(masks=4, prompts=5))
  _assert_same_values(_sae_sweep(params, sizes), want)
  assert sizes.chunks('greedy') == engine.Chunks(masks=4, prompts=2)
  assert len(warnings) == 1 and 'prompts chunk 5 -> 2' in warnings[0]
  assert calls[:2] == [5, 2]


def test_general_sweep_halves_and_keeps_other_operations(
    params, monkeypatch, warnings):
  want = engine.sweep(params, CFG, IDS, MASK, DIRS, _ablate, metric=METRIC,
                      chunks=engine.Chunks(masks=4, prompts=4))
  # _general_chunk(params, config, ids [Pc, T], resid, mask, rows [Mc, D],
  # ...): fits while Mc * Pc <= 4.
  _over_budget(monkeypatch, engine, '_general_chunk', 4,
               lambda *a: a[2].shape[0] * a[5].shape[0])
  sizes = engine.ChunkSizes(engine.Chunks(masks=4, prompts=4))
  got = engine.sweep(params, CFG, IDS, MASK, DIRS, _ablate, metric=METRIC,
                     chunks=sizes, op='direction/bypass')
  _assert_same_values(got, want)
  assert sizes.chunks('direction/bypass') == engine.Chunks(masks=1, prompts=4)
  assert sizes.chunks('direction/kl') == engine.Chunks(masks=4, prompts=4)
  assert len(warnings) == 2


def test_out_of_memory_at_chunk_one_is_raised(params, monkeypatch, warnings):
  _over_budget(monkeypatch, engine, '_sae_chunk', 0,
               lambda *a: a[2].shape[0] * a[7].shape[0])
  sizes = engine.ChunkSizes(engine.Chunks(masks=2, prompts=2))
  with pytest.raises(jax.errors.JaxRuntimeError) as info:
    _sae_sweep(params, sizes)
  assert errors.is_out_of_memory(info.value)
  assert sizes.chunks('greedy') == engine.Chunks(masks=1, prompts=1)
  assert len(warnings) == 2


def test_host_memory_error_is_handled_and_other_errors_are_not(
    params, monkeypatch, warnings):
  want = _sae_sweep(params, engine.Chunks(masks=4, prompts=5))
  _over_budget(monkeypatch, engine, '_sae_chunk', 10,
               lambda *a: a[2].shape[0] * a[7].shape[0], MemoryError())
  sizes = engine.ChunkSizes(engine.Chunks(masks=4, prompts=5))
  _assert_same_values(_sae_sweep(params, sizes), want)
  assert sizes.chunks('greedy').masks == 2
  _over_budget(monkeypatch, engine, '_sae_chunk', 0, lambda *a: 1,
               jax.errors.JaxRuntimeError('INVALID_ARGUMENT: bad shapes'))
  sizes = engine.ChunkSizes(engine.Chunks(masks=4, prompts=5))
  with pytest.raises(jax.errors.JaxRuntimeError, match='INVALID_ARGUMENT'):
    _sae_sweep(params, sizes)
  assert sizes.reduced() == {}


def test_halving_respects_the_mesh_data_axis(warnings):
  mesh = types.SimpleNamespace(shape={'data': 4})  # what _plan reads
  sizes = engine.ChunkSizes(engine.Chunks(masks=16, prompts=8))
  seen = []
  while sizes.halve_chunks('op', n_masks=100, n_prompts=10, mesh=mesh):
    seen.append(engine._plan(sizes.chunks('op'), 100, 10, mesh)[:2])
  # Masks stay a multiple of the 4 'data' devices; prompts go down to 1.
  assert seen == [(8, 8), (4, 8), (4, 4), (4, 2), (4, 1)]
  assert len(warnings) == 5


def test_batched_halves_its_batch_and_raises_at_one(warnings):
  sizes = engine.ChunkSizes(batch=8)

  def fn(i0, i1):
    if i1 - i0 > 3:
      raise jax.errors.JaxRuntimeError(OOM)
    return list(range(i0, i1))

  out = engine.batched(fn, 10, sizes, 'gen')
  assert sum(out, []) == list(range(10))
  assert sizes.batch('gen') == 2 and sizes.batch('other') == 8
  assert [w.split(': ')[1] for w in warnings] == [
      'batch 8 -> 4 for the rest of the run',
      'batch 4 -> 2 for the rest of the run']
  def never_fits(i0, i1):
    raise MemoryError(f'items {i0}:{i1}')

  with pytest.raises(MemoryError, match='items 0:1'):
    engine.batched(never_fits, 3, sizes, 'gen')
  assert sizes.batch('gen') == 1


def test_generation_halves_its_batch_with_the_same_tokens(
    params, monkeypatch, warnings):
  model = Model(config=CFG, params=params)
  ctx = types.SimpleNamespace(
      model=model, chunk_sizes=engine.ChunkSizes(
          engine.Chunks(masks=4, prompts=4), batch=5),
      config=dissect_base.base_config())
  ps = evaluation.PromptSet(['p'] * len(IDS), IDS, MASK)
  want = evaluation.generate(ctx, ps, None, max_new_tokens=5)
  _over_budget(monkeypatch, generation, 'greedy_generate', 2,
               lambda *a: a[2].shape[0])
  done = []
  got = evaluation.generate(ctx, ps, None, max_new_tokens=5,
                            progress=done.append)
  np.testing.assert_array_equal(got, want)
  assert sum(done) == len(IDS)  # failed batches are not counted
  assert ctx.chunk_sizes.batch(evaluation.GENERATE_OP) == 2
  assert ctx.chunk_sizes.reduced() == {evaluation.GENERATE_OP: 2}
  assert ctx.chunk_sizes.chunks('greedy') == engine.Chunks(4, 4)
  assert warnings == ['out of device memory in evaluation/generate: batch '
                      '5 -> 2 for the rest of the run']


def test_ce_loss_halves_its_batch(params, warnings):
  model = Model(config=CFG, params=params)
  sizes = engine.ChunkSizes(batch=5)
  ps = evaluation.PromptSet(['p'] * len(IDS), IDS, MASK)
  tokens = np.random.RandomState(2).randint(2, 43, (len(IDS), 4))
  tokens[0, 2] = 1  # an end of sequence: later tokens are not scored
  want = evaluation.ce_loss(types.SimpleNamespace(model=model,
                                                  chunk_sizes=sizes),
                            ps, tokens, None)

  class SmallMemory:
    """The model, out of memory above 2 sequences per pass."""
    config = CFG

    def forward(self, ids, *args, **kwargs):
      if len(ids) > 2:
        raise jax.errors.JaxRuntimeError(OOM)
      return model.forward(ids, *args, **kwargs)

  ctx = types.SimpleNamespace(model=SmallMemory(), chunk_sizes=sizes)
  got = evaluation.ce_loss(ctx, ps, tokens, None)
  numerics.assert_close(got, want, ulps=numerics.FORWARD_ULPS)
  assert sizes.reduced() == {evaluation.CE_OP: 2}
  assert sizes.batch(evaluation.GENERATE_OP) == 5
  assert len(warnings) == 1
