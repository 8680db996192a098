"""The whole pipeline in paper mode on the tiny setup: the paper's keys."""

import json
import os

import pytest

import tiny_setup
from configs import dissect_base
from refusal_jax import errors
from refusal_jax.data import datasets
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import dissect
from refusal_jax.pipeline.paper import stages as paper_stages


def _rate(x):
  return isinstance(x, float) and 0.0 <= x <= 1.0


def _count(x, n):
  return isinstance(x, int) and 0 <= x <= n


@pytest.fixture(scope='module')
def paper(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('tiny_paper'))
  config = tiny_setup.use_layer_saes(tiny_setup.build(root), root, (0, 1), 4)
  tiny_setup.save_sae(tiny_setup.sae_at(2, seed=3),
                      os.path.join(root, 'sae2'))
  config.hydra_sae_paths = (os.path.join(root, 'sae2'),)
  config.mode = 'paper'
  config.paper.greedy.block_size = 2
  config.paper.greedy.seeds = (0, 1)
  config.paper.greedy.tau = 1e-4
  config.paper.greedy.judge_tokens = (4, 8, 16)
  config.paper.greedy.judge_new_tokens = 8
  config.paper.greedy.sweep_tau = True
  config.paper.greedy.taus = (1e-4, 0.5)
  config.paper.top_k.n_points = 3
  config.paper.controls.n_draws = 2
  config.paper.controls.min_tokens = (1, 4)
  workdir = os.path.join(root, 'run')
  summary = dissect.run(config, workdir, show_progress=False)
  return config, workdir, summary


def test_mode_defaults_to_current():
  c = dissect_base.base_config()
  assert c.mode == 'current'
  assert c.paper.greedy.block_size == 5


def test_unknown_mode_is_refused(tmp_path):
  config = tiny_setup.config_for(str(tmp_path))
  config.mode = 'papers'
  with pytest.raises(errors.ConfigError, match="mode 'papers'"):
    dissect.run(config, str(tmp_path / 'run'), show_progress=False)


