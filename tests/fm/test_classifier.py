"""The FM classifier fits an interaction-only signal the probe cannot."""

import numpy as np
import pytest

import numerics
from configs import dissect_base, paper_mode
from refusal_jax import errors
from refusal_jax.fm import classifier
from refusal_jax.pipeline.paper import rankings

# the paper's embedding 20 and 20 epochs; lr 1e-2 instead of its 1e-3, so that
# 400 prompts take enough steps
KW = dict(lr=1e-2, epochs=20, batch_size=16, test_fraction=0.3, seed=0)


def _xor_prompts(n=400, n_features=10, seed=0):
  """Harmful iff exactly one of features 3 and 7 fires; others are noise."""
  rng = np.random.default_rng(seed)
  x = rng.random((n, n_features)) * (rng.random((n, n_features)) < 0.5)
  x[:, 3] = 2.0 * (rng.random(n) < 0.5)
  x[:, 7] = 0.5 * (rng.random(n) < 0.5)
  return x, (x[:, 3] > 0) != (x[:, 7] > 0)


@pytest.fixture(scope='module')
def fits():
  x, y = _xor_prompts()
  return (x, y, classifier.fit(x, y, rank=20, **KW),
          classifier.fit(x, y, rank=0, l2=1e-4, **KW))


def test_fm_separates_what_the_probe_cannot(fits):
  _, _, fm, probe = fits
  assert fm.test_accuracy >= 0.97 and fm.train_accuracy >= 0.97
  # one of the four activity patterns at best: 0.75; here near chance
  assert probe.test_accuracy <= 0.7
  assert fm.test_loss < probe.test_loss
  assert [h[0] for h in fm.history] == list(range(1, 21))


def test_fm_importance_ranks_the_interacting_pair_first(fits):
  x, _, fm, probe = fits
  imp = classifier.fm_importance(fm, x)
  assert set(classifier.ranking(imp)[:2]) == {3, 7}
  # the probe's |w| cannot single them out: no feature predicts alone
  assert set(classifier.ranking(classifier.probe_importance(probe))[:2]) != {
      3, 7}


def test_importance_equals_its_formula(fits):
  x, _, fm, _ = fits
  a = np.abs(x[fm.train_index] / fm.scale)
  w, v = np.abs(fm.params['w']), fm.params['v']
  want = np.array([
      w[i] * a[:, i].mean() + sum(
          abs(v[i] @ v[j]) * (a[:, i] * a[:, j]).mean()
          for j in range(x.shape[1]) if j != i)
      for i in range(x.shape[1])])
  got = classifier.fm_importance(fm, x)
  numerics.assert_close(got, want, ulps=64, what='FM importance')
  numerics.assert_close(classifier.fm_importance(fm, x, chunk=3), got,
                        ulps=64, what='FM importance in chunks')


def test_inputs_are_scaled_by_their_training_peak(fits):
  x, _, fm, _ = fits
  np.testing.assert_array_equal(fm.scale[[3, 7]], [2.0, 0.5])
  logits = fm.logits(x[fm.test_index])
  acc = np.mean((logits > 0) == _xor_prompts()[1][fm.test_index])
  numerics.assert_close(acc, fm.test_accuracy, ulps=8)


def test_stratified_split_is_deterministic_and_balanced():
  y = np.array([1] * 30 + [0] * 70)
  train, test = classifier.stratified_split(y, 0.2, seed=3)
  assert len(test) == 20 and y[test].sum() == 6
  assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
  again = classifier.stratified_split(y, 0.2, seed=3)
  np.testing.assert_array_equal(again[1], test)
  assert not np.array_equal(classifier.stratified_split(y, 0.2, seed=4)[1],
                            test)


def test_classifier_rejects_bad_labels():
  x = np.ones((6, 2))
  with pytest.raises(errors.ConfigError, match='both 0'):
    classifier.fit(x, np.ones(6), rank=2)
  with pytest.raises(errors.ConfigError, match='holds out no'):
    classifier.fit(x, [0, 1, 0, 1, 0, 1], rank=2, test_fraction=0.0)


def test_rank_pool_runs_both_models_from_the_config_fields(fits):
  x, y, fm, probe = fits
  # [P, T=2, I]: the features on one token, nothing on the other
  acts = np.stack([x, np.zeros_like(x)], axis=1)
  cfg = paper_mode.add_paper_fields(dissect_base.base_config())
  fields = dict(cfg.paper.classifier.to_dict(), **KW)
  assert fields['embedding_dim'] == 20 and fields['probe_l2'] == 1e-4
  summary, arrays = rankings.rank_pool(acts, y, **fields)
  assert summary['fm_test_accuracy'] == fm.test_accuracy
  assert summary['probe_test_accuracy'] == probe.test_accuracy
  assert summary['fm_ranking'] == classifier.ranking(
      classifier.fm_importance(fm, x))
  assert summary['probe_ranking'] == classifier.ranking(
      classifier.probe_importance(probe))
  assert summary['n_train'] + summary['n_test'] == len(y)
  np.testing.assert_array_equal(arrays['test_index'], fm.test_index)
