"""The whole pipeline on a tiny config: schema, resume, refusal to mix configs
or changed inputs."""

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import judge_tiny
import numerics
import tiny_setup
from refusal_jax import errors
from refusal_jax.pipeline import artifacts
from refusal_jax.pipeline import context as context_lib
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.pipeline import direction
from refusal_jax.pipeline import dissect
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import greedy
from refusal_jax.pipeline import judging
from refusal_jax.pipeline import latents

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp('tiny')
  config = tiny_setup.build(str(root))
  workdir = str(root / 'run')
  summary = dissect.run(config, workdir, show_progress=False)
  return config, workdir, summary


def test_summary_has_the_documented_schema(tiny):
  _, workdir, summary = tiny
  on_disk = json.load(open(os.path.join(workdir, 'summary.json')))
  assert on_disk == json.loads(json.dumps(summary))
  for key in ('model', 'sae', 'direction', 'stage1', 'stage2', 'stage3',
              'hydra', 'ce_loss', 'n_prompts', 'seconds'):
    assert key in summary
  assert set(summary['direction']) >= {'layer', 'position', 'asr_baseline',
                                       'asr_ablation'}
  assert set(summary['stage3']) >= {'fm_features', 'fm_asr',
                                    'linear_probe_features',
                                    'linear_probe_asr', 'fm_val_loss',
                                    'linear_val_loss'}
  assert set(summary['ce_loss']) == {'baseline', 'direction_ablation',
                                     'feature_ablation'}
  asrs = [summary['direction']['asr_baseline'],
          summary['direction']['asr_ablation'], summary['stage2']['asr'],
          summary['stage3']['fm_asr'], summary['stage3']['linear_probe_asr']]
  assert all(0.0 <= a <= 1.0 for a in asrs)
  assert summary['stage1']['n_features'] == 8
  assert 1 <= len(summary['stage2']['features']) <= 8
  assert set(summary['stage2']['features']) <= set(
      summary['stage1']['features'])
  assert summary['hydra']['n_awakened'] >= summary['hydra']['n_redundant']
  assert os.path.exists(os.path.join(workdir, 'report.html'))


def test_summary_has_the_graded_judge_and_the_surrogate_check(tiny):
  _, workdir, summary = tiny
  conditions = ('baseline', 'direction_ablation', 'stage2', 'fm',
                'linear_probe')
  n = summary['n_prompts']['harmful_test']
  assert set(summary['judge']) == set(conditions)
  for name in conditions:
    classes = summary['judge'][name]
    assert set(classes) == {'refusal', 'broken', 'off_topic', 'jailbreak'}
    assert sum(c['count'] for c in classes.values()) == n
    for c in classes.values():
      assert c['fraction'] == c['count'] / n
    assert 0.0 <= summary['asr_substring'][name] <= 1.0
  # ASR is the graded judge's jailbreak share.
  assert summary['direction']['asr_baseline'] == (
      summary['judge']['baseline']['jailbreak']['fraction'])
  assert summary['stage2']['asr'] == (
      summary['judge']['stage2']['jailbreak']['fraction'])
  assert summary['stage3']['fm_asr'] == (
      summary['judge']['fm']['jailbreak']['fraction'])
  # A jailbreak has no refusal substring, so the substring ASR bounds it.
  for name in conditions:
    assert summary['judge'][name]['jailbreak']['fraction'] <= (
        summary['asr_substring'][name])
  thr = summary['judge_thresholds']
  assert thr['nll_threshold'] is not None and np.isfinite(
      thr['nll_threshold'])
  completions = json.load(open(os.path.join(workdir, 'completions.json')))
  for name in conditions:
    got = completions['judge'][name]
    assert len(got) == n
    for c in ('refusal', 'broken', 'off_topic', 'jailbreak'):
      assert got.count(c) == summary['judge'][name][c]['count']
  # The surrogate check: flips of the search metric judged jailbreak.
  for name, key in (('stage2', ('stage2', 'surrogate_agreement')),
                    ('fm', ('stage3', 'fm_surrogate_agreement')),
                    ('linear_probe',
                     ('stage3', 'linear_probe_surrogate_agreement'))):
    s = summary['surrogate'][name]
    assert sum(s['flip_classes'].values()) == s['n_flips'] <= n
    assert s['n_flips_jailbreak'] == s['flip_classes']['jailbreak']
    agreement = summary[key[0]][key[1]]
    if s['n_flips']:
      assert agreement == s['n_flips_jailbreak'] / s['n_flips']
    else:
      assert agreement is None
  with open(os.path.join(workdir, 'report.html'), encoding='utf-8') as f:
    assert 'id="judge-table"' in f.read()


