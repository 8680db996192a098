"""Paper-mode stage procedures on synthetic scores and hand-built arrays."""

import numpy as np
import pytest

import numerics
from configs import dissect_base, paper_mode
from refusal_jax import errors
from refusal_jax.pipeline.paper import (activity, block_greedy, controls,
                                        counts, dormant, knock_on, top_k)


def _per_prompt(p_refusal, n_prompts=3):
  """Turns [M] P('I') into [M, P] with a fixed spread over prompts."""
  spread = np.linspace(-0.02, 0.02, n_prompts)
  return np.asarray(p_refusal)[:, None] + spread[None]


def _and_score(planted):
  """P('I') drops only when every planted candidate is ablated."""
  def score(masks):
    return _per_prompt(np.where(masks[:, planted].all(1), 0.05, 0.9))
  return score


def _reference_pass(n, score, tau, block_size, seed, absolute=True):
  """The one-block-at-a-time pass, written out plainly."""
  cur = np.ones(n, np.float32)
  base = score(cur[None]).mean()
  for block in block_greedy.block_order(n, block_size, seed):
    trial = cur.copy()
    trial[block] = 0.0
    val = score(trial[None]).mean()
    change = val - base
    if (abs(change) if absolute else change) < tau:
      cur, base = trial, val
  return np.flatnonzero(cur).tolist()


def test_block_greedy_keeps_the_blocks_of_a_planted_and_set():
  planted = [2, 9, 17]
  names = [f'f{i}' for i in range(23)]
  res = block_greedy.block_greedy(names, _and_score(planted), tau=0.3,
                                  block_size=5, seed=0)
  blocks = res.blocks
  assert sorted(sum(blocks, [])) == list(range(23))
  assert [len(b) for b in blocks] == [5, 5, 5, 5, 3]
  want = sorted(i for b in blocks if set(b) & set(planted) for i in b)
  assert res.kept_indices == want
  assert res.kept == [names[i] for i in want]
  numerics.assert_close(res.start_metric, 0.05, ulps=4, scale=1.0)
  numerics.assert_close(res.final_metric, 0.05, ulps=4, scale=1.0)
  # blocks of one candidate recover the planted set exactly
  one = block_greedy.block_greedy(names, _and_score(planted), tau=0.3,
                                  block_size=1, seed=0)
  assert one.kept_indices == planted


def test_intersection_over_seeds_narrows_to_the_planted_set():
  planted = [2, 9, 17]
  res = block_greedy.intersect_over_seeds(list(range(40)),
                                          _and_score(planted), tau=0.3,
                                          seeds=(0, 1, 2))
  sets = [set(r.kept_indices) for r in res.per_seed.values()]
  assert sorted(res.per_seed) == [0, 1, 2]
  assert set(res.kept_indices) == set.intersection(*sets)
  assert set(planted) <= set(res.kept_indices)
  assert len(res.kept_indices) < min(len(s) for s in sets)
  # other seeds group the candidates differently
  assert len({tuple(r.kept_indices) for r in res.per_seed.values()}) > 1


@pytest.mark.parametrize('max_masks', [1, 3, 16])
@pytest.mark.parametrize('absolute', [True, False])
def test_batched_pass_equals_the_sequential_rule(max_masks, absolute):
  # refusal needs a and c, or b and c, left alone (a and b are redundant);
  # ablating d raises refusal (a change of the other sign)
  a, b, c, d = 3, 11, 20, 7

  def score(masks):
    m = masks > 0
    p = 0.9 - 0.8 * ((m[:, a] | m[:, b]) & m[:, c]) + 0.3 * m[:, d]
    return _per_prompt(np.clip(p, 0.0, 1.0))

  for seed in range(4):
    for tau in (0.1, 0.5):
      got = block_greedy.block_greedy(list(range(24)), score, tau=tau,
                                      block_size=4, seed=seed,
                                      absolute=absolute, max_masks=max_masks)
      want = _reference_pass(24, score, tau, 4, seed, absolute)
      assert got.kept_indices == want, (seed, tau)
      assert len(got.trajectory) == 6
      assert got.n_masks <= 1 + 6 * max_masks


def test_one_batched_call_per_dropped_block():
  calls = []

  def score(masks):
    calls.append(len(masks))
    return _and_score([4])(masks)

  res = block_greedy.block_greedy(list(range(30)), score, tau=0.3,
                                  block_size=5, seed=1, max_masks=16)
  n_dropped = sum(not t['kept'] for t in res.trajectory)
  assert n_dropped == 5
  assert res.n_calls == len(calls) <= n_dropped + 2
  assert calls[1] == 6  # every block scored in the first batched call


