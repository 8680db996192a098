"""The main job: all stages of the refusal dissection, resumable in a workdir.

Each stage writes `DIR/<stage>.json` (its summary, written last and
atomically, so its presence marks the stage as finished, with its wall and
compile seconds, its number of compilations and peak host memory) and, when
it has
arrays, `DIR/<stage>.npz`. Within a stage, every finished unit of work (a
sweep, a greedy step, a block of masks, a generation condition) is kept in
`DIR/partial/<stage>/`, so a killed run resumes from the last one. A rerun with the same config reuses finished
stages; a different config in the same workdir is refused.

Stages: direction (1), greedy (2), interactions (3), hydra (4),
evaluation (5). With `config.mode = 'paper'`, stages 2 and 3 run the paper's
procedures (pipeline/paper/stages.py; configs/paper_mode.py). The run ends
with `DIR/summary.json` (which also has the
searched SAE's reconstruction error by token class, measured on the clean
training prompts) and `DIR/report.html`.
"""

import json
import os
import time

import ml_collections
import numpy as np
from absl import logging

from refusal_jax import errors
from refusal_jax.models import matmul_precision
from refusal_jax.pipeline import artifacts
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import direction as direction_stage
from refusal_jax.pipeline import evaluation as evaluation_stage
from refusal_jax.pipeline import greedy as greedy_stage
from refusal_jax.pipeline import hydra as hydra_stage
from refusal_jax.pipeline import interactions as interactions_stage
from refusal_jax.pipeline import judging
from refusal_jax.pipeline import latents
from refusal_jax.pipeline import stage_stats
from refusal_jax.pipeline.paper import stages as paper_stages

STAGES = ('direction', 'greedy', 'interactions', 'hydra', 'evaluation')

# Keys of the paper-mode stage summaries copied into summary.json's stage2 /
# stage3 (pipeline/paper/stages.py documents them); `controls` goes to the
# top level.
PAPER_STAGE2 = ('tau', 'per_seed', 'per_seed_asr', 'per_seed_asr_count',
                'taus', 'asr_count', 'n_dormant',
                'asr_without_dormant', 'asr_without_dormant_count',
                'search', 'tau_rule', 'per_prompt', 'union_size',
                'asr_by_tokens', 'judge_new_tokens', 'full_active_set',
                'controls', 'tau_sweep', 'search_stats')
PAPER_STAGE3 = ('fm_accuracy', 'linear_probe_accuracy', 'ks', 'fm_asr_by_k',
                'fm_asr_by_k_count', 'linear_probe_asr_by_k',
                'linear_probe_asr_by_k_count', 'knock_on', 'per_prompt',
                'classifier_prompts', 'n_train', 'n_test', 'fm_history',
                'linear_history')


class _Progress:
  """A tqdm bar counting evaluations, closed at the end of a stage."""

  def __init__(self, name: str, enabled: bool):
    self._bar = None
    if enabled:
      import tqdm  # pylint: disable=g-import-not-at-top
      self._bar = tqdm.tqdm(desc=name, unit='eval', leave=True)

  def __call__(self, n: int):
    if self._bar is not None:
      self._bar.update(n)

  def close(self):
    if self._bar is not None:
      self._bar.close()


def _stage(workdir: str, name: str, fn, show_progress: bool):
  """Runs `fn(progress) -> (summary, arrays)` unless its artifact exists."""
  json_path = os.path.join(workdir, f'{name}.json')
  npz_path = os.path.join(workdir, f'{name}.npz')
  if os.path.exists(json_path):
    logging.info('stage %s: reusing %s', name, json_path)
    arrays = dict(np.load(npz_path)) if os.path.exists(npz_path) else {}
    return artifacts.read_json(json_path), arrays
  logging.info('stage %s: running', name)
  start = time.time()
  bar = _Progress(name, show_progress)
  try:
    with stage_stats.StageMeter() as meter:
      summary, arrays = fn(bar)
  finally:
    bar.close()
  prov = artifacts.provenance()
  summary = dict(summary, seconds=round(time.time() - start, 2),
                 **meter.stats, provenance=prov)
  if arrays:
    artifacts.write_npz(npz_path, **arrays,
                        provenance=json.dumps(prov, sort_keys=True))
  artifacts.write_json(json_path, summary)
  logging.info('stage %s: done in %.1fs (%.1fs compiling, %d compilations, '
               'peak host memory %.2f GB)', name, summary['seconds'],
               summary['compile_seconds'], summary['n_compiles'],
               summary['peak_host_gb'])
  return summary, arrays