@pytest.fixture(scope='module')
def skipping(tiny):
  """The tiny run's context with sae_skip_special_tokens set."""
  config, _, _ = tiny
  config = config.copy_and_resolve_references()
  config.sae_skip_special_tokens = True
  return context_lib.build_context(config)


def test_summary_has_the_sae_error_by_token_class(tiny, skipping):
  _, workdir, summary = tiny
  err = summary['sae_error_by_token_class']
  assert list(err) == ['bos', 'template', 'instruction']
  n_prompts = (summary['n_prompts']['harmful_train'] +
               summary['n_prompts']['harmless_train'])
  assert err['bos']['n_tokens'] == err['bos']['n_special'] == n_prompts
  assert 0 < err['template']['n_special'] < err['template']['n_tokens']
  assert err['instruction']['n_special'] == 0
  for e in err.values():
    assert np.isfinite(e['relative_mse']) and e['relative_mse'] > 0
  # BOS is the same token at the same position in every prompt: the class's
  # relative MSE is that of one BOS residual.
  ctx = skipping
  ps = ctx.prompts['harmful_train'].subset([0])
  site = (ctx.sae.site, ctx.sae.layer)
  x = np.asarray(ctx.model.forward(ps.ids, ps.mask, capture=[site],
                                   logits_at='none').captured[site])[0, 0]
  x_hat = np.asarray(ctx.sae.reconstruct(x), np.float64)
  one = np.square(x - x_hat).sum() / np.square(x.astype(np.float64)).sum()
  numerics.assert_close(err['bos']['relative_mse'], one,
                        ulps=numerics.FORWARD_ULPS)
  with open(os.path.join(workdir, 'report.html'), encoding='utf-8') as f:
    text = f.read()
  assert 'id="sae-error-table"' in text
  sections = re.findall(r'<section id="([\w-]+)">', text)
  assert sections.index('hydra') < sections.index('sae-error') < (
      sections.index('run'))


def test_skipping_special_tokens_leaves_bos_unedited(tiny, skipping):
  config, _, _ = tiny
  ctx = skipping
  bos = ctx.model.config.bos_token_id
  assert bos in ctx.skip_ids and ctx.skip_ids == ctx.special_ids
  assert not config.sae_skip_special_tokens  # the default, as the paper
  ps = ctx.prompts['harmful_train'].subset(range(4))
  site = (ctx.sae.site, ctx.sae.layer)
  classes = ctx.token_classes(ps)
  special = np.isin(ps.ids, ctx.skip_ids) & (classes > 0)
  assert (special[classes == context_lib.BOS]).all()
  assert not special[classes == context_lib.INSTRUCTION].any()
  run = lambda iv: np.asarray(ctx.model.forward(
      ps.ids, ps.mask, capture=[site], logits_at='none',
      interventions=iv).captured[site])
  clean = run(None)
  clamp_all = np.ones(ctx.sae.d_sae, np.float32)
  edit = ctx.sae_edit(ctx.sae, clamp_all, value=1.0, mode='clamp')
  edited = run(edit)
  np.testing.assert_array_equal(edited[special], clean[special])
  plain = run(dataclasses.replace(edit, skip_ids=None))  # the default edit
  assert np.abs(plain[classes == context_lib.BOS] -
                clean[classes == context_lib.BOS]).min() > 1e-3
  others = (classes > 0) & ~special
  np.testing.assert_array_equal(edited[others], plain[others])
  # The pipeline's edits are built the same way ...
  ablation = evaluation.sae_ablation(ctx, [0, 1, 2])
  assert np.array_equal(np.asarray(ablation.skip_ids), ctx.skip_ids)
  # ... and its SAE statistics leave the special tokens out.
  f = latents.site_latents(ctx.model, ctx.sae, ps, 8, skip_ids=ctx.skip_ids)
  assert not f[special].any() and f[others].any()


