"""The paired sweep: each prompt under its own masks, one call shape."""

import jax
import numpy as np
import pytest

import numerics
from sweep_tiny import A, CFG, IDS, MASK, METRIC, OOM
from sweep_tiny import sae as _sae
from refusal_jax import errors
from refusal_jax.models import transformer
from refusal_jax.sae.space import FeatureSpace
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import paired


SPACE = FeatureSpace.of([_sae(1, 'resid_post'), _sae(2, 'resid_post')])
FEATURES = np.array([1, 5, 9, 17, 33, A + 2, A + 7, A + 30])
RNG = np.random.RandomState(5)
ROWS = RNG.randint(0, 5, 23)
MASKS = (RNG.rand(23, len(FEATURES)) < 0.5).astype(np.float32)


@pytest.fixture(scope='module')
def params():
  return transformer.init_params(CFG, seed=3)


def _paired(params, chunks, **kw):
  return paired.paired_feature_sweep(
      params, CFG, SPACE, IDS, MASK, FEATURES, ROWS, MASKS, metric=METRIC,
      chunks=chunks, op='greedy', **kw)


def _want(params, **kw):
  """Each row: the feature sweep of its prompt alone."""
  return np.asarray([engine.feature_sweep(
      params, CFG, SPACE, IDS[p:p + 1], MASK[p:p + 1], FEATURES, m[None],
      metric=METRIC, **kw)[0, 0] for p, m in zip(ROWS, MASKS)])


@pytest.mark.parametrize('mode,value', [('zero', 0.0), ('scale', -2.0)])
def test_each_row_is_its_prompts_feature_sweep(params, mode, value):
  want = _want(params, mode=mode, value=value)
  for masks, prompts in ((2, 2), (3, 5), (8, 4)):
    got = _paired(params, engine.Chunks(masks=masks, prompts=prompts),
                  mode=mode, value=value)
    numerics.assert_close(got, want, ulps=numerics.FORWARD_ULPS,
                          scale=np.abs(want).max())


_COMPILED = []


def _count(event, duration, **_):
  del duration
  if event == '/jax/core/compile/backend_compile_duration':
    _COMPILED.append(event)


jax.monitoring.register_event_duration_secs_listener(_count)


def test_one_compilation_for_every_call(params):
  chunks = engine.Chunks(masks=2, prompts=2)
  jax.clear_caches()
  start = len(_COMPILED)
  _paired(params, chunks)
  first = len(_COMPILED) - start
  # other rows, other counts, a ragged last prompt chunk: nothing new
  for n in (1, 7, 23):
    paired.paired_feature_sweep(
        params, CFG, SPACE, IDS, MASK, FEATURES, ROWS[:n][::-1],
        MASKS[:n], metric=METRIC, chunks=chunks)
  assert first > 0 and len(_COMPILED) - start == first


def test_out_of_memory_halves_the_rows_and_remembers(params, monkeypatch):
  want = _paired(params, engine.Chunks(masks=4, prompts=2))
  real = paired._rows_chunk  # pylint: disable=protected-access
  calls = []

  def double(*args, **kwargs):
    rows = args[8].shape[0]  # masks [R, C]
    calls.append(rows)
    if rows > 4:
      raise jax.errors.JaxRuntimeError(OOM)
    return real(*args, **kwargs)

  monkeypatch.setattr(paired, '_rows_chunk', double)
  sizes = engine.ChunkSizes(engine.Chunks(masks=4, prompts=2))
  got = _paired(params, sizes)
  numerics.assert_close(got, want, ulps=numerics.FORWARD_ULPS,
                        scale=np.abs(want).max())
  assert sizes.chunks('greedy') == engine.Chunks(masks=2, prompts=2)
  assert calls[:2] == [8, 4]


def test_bad_rows_are_refused(params):
  with pytest.raises(errors.ConfigError, match='outside'):
    paired.paired_feature_sweep(params, CFG, SPACE, IDS, MASK, FEATURES,
                                [0, 5], MASKS[:2], metric=METRIC)
  with pytest.raises(errors.ConfigError, match=r'\[N, C\]'):
    paired.paired_feature_sweep(params, CFG, SPACE, IDS, MASK, FEATURES,
                                [0, 1, 2], MASKS[:2], metric=METRIC)
