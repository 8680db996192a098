"""Stage 2 per prompt: the batched search, its rules, sets and compilations."""

import jax
import numpy as np
import pytest

import numerics
import tiny_setup
from refusal_jax import errors
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline.paper import block_greedy
from refusal_jax.pipeline.paper import per_prompt
from refusal_jax.pipeline.paper import per_prompt_stage
from refusal_jax.pipeline.paper import stages
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import paired

N_PROMPTS, N_CANDIDATES = 5, 23
_BACKEND_COMPILE = '/jax/core/compile/backend_compile_duration'
_COMPILES = [0]


def _count_compile(event, duration, **_):
  del duration
  if event == _BACKEND_COMPILE:
    _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)


def _prompt_metric(masks, p):
  """P('I') of synthetic prompt p under masks [M, C]: each prompt refuses
  unless its own planted trio is ablated, plus a small additive part."""
  rng = np.random.default_rng(100 + p)
  planted = rng.choice(N_CANDIDATES, 3, replace=False)
  weights = rng.normal(size=N_CANDIDATES) * 0.06
  m = np.asarray(masks) > 0
  return np.clip(0.9 - 0.8 * m[:, planted].all(1) + (m * weights).sum(1),
                 0.0, 1.0)


def _pooled(masks):
  """[M, P]: every prompt under every mask (the single-prompt search's)."""
  return np.stack([_prompt_metric(masks, p) for p in range(N_PROMPTS)], 1)


def _paired(prompts, masks):
  """[N]: prompt prompts[n] under masks[n]."""
  return np.asarray([_prompt_metric(m[None], p)[0]
                     for p, m in zip(prompts, masks)])


@pytest.mark.parametrize('lookahead,fill_rows', [(1, None), (3, None),
                                                (8, None), (1, 0), (3, 0)])
@pytest.mark.parametrize('absolute', [True, False])
def test_batched_search_equals_a_loop_of_single_prompt_searches(
    lookahead, fill_rows, absolute):
  clean = _paired(range(N_PROMPTS), np.zeros((N_PROMPTS, N_CANDIDATES)))
  for rule in per_prompt_stage.RULES:
    for tau in (0.05, 0.3):
      thr = per_prompt_stage.thresholds_for(rule, tau, clean)
      score = per_prompt.PairedScore(_paired, N_PROMPTS)
      got = per_prompt.per_prompt_sets(
          N_CANDIDATES, score, {'x': thr}, seeds=(0, 1, 2), block_size=3,
          absolute=absolute, lookahead=lookahead,
          fill_rows=fill_rows)['x']
      for p in range(N_PROMPTS):
        want = block_greedy.intersect_over_seeds(
            list(range(N_CANDIDATES)), _pooled, tau=thr[p], block_size=3,
            seeds=(0, 1, 2), absolute=absolute, prompts=[p])
        assert got[p].kept_indices == want.kept_indices, (rule, tau, p)
        for s, r in want.per_seed.items():
          mine = got[p].per_seed[s]
          assert mine.kept_indices == r.kept_indices
          assert [t['kept'] for t in mine.trajectory] == [
              t['kept'] for t in r.trajectory]
          assert [t['change'] for t in mine.trajectory] == [
              t['change'] for t in r.trajectory]
      # one call per step for all prompts: far fewer than the loop's
      assert score.n_calls <= 2 + 3 * N_CANDIDATES


def test_searches_left_alone_propose_more_masks_per_step():
  """Prompt 0's search mispredicts its first four decisions (restoring the
  1st or 3rd block of its order raises P('I') by 0.5: kept), then drops
  the rest; prompt 1's drops everything and ends first. Alone, prompt 0's
  search proposes fill_rows masks a step: the same sets in fewer calls."""
  n = 12
  order = [b[0] for b in block_greedy.block_order(n, 1, 0)]
  critical = [order[0], order[2]]

  def fn(prompts, masks):
    hits = (np.asarray(masks)[:, critical] > 0).sum(1)
    return np.where(np.asarray(prompts) == 0, 1.0 - 0.5 * hits, 0.0)

  out = {}
  for fill in (None, 0):
    score = per_prompt.PairedScore(fn, 2)
    res = per_prompt.per_prompt_sets(n, score, {'x': [0.3, 0.3]},
                                     seeds=(0,), block_size=1, lookahead=2,
                                     fill_rows=fill)['x']
    out[fill] = ([r.kept_indices for r in res], score.n_calls)
  assert out[None][0] == out[0][0] == [sorted(critical), []]
  # the start, 4 one-decision steps, then 2 a step (4 a step once alone)
  assert (out[0][1], out[None][1]) == (1 + 4 + 4, 1 + 4 + 3)