def test_direction_scoring_can_leave_the_special_tokens_alone(tiny):
  """direction.skip_special_tokens: candidates are scored, and stage 5
  ablates the direction, everywhere but at the special tokens;
  direction.min_layer_fraction leaves the first layers unscored."""
  config, _, _ = tiny
  assert not config.direction.skip_special_tokens  # default: as Arditi et al.
  assert context_lib.build_context(config).direction_skip_array is None
  config = config.copy_and_resolve_references()
  config.direction.skip_special_tokens = True
  config.direction.min_layer_fraction = 0.34  # layer 0 of 3
  ctx = context_lib.build_context(config)
  assert np.array_equal(np.asarray(ctx.direction_skip_array),
                        ctx.special_ids)
  cands = np.random.RandomState(0).randn(
      1, ctx.model.config.num_layers, tiny_setup.D).astype(np.float32)
  scores = direction.score_candidates(ctx, cands)
  # Layer 0 is below the fraction, layer 2 in the pruned last 20%.
  for v in (scores['bypass'], scores['induce'], scores['kl']):
    assert np.isnan(v[[0, 2]]).all() and np.isfinite(v[1])
  hv = ctx.prompts['harmful_val']
  metric = lambda iv: np.asarray(ctx.metric(ctx.model.forward(
      hv.ids, hv.mask, logits_at='last', interventions=iv).logits[:, 0]))
  for c in (1,):
    r = cands[0, c]
    skipping = metric(DirectionalAblation(r, skip_ids=ctx.direction_skip_array))
    numerics.assert_close(scores['bypass'][c], skipping.mean(),
                          ulps=numerics.FORWARD_ULPS)
    assert abs(metric(DirectionalAblation(r)).mean() - skipping.mean()) > 1e-6
  config.direction.min_layer_fraction = 0.9
  with pytest.raises(errors.ConfigError, match='no layer to score'):
    direction.score_candidates(context_lib.build_context(config), cands)


def test_rerun_reuses_finished_stages(tiny):
  config, workdir, summary = tiny
  stamps = {f: os.path.getmtime(os.path.join(workdir, f))
            for f in ('direction.json', 'greedy.json', 'evaluation.json')}
  again = dissect.run(config, workdir, show_progress=False)
  for f, t in stamps.items():
    assert os.path.getmtime(os.path.join(workdir, f)) == t
  strip = lambda s: {k: v for k, v in s.items() if k != 'seconds'}
  assert strip(again) == strip(summary)


def test_a_different_config_is_refused(tiny):
  config, workdir, _ = tiny
  other = config.copy_and_resolve_references()
  other.features.top_k = 7
  with pytest.raises(errors.ConfigError, match='different config'):
    dissect.run(other, workdir, show_progress=False)


def test_changed_input_files_are_refused(tiny):
  config, workdir, summary = tiny
  extra = os.path.join(config.sae_path, 'extra.txt')
  with open(extra, 'w') as f:
    f.write('x')
  try:
    with pytest.raises(errors.ConfigError, match='other contents'):
      dissect.run(config, workdir, show_progress=False)
  finally:
    os.remove(extra)
  again = dissect.run(config, workdir, show_progress=False)
  assert again['stage2'] == summary['stage2']


def test_inputs_digest_reads_contents_not_sizes_or_times(tmp_path):
  path = tmp_path / 'model' / 'weights.bin'
  path.parent.mkdir()
  path.write_bytes(b'\x00' * 100)
  before = artifacts.inputs_digest([str(path.parent), 'hub/name'])
  file_before = artifacts.inputs_digest([str(path)])
  stat = os.stat(path)
  path.write_bytes(b'\x00' * 99 + b'\x01')
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  assert artifacts.inputs_digest([str(path.parent), 'hub/name']) != before
  assert artifacts.inputs_digest([str(path)]) != file_before
  path.write_bytes(b'\x00' * 100)
  assert artifacts.inputs_digest([str(path.parent), 'hub/name']) == before
  assert artifacts.inputs_digest([str(path.parent), 'hub/other']) != before


def test_binary_reports_bad_input_in_one_line(tmp_path):
  cmd = [sys.executable, '-m', 'experiments.dissect',
         '--config=configs/dissect_organism_llama.py',
         '--config.organism=', f'--config.model_path={tmp_path}/missing',
         f'--config.sae_path={tmp_path}/sae', f'--workdir={tmp_path}/w']
  res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       timeout=120)
  assert res.returncode == 1
  err = [l for l in res.stderr.splitlines() if l.startswith('error:')]
  assert len(err) == 1 and 'does not exist' in err[0]
  assert 'Traceback' not in res.stderr


def _kill_when(cmd, workdir, ready, timeout=300):
  """Starts cmd, SIGKILLs it once ready(workdir) holds; True if it was killed."""
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  start = time.time()
  while proc.poll() is None and time.time() - start < timeout:
    if ready(workdir):
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return True
    time.sleep(0.05)
  proc.kill()
  proc.wait()
  return False


