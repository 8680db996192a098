"""The paired sweep: each prompt under its own masks, one call shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax import errors
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import paired
from refusal_jax.sweeps.metrics import Metric

CFG = ModelConfig.gemma2(vocab_size=43, d_model=16, num_layers=4, num_heads=2,
                         num_kv_heads=1, head_dim=8, mlp_dim=23,
                         sliding_window=3, eos_token_ids=(1,), pad_token_id=0)
IDS = np.random.RandomState(0).randint(1, 43, (5, 9)).astype(np.int32)
MASK = np.ones_like(IDS)
MASK[1, :3] = 0
MASK[4, :5] = 0
METRIC = Metric('refusal_score', (7, 11))
A = 40
OOM = 'RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4096 bytes.'


def _sae(layer, site):
  k = jax.random.split(jax.random.key(layer), 4)
  return SAE(W_enc=jax.random.normal(k[0], (16, A)) * 0.4,
             b_enc=jax.random.normal(k[1], (A,)) * 0.1,
             W_dec=jax.random.normal(k[2], (A, 16)) * 0.4,
             b_dec=jax.random.normal(k[3], (16,)) * 0.1,
             threshold=jnp.full((A,), 0.1), architecture='jumprelu', k=None,
             apply_b_dec_to_input=True, rescale_acts_by_decoder_norm=False,
             site=site, layer=layer, hook_name=f'blocks.{layer}.hook_{site}',
             model_name='tiny', neuronpedia_id=None, dtype='float32')


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