def test_tau_rules():
  clean = np.array([0.9, 0.3, 0.05])
  assert per_prompt_stage.thresholds_for('absolute', 0.5, clean) == [0.5] * 3
  numerics.assert_close(per_prompt_stage.thresholds_for('relative', 0.5,
                                                        clean),
                        [0.45, 0.15, 0.025], ulps=4)
  with pytest.raises(errors.ConfigError, match='tau_rule'):
    per_prompt_stage.thresholds_for('ratio', 0.5, clean)

  # prompt 0 refuses at P('I') 0.8, prompt 1 at 0.2; ablating candidate 2
  # (prompt 0) or 5 (prompt 1) takes it to 0
  def fn(prompts, masks):
    m = masks > 0
    return np.where(np.asarray(prompts) == 0, 0.8 * (1 - m[:, 2]),
                    0.2 * (1 - m[:, 5]))

  clean = fn([0, 1], np.zeros((2, 8), np.float32))
  sets = {}
  for rule in per_prompt_stage.RULES:
    thr = per_prompt_stage.thresholds_for(rule, 0.5, clean)
    res = per_prompt.per_prompt_sets(
        8, per_prompt.PairedScore(fn, 2), {rule: thr}, seeds=(0,),
        block_size=1)[rule]
    sets[rule] = [r.kept_indices for r in res]
  # a change of 0.2 misses an absolute 0.5 but not half of the clean 0.2
  assert sets == {'absolute': [[2], []], 'relative': [[2], [5]]}


def test_paired_score_scores_each_pair_once_in_one_call():
  calls = []

  def fn(prompts, masks):
    calls.append((list(prompts), masks.argmax(1).tolist()))
    return masks.argmax(1) + 10.0 * np.asarray(prompts)

  score = per_prompt.PairedScore(fn, 3)
  m = np.eye(4, dtype=np.float32)
  got = score([0, 0, 2, 0], m[[0, 1, 1, 0]])
  np.testing.assert_array_equal(got, [0, 1, 21, 0])
  assert calls == [([0, 0, 2], [0, 1, 1])]
  again = score([2, 1, 0], m[[1, 3, 1]])
  np.testing.assert_array_equal(again, [21, 13, 1])
  assert calls[1] == ([1], [3])
  assert score.n_calls == 2 and score.n_evals == 4