def _no_half_written_files(workdir):
  for dirpath, _, files in os.walk(workdir):
    for f in files:
      assert not f.startswith('.tmp-'), os.path.join(dirpath, f)
      if f.endswith('.json'):
        json.load(open(os.path.join(dirpath, f)))
      if f.endswith('.npz'):
        np.load(os.path.join(dirpath, f))


# Slow (two binary runs killed mid-stage, ~35 s); test_rerun_reuses_finished_
# stages keeps the resume path in `make test`.
@pytest.mark.slow
def test_sigkilled_runs_resume_to_the_same_summary(tiny, tmp_path):
  config, _, reference = tiny
  root = os.path.dirname(config.model_path)
  workdir = str(tmp_path / 'killed')
  cmd = [sys.executable, '-m', 'experiments.dissect',
         f'--config=tests/pipeline/tiny_config.py:{root}',
         f'--workdir={workdir}']
  exists = lambda *p: (lambda w: os.path.exists(os.path.join(w, *p)))
  points = [exists('partial', 'direction', 'bypass.npz'),
            exists('partial', 'greedy', 'step0002.npz'),
            exists('partial', 'evaluation', 'gen_direction_ablation.npz')]
  killed = 0
  for ready in points:
    killed += _kill_when(cmd, workdir, ready)
    _no_half_written_files(workdir)
  assert killed >= 2
  summary = dissect.run(config, workdir, show_progress=False)
  _no_half_written_files(workdir)
  strip = lambda s: {k: v for k, v in s.items() if k != 'seconds'}
  assert strip(summary) == strip(reference)


def _without_seconds(path):
  text = json.load(open(path))
  text.pop('seconds', None)
  return json.dumps(text, sort_keys=True)


def test_same_config_gives_a_bit_identical_summary(tiny, tmp_path):
  config, workdir, _ = tiny
  again = str(tmp_path / 'again')
  dissect.run(config, again, show_progress=False)
  assert (_without_seconds(os.path.join(again, 'summary.json')) ==
          _without_seconds(os.path.join(workdir, 'summary.json')))


def test_every_artifact_records_its_provenance(tiny):
  _, workdir, _ = tiny
  names = [f for f in os.listdir(workdir) if f.endswith('.json')]
  assert 'summary.json' in names and len(names) >= 6
  for name in names:
    record = json.load(open(os.path.join(workdir, name)))
    prov = record.get('provenance') if isinstance(record, dict) else None
    assert prov, name
    for key in ('package_version', 'git_commit', 'jax_version',
                'device_kind'):
      assert key in prov, (name, key)
  for name in (f for f in os.listdir(workdir) if f.endswith('.npz')):
    with np.load(os.path.join(workdir, name)) as arrays:
      assert 'provenance' in arrays.files, name


# A Python start-up hook that hides torch from transformers, as on a runtime
# install (the test environment has torch for the baselines).
_HIDE_TORCH = """
import importlib.util
_find_spec = importlib.util.find_spec
def _without_torch(name, package=None):
  if name == 'torch' or name.startswith('torch.'):
    return None
  return _find_spec(name, package)
importlib.util.find_spec = _without_torch
"""
_ABSL_LINE = re.compile(r'^[IWEF]\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\] ')
_PROGRESS = re.compile(r'^\w+: +(\d+%\|.*|\d+eval .*)$')


def _own_sources():
  names = set()
  for folder in ('refusal_jax', 'experiments'):
    for _, _, files in os.walk(os.path.join(REPO, folder)):
      names.update(f for f in files if f.endswith('.py'))
  return names