def test_paper_summary_has_the_paper_keys(paper):
  config, workdir, summary = paper
  on_disk = json.load(open(os.path.join(workdir, 'summary.json')))
  assert on_disk == json.loads(json.dumps(summary))
  n = summary['n_prompts']['harmful_test']
  assert summary['mode'] == 'paper'
  assert summary['sae_layers'] == [0, 1]
  s1, s2, s3 = summary['stage1'], summary['stage2'], summary['stage3']
  assert set(s2['features']) <= set(s1['features'])
  # stage 2 per prompt: one set per search prompt, the union passed on
  assert s2['search'] == 'per_prompt' and s2['tau_rule'] == 'absolute'
  n2 = config.greedy.n_prompts  # the search prompts
  per = s2['per_prompt']
  assert [r['index'] for r in per] == list(range(n2))
  union = set().union(*(set(r['features']) for r in per))
  assert sorted(union) == s2['features'] and s2['union_size'] == len(union)
  assert s2['features']
  for r in per:
    assert r['size'] == len(r['features'])
    assert set(r['dormant']) <= set(r['features'])
    assert r['judge'] in ('refusal', 'broken', 'off_topic', 'jailbreak')
    assert r['judge'] == r['judge_by_tokens']['8']
    assert r['jailbroken'] == (r['judge'] == 'jailbreak')
    # the intersection of the seeds' sets is the prompt's set
    seeds = sorted(r['per_seed_features'])
    assert seeds == sorted(r['per_seed_jailbroken']) == sorted(
        r['per_seed_size'])
    assert sorted(set.intersection(*(set(r['per_seed_features'][k])
                                     for k in seeds))) == sorted(
                                         r['features'])
    for k in seeds:
      assert len(r['per_seed_features'][k]) == r['per_seed_size'][k]
  assert s2['per_seed_asr_count'] == {
      k: sum(r['per_seed_jailbroken'][k] for r in per) for k in seeds}
  assert s2['per_seed_asr'] == {
      k: v / n2 for k, v in s2['per_seed_asr_count'].items()}
  assert s2['tau'] == 1e-4
  assert _rate(s2['asr']) and _count(s2['asr_count'], n2)
  assert s2['asr_count'] == sum(r['jailbroken'] for r in per)
  assert s2['asr'] == s2['asr_count'] / n2
  assert set(s2['asr_by_tokens']) == {'4', '8', '16'}
  assert s2['asr_by_tokens']['8']['asr_count'] == s2['asr_count']
  assert _rate(s2['union_asr'])  # stage 5: the union on the test prompts
  dormant = set().union(*(set(r['dormant']) for r in per))
  assert s2['n_dormant'] == len(dormant) <= len(s2['features'])
  assert _rate(s2['asr_without_dormant'])
  assert _count(s2['asr_without_dormant_count'], n2)
  assert _count(s2['full_active_set']['asr_count'], n2)
  assert all(r['full_active_size'] >= 1 for r in per)
  ctrl2 = s2['controls']
  assert len(ctrl2['random']) == 2 and len(ctrl2['obrien']) == 2
  assert _count(ctrl2['random_max_asr_count'], n2)
  assert _count(ctrl2['obrien_max_asr_count'], n2)
  sweep = s2['tau_sweep']
  assert set(sweep) == {'absolute', 'relative'}
  for rule in sweep.values():
    assert set(rule) == {'0.0001', '0.5'}
    for row in rule.values():
      assert len(row['sizes']) == n2
  assert sweep['absolute']['0.0001']['sizes'] == [r['size'] for r in per]
  ko2 = s3['per_prompt']['knock_on']
  assert _rate(ko2['mean_deactivated_fraction'])
  assert ko2['max_deactivated_fraction'] >= ko2['mean_deactivated_fraction']
  only = s3['per_prompt']['stage3_only']
  assert _count(only['asr_count'], n2)
  assert only['of_full_active_count'] <= min(only['asr_count'],
                                             only['full_active_count'])
  texts = json.load(open(os.path.join(workdir, 'completions.json')))
  own = texts['stage2_per_prompt']
  assert set(own['completions']) == {'4', '8', '16'}
  assert len(own['completions']['16']) == n2
  assert own['judge']['8'] == [r['judge'] for r in per]
  assert 'completions' not in s2
  assert _rate(s3['fm_accuracy']) and _rate(s3['linear_probe_accuracy'])
  fit = s3['classifier_prompts']  # count-matched, the run's harmless train
  n_fit = min(config.paper.classifier_prompts.n_per_class,
              summary['n_prompts']['harmful_train'])
  assert fit['n_harmful'] == fit['n_benign'] == n_fit
  assert s3['n_train'] + s3['n_test'] == 2 * n_fit
  assert len(s3['fm_history']) == config.paper.classifier.epochs
  assert s3['ks'] and set(s3['fm_asr_by_k']) == {str(k) for k in s3['ks']}
  for name in ('fm_asr_by_k', 'linear_probe_asr_by_k'):
    assert set(s3[name]) == set(s3[name + '_count'])
    assert all(_rate(v) for v in s3[name].values())
    assert all(_count(v, n) for v in s3[name + '_count'].values())
  assert _rate(s3['knock_on']['deactivated_fraction'])
  assert isinstance(s3['knock_on']['activation_drop'], float)
  c = summary['controls']
  assert _rate(c['random_asr']) and _rate(c['obrien_asr'])
  assert _count(c['random_asr_count'], n) and _count(c['obrien_asr_count'], n)
  # the sets the later stages use come from the rankings
  s3_json = json.load(open(os.path.join(workdir, 'interactions.json')))
  assert set(s3['fm_features']) <= set(s3_json['fm_ranking'])
  assert os.path.exists(os.path.join(workdir, 'report.html'))
  html = open(os.path.join(workdir, 'report.html')).read()
  assert 'Paper mode' in html


def test_woken_latents_are_located_by_token_class(paper):
  _, workdir, summary = paper
  w = summary['hydra']['woken']
  assert w['n_prompts'] == len(summary['stage2']['per_prompt'])
  assert w['n_system_tokens'] == 1  # this template has no system block
  assert [r['hook'] for r in w['per_sae']] == ['blocks.2.hook_resid_post']
  counts, shares = w['counts'], w['shares']
  firings = counts['system'] + counts['template'] + counts['instruction']
  assert 0 <= counts['bos'] <= counts['system']
  assert firings > 0  # ablating every active latent wakes some downstream
  assert abs(shares['system'] + shares['template'] + shares['instruction']
             - 1) < 1e-9
  assert shares['bos'] == counts['bos'] / firings
  assert w['n_woken'] >= w['n_distinct'] >= 1
  html = open(os.path.join(workdir, 'report.html')).read()
  assert 'id="hydra-woken"' in html and 'of the system firings' in html