def test_dormant_members_are_per_source_prompt():
  union = [10, 20, 30]
  # [P=2, T=2, U=3]: 10 fires on prompt 0 only, 20 on prompt 1 only, 30
  # nowhere above 0.05
  acts = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.04]],
                   [[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
  sets = [[10, 20, 30], [10, 20]]
  assert per_prompt_stage.dormant_per_prompt(sets, union, acts) == [
      [20], [10]]
  assert per_prompt_stage.dormant_per_prompt(sets, union, acts, 0.05) == [
      [20, 30], [10]]


def test_random_controls_match_each_prompts_set_size():
  features = list(range(100, 140))
  sizes = [3, 0, 7]
  draws = per_prompt_stage.random_controls(features, sizes, 4, seed=0)
  assert len(draws) == 4
  for drawn in draws:
    assert [len(s) for s in drawn] == sizes
    for s in drawn:
      assert len(set(s)) == len(s) and set(s) <= set(features)
  assert per_prompt_stage.random_controls(features, sizes, 4, seed=0) == draws
  assert per_prompt_stage.random_controls(features, sizes, 4, seed=1) != draws
  # the draws of a prompt differ from each other and from another prompt's
  assert len({tuple(d[2]) for d in draws}) == 4
  same = per_prompt_stage.random_controls(features, [7, 7], 1, seed=0)[0]
  assert same[0] != same[1]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('tiny_per_prompt'))
  config = tiny_setup.use_layer_saes(tiny_setup.build(root), root, (0, 1), 4)
  config.mode = 'paper'
  config.judge.nll_quantile = 0.0
  config.greedy.mode, config.greedy.value = 'scale', -3.0
  config.chunks.masks, config.chunks.prompts = 4, 4
  config.eval.batch_size = 4
  config.paper.greedy.update(judge_tokens=(4, 8), judge_new_tokens=8,
                             seeds=(0, 1))
  config.paper.controls.update(n_draws=2, min_tokens=(1, 4))
  return root, config


def _features():
  return list(range(0, 96, 12)) + list(range(96, 192, 12))


def test_tiny_model_batched_search_equals_the_single_prompt_loop(tiny):
  _, config = tiny
  ctx = context_lib.build_context(config)
  ps = ctx.prompts['harmful_train'].subset(range(6))
  feats = _features()
  metric = stages.p_refusal(ctx)
  score = per_prompt_stage.paired_score(ctx, ps, feats, metric, ctx.memo('x'))
  clean = score(range(len(ps)), np.zeros((len(ps), len(feats)), np.float32))

  def pooled(masks):
    return engine.feature_sweep(
        ctx.model.params, ctx.model.config, ctx.space, ps.ids, ps.mask,
        np.asarray(feats), masks, metric=metric, mode='scale', value=-3.0,
        chunks=engine.Chunks(masks=4, prompts=4))

  cached = block_greedy.CachedScore(pooled)
  changes = []
  for rule, tau in (('absolute', 1e-4), ('relative', 0.01)):
    thr = per_prompt_stage.thresholds_for(rule, tau, clean)
    got = per_prompt.per_prompt_sets(len(feats), score, {rule: thr},
                                     seeds=(0, 1), block_size=2,
                                     lookahead=3)[rule]
    for p in range(len(ps)):
      want = block_greedy.intersect_over_seeds(
          feats, cached, tau=thr[p], block_size=2, seeds=(0, 1),
          prompts=[p])
      assert got[p].kept_indices == [feats.index(f) for f in want.kept]
      for s, r in want.per_seed.items():
        assert got[p].per_seed[s].kept_indices == r.kept_indices
        changes += [abs(abs(t['change']) - thr[p]) for t in r.trajectory]
    sizes = [len(r.kept_indices) for r in got]
    assert 0 < sum(sizes) < len(feats) * len(ps), (rule, sizes)
  # no decision sat within float rounding of its threshold (P('I') ~ 3e-3)
  assert min(changes) > 1e-8
  # the paired sweep is the feature sweep of each prompt alone
  rng = np.random.default_rng(0)
  rows = rng.integers(0, len(ps), 19)  # a ragged last call
  masks = (rng.random((19, len(feats))) < 0.5).astype(np.float32)
  got = paired.paired_feature_sweep(
      ctx.model.params, ctx.model.config, ctx.space, ps.ids, ps.mask,
      np.asarray(feats), rows, masks, metric=metric, mode='scale',
      value=-3.0, chunks=engine.Chunks(masks=2, prompts=4))
  want = np.diag(pooled(masks)[:, rows])
  numerics.assert_close(got, want, ulps=64, scale=np.abs(want).max())


def _stage_compiles(config, n_prompts, block_size):
  config = config.copy_and_resolve_references()
  config.greedy.n_prompts = n_prompts
  config.paper.greedy.block_size = block_size
  ctx = context_lib.build_context(config)
  jax.clear_caches()
  before = _COMPILES[0]
  out = stages.run_greedy(ctx, _features())
  return _COMPILES[0] - before, out


def test_greedy_stage_compilations_do_not_grow_with_prompts_or_steps(tiny):
  _, config = tiny
  small, s_out = _stage_compiles(config, 3, 4)
  large, l_out = _stage_compiles(config, 10, 1)
  assert l_out['search_stats']['n_calls'] > s_out['search_stats']['n_calls']
  assert l_out['n_prompts'] == 10 and s_out['n_prompts'] == 3
  assert large <= small, (small, large)