# Slow (a whole binary run in a subprocess, ~30 s); test_binary_reports_bad_
# input_in_one_line keeps the binary's error path in `make test`.
@pytest.mark.slow
def test_binary_stderr_has_only_our_lines_and_progress(tiny, tmp_path):
  """No foreign start-up lines (JAX's TPU probe, transformers' torch advice);
  stage lines, progress bars and warnings stay; readable artifact modes."""
  config, _, _ = tiny
  root = os.path.dirname(config.model_path)
  (tmp_path / 'hook').mkdir()
  (tmp_path / 'hook' / 'sitecustomize.py').write_text(_HIDE_TORCH)
  workdir = str(tmp_path / 'run')
  cmd = [sys.executable, '-m', 'experiments.dissect',
         f'--config=tests/pipeline/tiny_config.py:{root}',
         f'--workdir={workdir}']
  env = dict(os.environ, PYTHONPATH=str(tmp_path / 'hook'))
  env.pop('TRANSFORMERS_NO_ADVISORY_WARNINGS', None)
  res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       timeout=600, env=env)
  assert res.returncode == 0, res.stderr[-3000:]
  own = _own_sources()
  lines = [l.strip() for l in re.split(r'[\r\n]', res.stderr) if l.strip()]
  stages = 0
  for line in lines:
    absl = _ABSL_LINE.match(line)
    if absl:
      assert absl.group(1) in own, f'foreign log line: {line}'
      stages += 'stage' in line
    else:
      assert _PROGRESS.match(line), f'foreign stderr line: {line}'
  assert stages >= 10  # "running" and "done" for each of the five stages
  # Outputs are readable by others: the modes a plain open() would give.
  mask = os.umask(0o022)
  os.umask(mask)
  for dirpath, dirs, files in os.walk(workdir):
    for d in dirs:
      assert os.stat(os.path.join(dirpath, d)).st_mode & 0o777 == (
          0o777 & ~mask), d
    for f in files:
      assert os.stat(os.path.join(dirpath, f)).st_mode & 0o777 == (
          0o666 & ~mask), f


@pytest.fixture(scope='module')
def judges(tiny):
  config, _, _ = tiny
  return judge_tiny.build_all(os.path.join(os.path.dirname(config.model_path),
                                           'judges'))


def _resumed(tiny, tmp_path, edit):
  """A context on a copy of the tiny run's workdir (its finished units of
  work reused) with the config changed by edit(config)."""
  config, workdir, _ = tiny
  copy = str(tmp_path / 'copy')
  shutil.copytree(os.path.join(workdir, 'partial'),
                  os.path.join(copy, 'partial'))
  config = config.copy_and_resolve_references()
  edit(config)
  return context_lib.build_context(config, workdir=copy), copy


def test_a_model_judge_gives_the_asr_and_its_agreement(tiny, judges, tmp_path):
  """The rigged HarmBench-layout judge says Yes to everything: ASR 1 in
  every condition, agreement = the graded judge's jailbreak share."""
  config, workdir, summary = tiny
  assert 'model_judge' not in summary  # not configured by default

  def edit(c):
    c.judge.model_path = judges['harmbench_yes']
    c.judge.model_kind = 'harmbench'

  ctx, copy = _resumed(tiny, tmp_path, edit)
  s = {name: artifacts.read_json(os.path.join(workdir, f'{name}.json'))
       for name in dissect.STAGES[:4]}
  sets = {'stage2': s['greedy']['features'],
          'fm': s['interactions']['fm_features'],
          'linear_probe': s['interactions']['linear_probe_features']}
  direction = np.load(os.path.join(workdir, 'direction.npz'))['direction']
  with judging.ModelJudge(ctx) as judge:
    s5, texts = evaluation.run(ctx, direction, sets, model_judge=judge)
  n = summary['n_prompts']['harmful_test']
  mj = s5['model_judge']
  assert (mj['kind'], mj['path']) == ('harmbench', judges['harmbench_yes'])
  assert set(mj['asr']) == set(summary['judge'])
  for name, classes in summary['judge'].items():
    assert s5['asr'][name] == mj['asr'][name] == 1.0
    assert s5['judge'][name] == classes  # the graded judge's, unchanged
    jail = classes['jailbreak']['count']
    assert mj['agreement'][name] == jail / n
    assert mj['counts'][name] == dict(
        n=n, jailbreak=n, no_jailbreak=0, unparsed=0, both_jailbreak=jail,
        agree=jail, asr=1.0, agreement=jail / n)
    assert texts['model_judge'][name] == [True] * n
  full = dissect.summarize(ctx.config, ctx, s['direction'], s['greedy'],
                           s['interactions'], s['hydra'], s5, 0.0)
  assert full['model_judge'] == mj
  assert full['direction']['asr_baseline'] == 1.0
  for name in s:
    shutil.copy(os.path.join(workdir, f'{name}.json'), copy)
  artifacts.write_json(os.path.join(copy, 'evaluation.json'), s5)
  artifacts.write_json(os.path.join(copy, 'completions.json'), texts)
  from refusal_jax.pipeline import report  # pylint: disable=g-import-not-at-top
  text = report.render(copy, full, ctx)
  assert 'id="model-judge-table"' in text and 'HarmBench classifier' in text


def _greedy(tiny, tmp_path, edit):
  ctx, _ = _resumed(tiny, tmp_path, edit)
  return greedy.run(ctx, tiny[2]['stage1']['features'])