def test_paper_run_resumes_to_the_same_summary(paper):
  config, workdir, summary = paper
  again = dissect.run(config, workdir, show_progress=False)
  for key in ('stage2', 'stage3', 'controls', 'sae_layers'):
    assert again[key] == summary[key]


def test_tau_sweep_keeps_the_set_of_the_largest_tau_that_keeps_any(
    tmp_path):
  config = tiny_setup.build(str(tmp_path))
  config.judge.nll_quantile = 0.0
  config.paper.greedy.update(block_size=2, seeds=(0, 1), sweep_tau=True,
                             taus=(0.0, 0.9), search='pooled')
  ctx = context_lib.build_context(config)
  features = list(range(4))
  out = paper_stages.run_greedy(ctx, features)
  # |change| >= 0 keeps every block; P('I') of the tiny model stays near 0,
  # so no block moves it by 0.9
  assert out['taus'] == {'0.0': features, '0.9': []}
  assert out['tau'] == 0.0 and out['features'] == features
  assert out['per_seed'] == {'0': features, '1': features}
  n = len(ctx.prompts['harmful_test'])
  assert out['asr_count'] == round(out['asr'] * n)
  # every seed kept the whole set, so each one's jailbreaks are the set's
  assert out['per_seed_asr_count'] == {'0': out['asr_count'],
                                       '1': out['asr_count']}
  assert out['n_dormant'] == len(out['dormant'])
  assert out['search'] == 'pooled'
  config.paper.greedy.search = 'pool'
  with pytest.raises(errors.ConfigError, match="search 'pool'"):
    paper_stages.run_greedy(ctx, features)


def test_classifier_benign_prompts_come_from_the_named_set(paper):
  config, _, _ = paper
  config = config.copy_and_resolve_references()
  config.paper.classifier_prompts.n_per_class = 5
  config.paper.classifier_prompts.benign_source = 'alpaca'
  ctx = context_lib.build_context(config)
  harm, benign, source = paper_stages.classifier_prompts(ctx)
  assert source == 'alpaca' and len(harm) == len(benign) == 5
  assert benign.instructions == datasets.load_prompts('alpaca', 'train')[:5]
  config.paper.classifier_prompts.benign_source = 'advbench'
  ctx = context_lib.build_context(config)
  with pytest.raises(errors.PromptError, match='benign_source') as e:
    paper_stages.classifier_prompts(ctx)
  assert '\n' not in str(e.value)


def test_classifier_prompts_go_past_the_run_train_prompts(paper):
  config, _, _ = paper
  config = config.copy_and_resolve_references()
  ctx = context_lib.build_context(config)
  n_train = len(ctx.prompts['harmful_train'])
  config.paper.classifier_prompts.n_per_class = n_train
  harm, benign, _ = paper_stages.classifier_prompts(
      context_lib.build_context(config))
  assert harm.instructions == ctx.prompts['harmful_train'].instructions
  config.paper.classifier_prompts.n_per_class = n_train + 3
  harm, benign, _ = paper_stages.classifier_prompts(
      context_lib.build_context(config))
  assert len(harm) == len(benign) == n_train + 3
  assert harm.instructions == ctx.pools['harmful_train'][:n_train + 3]
  assert benign.instructions == ctx.pools['harmless_train'][:n_train + 3]


@pytest.mark.parametrize('source', ['advbench', 'handwritten', 'nope'])
def test_a_bad_benign_source_fails_before_any_stage(tmp_path, source):
  config = tiny_setup.config_for(str(tmp_path))
  config.mode = 'paper'
  config.paper.classifier_prompts.benign_source = source
  workdir = tmp_path / 'run'
  with pytest.raises(errors.PromptError, match='benign_source') as e:
    dissect.run(config, str(workdir), show_progress=False)
  assert '\n' not in str(e.value)
  assert not workdir.exists()  # nothing half-written