def summarize(config, ctx, s1, s2, s3, s4, s5, seconds: float,
              sae_error: dict | None = None) -> dict:
  """The summary.json dict (schema documented in README).

  ASR values (`asr_*`, `stage2.asr`, ...) are the graded judge's jailbreak
  share, or the model judge's when `judge.model_path` is set (then
  `model_judge` has its kind, path, ASR, agreement with the graded judge
  and counts per condition); `judge` has every graded class's share and
  count per condition and `asr_substring` the refusal-substring judge's ASR
  per condition.

  `sae_error` is `latents.error_by_token_class(ctx)`, stored as
  `sae_error_by_token_class`.
  """
  asr = s5['asr']
  surrogate = s5.get('surrogate') or {}
  agreement = lambda name: (surrogate.get(name) or {}).get('agreement')
  model_path, sae_path, _ = context_lib.resolve_paths(config)
  paper2 = {k: s2[k] for k in PAPER_STAGE2 if k in s2}
  if s2.get('search') == 'per_prompt':
    # the share of prompts their own set jailbreaks; stage 5's ASR of the
    # union on the harmful test prompts is `union_asr`
    paper2.update(asr=s2['asr'], union_asr=asr['stage2'])
  return dict(
      model=config.get('organism') and f'organism_{config.organism}' or
      model_path,
      model_path=model_path,
      sae=sae_path or context_lib.space_paths(config),
      sae_hook=ctx.sae.hook_name,
      sae_hooks=[s.hook_name for s in ctx.space.saes],
      sae_layers=[int(s.layer) for s in ctx.space.saes],
      mode=config.get('mode', 'current'),
      direction=dict(layer=s1['layer'], position=s1['position'],
                     asr_baseline=asr['baseline'],
                     asr_ablation=asr['direction_ablation'],
                     kl=s1['kl'], bypass_score=s1['bypass_score'],
                     induce_score=s1['induce_score']),
      stage1=dict(n_features=s1['n_features'], features=s1['features']),
      stage2=dict(dict(features=s2['features'], asr=asr['stage2'],
                       n_features=len(s2['features']), flips=s2['flips'],
                       surrogate_agreement=agreement('stage2')), **paper2),
      stage3=dict(fm_features=s3['fm_features'], fm_asr=asr['fm'],
                  linear_probe_features=s3['linear_probe_features'],
                  linear_probe_asr=asr['linear_probe'],
                  fm_surrogate_agreement=agreement('fm'),
                  linear_probe_surrogate_agreement=agreement('linear_probe'),
                  fm_val_loss=s3.get('fm_val_loss'),
                  linear_val_loss=s3.get('linear_val_loss'),
                  n_pool=s3['n_pool'], n_masks=s3.get('n_masks'),
                  **({k: s3[k] for k in PAPER_STAGE3 if k in s3}
                     if config.get('mode') == 'paper' else {})),
      **({'controls': s3['controls']} if 'controls' in s3 else {}),
      hydra=dict(n_redundant=s4['n_redundant'],
                 n_awakened=s4['n_awakened'],
                 token_positions=s4['token_positions'],
                 note=s4.get('note'),
                 **({'woken': s4['woken']} if 'woken' in s4 else {})),
      judge=s5.get('judge'),
      **({'model_judge': s5['model_judge']} if s5.get('model_judge') else {}),
      asr_substring=s5.get('asr_substring'),
      judge_thresholds=s5.get('judge_thresholds'),
      surrogate=surrogate,
      ce_loss=s5['ce_loss'],
      sae_error_by_token_class=sae_error,
      n_prompts={k: len(v) for k, v in ctx.prompts.items()},
      seconds=round(seconds, 1),
      provenance=artifacts.provenance())