def test_per_prompt_passes_share_their_scores():
  # prompt 0 refuses unless candidate 4 is ablated; prompt 1, candidate 9
  def score(masks):
    return np.stack([np.where(masks[:, 4] > 0, 0.05, 0.9),
                     np.where(masks[:, 9] > 0, 0.05, 0.9)], axis=1)

  cached = block_greedy.CachedScore(score)
  per = [block_greedy.block_greedy(list(range(12)), cached, tau=0.3,
                                   block_size=1, seed=0, prompts=[p])
         for p in (0, 1)]
  assert [r.kept_indices for r in per] == [[4], [9]]
  # the second pass meets masks the first one scored (the start, at least)
  alone = block_greedy.block_greedy(list(range(12)), score, tau=0.3,
                                    block_size=1, seed=0, prompts=[1])
  assert alone.kept_indices == [9]
  assert per[1].n_masks < alone.n_masks
  assert cached.n_masks == per[0].n_masks + per[1].n_masks
  both = block_greedy.block_greedy(list(range(12)), score, tau=0.3,
                                   block_size=1, seed=0)
  assert both.kept_indices == [4, 9]


def test_tau_sweep_nests_on_an_additive_score():
  effect = {5: 0.15, 12: 0.3, 30: 0.45}

  def score(masks):
    p = 0.95 - sum(e * masks[:, i] for i, e in effect.items())
    return _per_prompt(p)

  taus = (0.1, 0.2, 0.4, 0.5, 0.8)
  single = block_greedy.tau_sweep(list(range(33)), score, taus=taus,
                                  block_size=1, seeds=(0,))
  assert {t: r.kept_indices for t, r in single.items()} == {
      0.1: [5, 12, 30], 0.2: [12, 30], 0.4: [30], 0.5: [], 0.8: []}
  sweep = block_greedy.tau_sweep(list(range(33)), score, taus=taus)
  kept = [set(sweep[t].kept_indices) for t in taus]
  assert all(hi <= lo for lo, hi in zip(kept, kept[1:]))
  assert set(effect) <= kept[0] and not kept[-1]


def test_cached_score_scores_each_mask_once():
  rows = []

  def score(masks):
    rows.extend(map(tuple, masks))
    return _per_prompt(masks.sum(1) / 10)

  cached = block_greedy.CachedScore(score)
  m = np.eye(4, dtype=np.float32)
  first = cached(np.concatenate([m, m[:2]]))
  again = cached(m[::-1])
  assert len(rows) == 4 == cached.n_masks and cached.n_calls == 1
  np.testing.assert_array_equal(again, first[:4][::-1])
  block_greedy.tau_sweep(list(range(12)), score, taus=(0.1, 0.3))
  assert len(rows) == len(set(rows[4:])) + 4


def test_block_greedy_rejects_bad_input():
  with pytest.raises(errors.ConfigError, match='at least one candidate'):
    block_greedy.block_greedy([], _and_score([0]), tau=0.1)
  with pytest.raises(errors.ConfigError, match='block size'):
    block_greedy.block_greedy([0, 1], _and_score([0]), tau=0.1, block_size=0)
  with pytest.raises(errors.ConfigError, match=r'expected \[M, P\]'):
    block_greedy.block_greedy([0, 1], lambda m: m.sum(1), tau=0.1)


# acts [P=2, T=3, I=4]: feature 1 never fires; feature 3 only at 0.01
ACTS = np.array([[[0.0, 0.0, 2.0, 0.0],
                  [1.0, 0.0, 0.0, 0.0],
                  [3.0, 0.0, 0.0, 0.0]],
                 [[0.0, 0.0, 0.0, 0.01],
                  [0.5, 0.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0]]])