def test_greedy_judge_check_accepts_a_flip_the_judge_confirms(
    tiny, judges, tmp_path):
  config, workdir, _ = tiny
  plain = artifacts.read_json(os.path.join(workdir, 'greedy.json'))
  assert plain['flips'] and 'judge_checks' not in plain  # off by default

  def edit(c):
    c.greedy.judge_check = True
    c.judge.model_path = judges['llama_guard_yes']
    c.judge.model_kind = 'llama_guard'

  got = _greedy(tiny, tmp_path, edit)
  for key in ('features', 'flips', 'mean_metric', 'flip_fraction',
              'trajectory', 'threshold'):
    assert got[key] == plain[key], key
  [check] = got['judge_checks']
  assert check['accepted'] and got['judge_accepted']
  assert check['judge_asr'] == 1.0 and check['features'] == plain['features']
  assert check['model_judge']['jailbreak'] == plain['n_prompts']
  assert sum(c['count'] for c in check['graded_judge'].values()) == (
      plain['n_prompts'])


def test_greedy_judge_check_rejects_a_flip_the_judge_does_not_confirm(
    tiny, tmp_path):
  """No completion is on topic (min_topic_overlap > 1), so the graded judge
  finds no jailbreak: backward steps back through every set to the full one."""
  config, workdir, _ = tiny
  plain = artifacts.read_json(os.path.join(workdir, 'greedy.json'))

  def edit(c):
    c.greedy.judge_check = True
    c.judge.min_topic_overlap = 1.01

  got = _greedy(tiny, tmp_path, edit)
  traj = plain['trajectory']
  assert len(traj) > 1  # the surrogate did remove features
  assert got['features'] == tiny[2]['stage1']['features']
  assert [c['size'] for c in got['judge_checks']] == [
      t['size'] for t in reversed(traj)]
  assert not any(c['accepted'] for c in got['judge_checks'])
  assert not got['judge_accepted'] and got['flips']
  assert all(c['judge_asr'] == 0.0 and c['model_judge'] is None
             for c in got['judge_checks'])
  assert got['mean_metric'] == traj[0]['mean_metric']
  assert got['trajectory'] == traj


def test_forward_judge_check_keeps_adding_when_the_judge_disagrees(tiny):
  """Forward with a judge that finds no jailbreak: every set the surrogate
  calls a flip is checked and rejected, up to max_size."""
  config, _, summary = tiny
  config = config.copy_and_resolve_references()
  config.greedy.order, config.greedy.max_size = 'forward', 4
  ctx = context_lib.build_context(config)
  features = summary['stage1']['features']
  plain = greedy.run(ctx, features)
  assert plain['flips'] and 'judge_checks' not in plain
  config.greedy.judge_check = True
  config.judge.min_topic_overlap = 1.01
  got = greedy.run(ctx, features)
  assert len(got['features']) == 4 > len(plain['features'])
  assert got['trajectory'][:len(plain['trajectory'])] == plain['trajectory']
  flipping = [t['size'] for t in got['trajectory']
              if t['flip_fraction'] >= config.greedy.min_flip_fraction]
  assert [c['size'] for c in got['judge_checks']] == flipping
  assert flipping[0] == len(plain['features'])
  assert not any(c['accepted'] for c in got['judge_checks'])
  assert not got['judge_accepted']


def test_equal_feature_sets_are_generated_and_judged_once(tiny, tmp_path,
                                                          monkeypatch):
  ctx, _ = _resumed(tiny, tmp_path, lambda c: None)
  workdir = tiny[1]
  stage2 = artifacts.read_json(os.path.join(workdir, 'greedy.json'))['features']
  fm = artifacts.read_json(
      os.path.join(workdir, 'interactions.json'))['fm_features']
  sets = {'stage2': stage2, 'fm': fm, 'linear_probe': stage2[::-1]}
  calls, real = [], evaluation.judge_set
  monkeypatch.setattr(evaluation, 'judge_set',
                      lambda *a, **k: calls.append(a[4]) or real(*a, **k))
  direction = np.load(os.path.join(workdir, 'direction.npz'))['direction']
  s5, texts = evaluation.run(ctx, direction, sets)
  want = ['baseline', 'direction_ablation', 'stage2']
  if sorted(fm) != sorted(stage2):
    want.append('fm')
  assert calls == want
  assert s5['asr']['linear_probe'] == s5['asr']['stage2']
  assert s5['judge']['linear_probe'] == s5['judge']['stage2']
  assert (texts['completions']['linear_probe'] ==
          texts['completions']['stage2'])