def run(config: ml_collections.ConfigDict, workdir: str, *,
        show_progress: bool = True, mesh=None) -> dict:
  """Runs (or resumes) every stage and writes summary.json and report.html.

  Args:
    config: the experiment config (see configs/dissect_base.py).
    workdir: output directory.
    show_progress: draw progress bars.
    mesh: optional device mesh (parallel/mesh.py) for sharded parameters.

  Every jitted computation of the run traces under `config.matmul_precision`
  for `config.dtype` (models/matmul_precision.py: 'auto' is 'highest' for
  float32, the backend's default for bfloat16).

  Returns:
    The summary dict.

  Raises:
    errors.RefusalJaxError: on bad input, with a one-line message.
  """
  policy = matmul_precision.check(config.get('matmul_precision', 'auto'))
  dtype = config.dtype if config.dtype in ('float32', 'bfloat16') else None
  with matmul_precision.scope(policy, dtype):
    return _run(config, workdir, show_progress=show_progress, mesh=mesh)


def _run(config: ml_collections.ConfigDict, workdir: str, *,
         show_progress: bool, mesh) -> dict:
  """`run` under its matmul precision."""
  start = time.time()
  judging.check_config(config)
  mode = config.get('mode', 'current')
  if mode not in ('current', 'paper'):
    raise errors.ConfigError(f"mode {mode!r}: expected 'current' or 'paper'")
  if mode == 'paper':
    paper_stages.check_benign_source(
        config.paper.classifier_prompts.benign_source)
  artifacts.claim_workdir(workdir, config.to_dict(),
                          inputs=artifacts.inputs_digest(
                              context_lib.input_paths(config)))
  ctx = context_lib.build_context(config, mesh, workdir)
  stage = lambda name, fn: _stage(workdir, name, fn, show_progress)
  s1, a1 = stage('direction', lambda p: direction_stage.run(ctx, p))
  paper = mode == 'paper'
  greedy_run = paper_stages.run_greedy if paper else greedy_stage.run
  interactions_run = (paper_stages.run_interactions if paper
                      else interactions_stage.run)
  s2, _ = stage('greedy', lambda p: (greedy_run(ctx, s1['features'], p), {}))
  s3, _ = stage('interactions', lambda p: interactions_run(
      ctx, s2['features'], p, **({'stage2': s2} if paper else {})))
  s4, _ = stage('hydra', lambda p: ((
      paper_stages.run_hydra(ctx, s3['fm_features'], p, stage2=s2) if paper
      else hydra_stage.run(ctx, s3['fm_features'], p)), {}))
  sets = {'stage2': s2['features'], 'fm': s3['fm_features'],
          'linear_probe': s3['linear_probe_features']}

  def evaluate(progress):
    with judging.ModelJudge(ctx) as model_judge:
      summary, texts = evaluation_stage.run(ctx, a1['direction'], sets,
                                            progress, model_judge)
    if s2.get('completions'):  # stage 2's own-set generations, per prompt
      texts = dict(texts, stage2_per_prompt=s2['completions'])
    artifacts.write_json(os.path.join(workdir, 'completions.json'),
                         dict(texts, provenance=artifacts.provenance()))
    return summary, {}

  s5, _ = stage('evaluation', evaluate)
  sae_error = latents.error_by_token_class(ctx)
  summary = summarize(config, ctx, s1, s2, s3, s4, s5, time.time() - start,
                      sae_error)
  artifacts.write_json(os.path.join(workdir, 'summary.json'), summary)
  from refusal_jax.pipeline import report  # pylint: disable=g-import-not-at-top
  report.write_report(workdir, summary, ctx)
  return summary