def test_dormant_features_and_the_rerun_without_them():
  feats = ['a', 'b', 'c', 'd']
  split = dormant.split_dormant(feats, ACTS)
  assert split.dormant == ['b'] and split.active == ['a', 'c', 'd']
  np.testing.assert_array_equal(split.dormant_mask, [False, True, False,
                                                     False])
  assert dormant.split_dormant(feats, ACTS, eps=0.05).dormant == ['b', 'd']
  assert dormant.split_dormant(feats, ACTS[1]).dormant == ['b', 'c']

  def jailbreak(features):
    # 4 prompts; 'b' is needed for prompts 0 and 1, prompt 2 needs 'a'
    has = set(features)
    return np.array(['b' in has, 'b' in has, 'a' in has, False])

  out = dormant.dormant_effect(feats, ACTS, jailbreak)
  assert out['dormant'] == ['b'] and out['n_dormant'] == 1
  assert out['full'] == {'asr': 0.75, 'asr_count': 3}
  assert out['without_dormant'] == {'asr': 0.25, 'asr_count': 1}
  assert out['asr_change'] == -0.5 and out['asr_change_count'] == -2
  assert out['lost_count'] == 2 and out['gained_count'] == 0
  with pytest.raises(errors.ConfigError, match='4 features, the set 3'):
    dormant.split_dormant(feats[:3], np.zeros((2, 4)))


def test_random_controls():
  pool = list(range(100, 130))
  sets = controls.random_sets(pool, 7, 4, seed=0)
  assert len(sets) == 4
  for s in sets:
    assert len(s) == len(set(s)) == 7 and set(s) <= set(pool)
    assert s == sorted(s)
  assert len({tuple(s) for s in sets}) == 4
  assert controls.random_sets(pool, 7, 4, seed=0) == sets
  assert controls.random_sets(pool, 7, 4, seed=1) != sets
  with pytest.raises(errors.ConfigError, match='pool of 30'):
    controls.random_sets(pool, 31, 1, seed=0)


def test_obrien_set_counts_active_tokens():
  # token counts over both prompts: [3, 0, 1, 1]
  np.testing.assert_array_equal(controls.token_counts(ACTS), [3, 0, 1, 1])
  assert controls.obrien_set(ACTS, 1) == [0, 2, 3]
  assert controls.obrien_set(ACTS, 2) == [0]
  assert controls.obrien_set(ACTS, 4) == []
  assert controls.obrien_set(ACTS, 1, size=2) == [0, 2]
  assert controls.obrien_set(ACTS, 1, size=0) == [0, 2, 3]
  assert controls.obrien_set(ACTS, 1, eps=0.05) == [0, 2]
  assert controls.obrien_set(ACTS[0], 1) == [0, 2]


def test_control_asr():
  cands = ['a', 'b', 'c', 'd']

  def jailbreak(features):
    return np.array([len(features) >= 3, 'a' in features and 'c' in features])

  out = controls.control_asr(cands, 2, ACTS, jailbreak, n_draws=6, seed=0,
                             min_tokens=(1, 2, 9))
  # the config section holds control_asr's keyword arguments
  cfg = paper_mode.add_paper_fields(dissect_base.base_config())
  again = controls.control_asr(cands, 2, ACTS, jailbreak,
                               **dict(cfg.paper.controls.to_dict(),
                                      n_draws=6, min_tokens=(1, 2, 9)))
  assert again == out
  assert [r['size'] for r in out['obrien']] == [3, 1, 0]
  assert [r['asr_count'] for r in out['obrien']] == [2, 0, 0]
  assert out['obrien_max_asr'] == 1.0 and out['obrien_max_asr_count'] == 2
  want = [int('a' in s and 'c' in s) for s in controls.random_sets(
      cands, 2, 6, seed=0)]
  assert [r['asr_count'] for r in out['random']] == want
  numerics.assert_close(out['random_mean_asr'], np.mean(want) / 2, ulps=4)
  assert out['random_max_asr_count'] == max(want)


def test_knock_on_on_hand_built_activations():
  # [P=2, T=2, I=3] clean and ablated; peaks clean [[2, 0, 1], [4, 1, 0]]
  clean = np.array([[[2.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
                    [[4.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
  # peaks ablated [[1, 5, 0], [4, 0, 0]]
  ablated = np.array([[[1.0, 5.0, 0.0], [0.5, 0.0, 0.0]],
                      [[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]])
  out = knock_on.knock_on(clean, ablated)
  # active pairs: (0,0) 2->1, (0,2) 1->0, (1,0) 4->4, (1,1) 1->0
  assert out['n_active'] == 4 and out['n_deactivated'] == 2
  assert out['deactivated_fraction'] == 0.5
  numerics.assert_close(out['mean_drop'], (1 + 1 + 0 + 1) / 4, ulps=4)
  numerics.assert_close(out['mean_relative_drop'], (0.5 + 1 + 0 + 1) / 4,
                        ulps=4)
  # already per prompt; feature 2 left out
  out = knock_on.knock_on(clean.max(1), ablated.max(1), exclude=[2])
  assert (out['n_active'], out['n_deactivated']) == (3, 1)
  numerics.assert_close(out['mean_relative_drop'], 1.5 / 3, ulps=4)
  none = knock_on.knock_on(np.zeros((1, 2)), np.zeros((1, 2)))
  assert none['n_active'] == 0 and none['deactivated_fraction'] == 0.0
  with pytest.raises(errors.ConfigError, match='differ in shape'):
    knock_on.knock_on(np.zeros((1, 2)), np.zeros((1, 3)))


def test_per_prompt_summaries():
  mask = np.array([[1, 1, 1], [0, 1, 1]])
  np.testing.assert_array_equal(activity.per_prompt(ACTS),
                                [[3, 0, 2, 0], [0.5, 0, 0, 0.01]])
  numerics.assert_close(activity.per_prompt(ACTS, 'mean', mask),
                        [[4 / 3, 0, 2 / 3, 0], [0.25, 0, 0, 0]], ulps=4)
  with pytest.raises(errors.ConfigError, match='token reduction'):
    activity.per_prompt(ACTS, 'median')


def test_asr_counts():
  assert counts.asr_counts([True, False, True, True]) == {
      'asr': 0.75, 'asr_count': 3}
  assert counts.asr_counts([], name='fm_asr') == {'fm_asr': 0.0,
                                                  'fm_asr_count': 0}


def test_k_grid_is_scaled_to_the_pool():
  grid = top_k.k_grid(2000)
  assert grid[0] == 100 and grid[-1] == 2000 and len(grid) == 8
  # geometric up to rounding K to integers (log K moves by <= 0.5 / K)
  numerics.assert_within(np.diff(np.log(grid)), np.full(7, np.log(20) / 7),
                         1.0 / grid[0], 'log-spacing of the K grid')
  assert top_k.k_grid(3) == [1, 2, 3]
  assert top_k.k_grid(50, n_points=1) == [50]
  with pytest.raises(errors.ConfigError, match='K grid'):
    top_k.k_grid(0)


def test_asr_by_k_runs_each_set_once():
  runs = []

  def jailbreak(features):
    runs.append(tuple(features))
    return np.array([len(features) >= 2, 'x' in features, False])

  cands = ['x', 'y', 'z']
  out = top_k.asr_by_k({'fm': [0, 2, 1], 'probe': [2, 0, 1]}, [1, 2, 3],
                       cands, jailbreak)
  assert [r['asr_count'] for r in out['fm']] == [1, 2, 2]
  assert [r['asr_count'] for r in out['probe']] == [0, 2, 2]
  assert out['fm'][1] == {'k': 2, 'asr': 2 / 3, 'asr_count': 2}
  assert len(runs) == len(set(runs)) == 4


def test_paper_config_defaults():
  c = paper_mode.add_paper_fields(dissect_base.base_config())
  assert c.mode == 'current'
  g, f = c.paper.greedy, c.paper.classifier
  assert g.block_size == 5 and g.seeds == (0, 1, 2)
  assert min(g.taus) == 0.1 and max(g.taus) == 0.8 and g.tau in g.taus
  assert f.embedding_dim == 20 and f.lr == 1e-3 and f.epochs == 20
  assert c.paper.controls.n_draws >= 2 and c.paper.active_eps == 0.0
  grid = top_k.k_grid(1619, **c.paper.top_k)
  assert grid[0] == 81 and grid[-1] == 1619
  # the greedy section holds intersect_over_seeds' keyword arguments
  fields = {k: v for k, v in g.items()
            if k not in ('sweep_tau', 'taus', 'search', 'tau_rule',
                         'judge_new_tokens', 'judge_tokens', 'chunk_masks')}
  res = block_greedy.intersect_over_seeds(list(range(12)), _and_score([3]),
                                          **fields)
  assert 3 in res.kept_indices and sorted(res.per_seed) == [0, 1, 2]
  # stage 2 per prompt by default, tau as an absolute change of P('I'),
  # judged at 128 new tokens and reported at 64 and 256
  assert g.search == 'per_prompt' and g.tau_rule == 'absolute'
  assert g.judge_new_tokens >= 128 and g.judge_new_tokens in g.judge_tokens
  assert {64, 256} <= set(g.judge_tokens)
  # the current procedures keep their own fields
  assert c.greedy.order == 'backward' and c.fm.lr == 0.02
