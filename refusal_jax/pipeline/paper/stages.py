"""Stages 2 and 3 as the paper ran them (config `mode = 'paper'`).

Wires the procedures of this package to the run's model, feature space and
judge (configs/paper_mode.py documents the fields):

* `run_greedy` (stage 2): with `paper.greedy.search = 'per_prompt'` (the
  default), one search per greedy prompt, batched, each judged under its own
  set (per_prompt_stage.py documents it); with 'pooled',
  `block_greedy.intersect_over_seeds` (or
  `tau_sweep` with `paper.greedy.sweep_tau`) over the stage-1 features, on
  P('I') of the greedy prompts (`greedy.n_prompts` harmful training
  prompts) with the candidates edited as `greedy.mode` / `greedy.value`; the
  judge's jailbreaks of the kept set on the harmful test prompts; the
  dormant-but-critical features (silent on the greedy prompts) and the
  jailbreak without them.
* `run_interactions` (stage 3): the pool (minimal set plus the most active
  other features, `interactions.build_pool`); its per-prompt activations on
  the harmful and harmless training prompts; `rankings.rank_pool`; the
  judge's jailbreaks with the top K of the FM's and the probe's rankings
  ablated for K on `top_k.k_grid`; the knock-on of the FM's set on the
  stage-2 features; the controls; after a per-prompt stage 2, its
  per-prompt knock-on and the stage-3-only condition
  (`per_prompt_stage.stage3`).

P('I') is the metric `refusal_prob` on the configured refusal tokens,
whatever `metric.name` is (the paper's threshold tau is on P('I')).
Jailbreaks are the judge's per-prompt verdicts (`evaluation.judge_set`: the
model judge when `judge.model_path` is set, else the graded judge's
`jailbreak` class). Every judged set is a unit of work of the stage's memo,
keyed by a digest of its features.
"""

import hashlib

from absl import logging

import numpy as np

from refusal_jax import errors
from refusal_jax.data import datasets
from refusal_jax.data import graded_judge
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import hydra
from refusal_jax.pipeline import interactions
from refusal_jax.pipeline import judging
from refusal_jax.pipeline import latents
from refusal_jax.pipeline.context import Context, PromptSet
from refusal_jax.pipeline.paper import activity
from refusal_jax.pipeline.paper import block_greedy
from refusal_jax.pipeline.paper import controls
from refusal_jax.pipeline.paper import counts
from refusal_jax.pipeline.paper import dormant
from refusal_jax.pipeline.paper import knock_on
from refusal_jax.pipeline.paper import per_prompt_stage
from refusal_jax.pipeline.paper import rankings
from refusal_jax.pipeline.paper import top_k
from refusal_jax.pipeline.paper import woken
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import Metric

# P('I') below this counts as a flip (the metric's natural threshold).
_PROB_THRESHOLD = 0.5


def p_refusal(ctx: Context) -> Metric:
  """P of the refusal tokens at the last position (the paper's P('I'))."""
  return Metric('refusal_prob', ctx.metric.refusal_ids)


def _digest(data: bytes) -> str:
  return hashlib.sha1(data).hexdigest()[:16]


def _greedy_prompts(ctx: Context) -> PromptSet:
  ps = ctx.prompts['harmful_train']
  return ps.subset(range(min(ctx.config.greedy.n_prompts, len(ps))))


class Jailbreaker:
  """feature list -> [P] bool: jailbroken harmful test prompts, judged.

  As stage 5 judges them (`evaluation.eval_sets`, `eval_rows` and
  `space_ablation`): every set shares one compiled generation.

  Use it in a `with` block: the model judge is released at its end.
  """

  def __init__(self, ctx: Context, stage: str):
    self.ctx = ctx
    self.ps = evaluation.eval_sets(ctx)[0]
    self.rows = evaluation.eval_rows(ctx)
    self.memo = ctx.memo(stage)
    self.thresholds = evaluation.graded_thresholds(ctx)
    self.model_judge = judging.ModelJudge(ctx)

  def __enter__(self) -> 'Jailbreaker':
    return self

  def __exit__(self, *exc) -> None:
    self.model_judge.close()

  def __call__(self, features) -> np.ndarray:
    feats = sorted(int(f) for f in features)
    key = 'jb_' + _digest(','.join(map(str, feats)).encode())
    res = evaluation.judge_set(
        self.ctx, self.ps, evaluation.space_ablation(self.ctx, feats),
        self.memo, key, self.thresholds, self.model_judge, rows=self.rows)
    if res['verdicts'] is not None:
      return np.asarray(res['verdicts'], bool)
    return np.asarray([c == graded_judge.JAILBREAK for c in res['classes']])


def run_greedy(ctx: Context, features: list[int], progress=None) -> dict:
  """Stage 2, paper mode. Returns the JSON summary.

  `paper.greedy.search`: 'per_prompt' runs `per_prompt_stage.run` (its keys
  are documented there); 'pooled' one search on the mean P('I') of the greedy
  prompts, with these keys: `features` (the kept set: the intersection over
  seeds; with a tau sweep, the set of the largest tau that keeps any feature,
  else of the smallest tau), `tau`, `per_seed` {seed: kept features}, `taus`
  (sweep only: {tau: kept features}), `asr` / `asr_count` (judge, harmful test
  prompts, kept set ablated), `flips` / `flip_fraction` / `mean_metric`
  (P('I') of the greedy prompts with the kept set ablated, flip below 0.5),
  `start_metric`, `per_seed_metric` {seed: P('I') with all candidates ablated
  (`start`), with its kept set (`final`), and each block's `changes`},
  `per_seed_asr` / `per_seed_asr_count` {seed: the judge's jailbreaks with
  that seed's kept set alone ablated}, `n_dormant`, `dormant`,
  `asr_without_dormant` / `asr_without_dormant_count`, `dormant_effect`
  (`dormant.dormant_effect`), `n_prompts`, `order` ('paper_block'),
  `search` ('pooled').
  """
  cfg, g = ctx.config.paper, ctx.config.greedy
  pg = cfg.greedy
  ps = _greedy_prompts(ctx)
  metric = p_refusal(ctx)
  search = pg.get('search', 'pooled')
  if search == 'per_prompt':
    return per_prompt_stage.run(ctx, features, ps, metric, progress)
  if search != 'pooled':
    raise errors.ConfigError(f"paper.greedy.search {search!r}: expected "
                             "'per_prompt' or 'pooled'")
  memo = ctx.memo('greedy')

  def score(masks):
    masks = np.asarray(masks, np.float32)
    return memo(f'paper_{_digest(masks.tobytes())}', lambda: dict(
        v=engine.feature_sweep(
            ctx.model.params, ctx.model.config, ctx.space, ps.ids, ps.mask,
            np.asarray(features), masks, metric=metric, mode=g.mode,
            value=g.value, chunks=ctx.chunk_sizes, op='greedy',
            skip_ids=ctx.skip_array, progress=progress,
            mesh=ctx.mesh)))['v']

  kw = dict(block_size=pg.block_size, seeds=tuple(pg.seeds),
            absolute=pg.absolute, max_masks=pg.max_masks)
  taus = {}
  if pg.sweep_tau:
    swept = block_greedy.tau_sweep(features, score, taus=tuple(pg.taus), **kw)
    taus = {str(t): [int(f) for f in r.kept] for t, r in swept.items()}
    nonempty = [t for t, r in swept.items() if r.kept]
    tau = max(nonempty) if nonempty else min(swept)
    result = swept[tau]
  else:
    tau = float(pg.tau)
    result = block_greedy.intersect_over_seeds(features, score, tau=tau, **kw)
  kept = [int(f) for f in result.kept]
  mask = np.isin(np.asarray(features), kept).astype(np.float32)
  vals = score(mask[None])[0]
  flip_fraction = float((vals < _PROB_THRESHOLD).mean())
  source = latents.feature_latents(ctx.model, ctx.space, ps, kept,
                                   ctx.chunks.prompts, skip_ids=ctx.skip_ids)
  with Jailbreaker(ctx, 'greedy') as jb:
    effect = dormant.dormant_effect(kept, source, jb, eps=cfg.active_eps)
    seed_jb = {str(s): jb(r.kept) if len(r.kept) else None
               for s, r in result.per_seed.items()}
  first = next(iter(result.per_seed.values()))
  out = dict(
      features=kept, tau=tau,
      per_seed={str(s): [int(f) for f in r.kept]
                for s, r in result.per_seed.items()},
      per_seed_metric={str(s): dict(
          start=float(r.start_metric), final=float(r.final_metric),
          changes=[float(t['change']) for t in r.trajectory])
                       for s, r in result.per_seed.items()},
      per_seed_asr={s: 0.0 if v is None else float(v.mean())
                    for s, v in seed_jb.items()},
      per_seed_asr_count={s: 0 if v is None else int(v.sum())
                          for s, v in seed_jb.items()},
      asr=effect['full']['asr'], asr_count=effect['full']['asr_count'],
      flips=bool(flip_fraction >= g.min_flip_fraction),
      flip_fraction=flip_fraction, mean_metric=float(vals.mean()),
      start_metric=float(first.start_metric), threshold=_PROB_THRESHOLD,
      n_dormant=effect['n_dormant'], dormant=[int(f) for f in
                                              effect['dormant']],
      asr_without_dormant=effect['without_dormant']['asr'],
      asr_without_dormant_count=effect['without_dormant']['asr_count'],
      dormant_effect=effect, n_prompts=len(ps), order='paper_block',
      search='pooled', trajectory=[])
  if taus:
    out['taus'] = taus
  return out


def check_benign_source(source: str) -> None:
  """Raises errors.PromptError unless `source` ('' = the run's harmless
  prompts) is a built-in harmless set with a train split; run at start-up
  (`dissect.run`), so that a bad name fails before any stage."""
  if source and (source not in datasets.NAMES or datasets.is_harmful(source)
                 or source in datasets.TEST_ONLY):
    raise errors.PromptError(
        f'paper.classifier_prompts.benign_source {source!r} is not a '
        'harmless set with a train split')


def classifier_prompts(ctx: Context) -> tuple[PromptSet, PromptSet, str]:
  """(harmful, benign, benign source) prompts the stage-3 classifiers fit.

  `paper.classifier_prompts.n_per_class` harmful train prompts and as many
  benign ones. Up to data.n_train a class they are the run's own train
  prompts (stage 1's, refusal-filtered); beyond that, the first
  n_per_class of each train split in the run's seeded order (`ctx.pools`,
  which stage 1's prompts were drawn from, unfiltered). Benign prompts can
  instead be the train split of the built-in set `benign_source` (e.g.
  'alpaca').

  Raises:
    errors.PromptError: `benign_source` is not a harmless built-in set.
  """
  cp = ctx.config.paper.classifier_prompts

  def take(key: str) -> PromptSet:
    ps = ctx.prompts[key]
    if cp.n_per_class <= len(ps) or not ctx.pools.get(key):
      return ps.subset(range(min(cp.n_per_class, len(ps))))
    return ctx.encode(ctx.pools[key][:cp.n_per_class])

  harm = take('harmful_train')
  source = cp.benign_source
  if source:
    check_benign_source(source)
    benign = ctx.encode(datasets.load_prompts(source, 'train')[:len(harm)])
  else:
    benign = take('harmless_train')
    source = ctx.config.data.get('harmless_source') or 'harmless_train'
  n = min(len(harm), len(benign))
  if n < cp.n_per_class:
    logging.warning(
        'paper.classifier_prompts.n_per_class %d: %d a class used (the '
        'train splits hold no more)', cp.n_per_class, n)
  return harm.subset(range(n)), benign.subset(range(n)), source


def classifier_inputs(ctx: Context, pool: list[int]
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
  """([N, I] per-prompt activations of the pool, [N] labels 1 = harmful,
  {'n_harmful', 'n_benign', 'benign_source'}) for the stage-3 classifiers."""
  harm, benign, source = classifier_prompts(ctx)
  reduce = ctx.config.paper.classifier.token_reduce
  x = [activity.per_prompt(
      latents.feature_latents(ctx.model, ctx.space, ps, pool,
                              ctx.chunks.prompts, skip_ids=ctx.skip_ids),
      reduce, ps.mask) for ps in (harm, benign)]
  labels = np.concatenate([np.ones(len(harm)), np.zeros(len(benign))])
  return (np.concatenate(x), labels,
          dict(n_harmful=len(harm), n_benign=len(benign),
               benign_source=source))


def _by_k(rows: list[dict]) -> tuple[dict, dict]:
  return ({str(r['k']): r['asr'] for r in rows},
          {str(r['k']): r['asr_count'] for r in rows})


def _nothing_active(stats: dict) -> dict:
  """Stage 3's summary when no feature fires on the pool's prompts (and
  the minimal set is empty): nothing to classify, rank or ablate."""
  ko = knock_on.knock_on(np.zeros((1, 0)), np.zeros((1, 0)))
  return dict(
      pool=[], n_pool=0, n_active=stats['n_active'], set_size=0,
      fm_features=[], linear_probe_features=[], fm_accuracy=None,
      fm_train_accuracy=None, linear_probe_accuracy=None, fm_ranking=[],
      linear_probe_ranking=[], n_train=0, n_test=0, ks=[], fm_asr_by_k={},
      fm_asr_by_k_count={}, linear_probe_asr_by_k={},
      linear_probe_asr_by_k_count={},
      classifier_prompts=dict(n_harmful=0, n_benign=0, benign_source=None),
      knock_on=dict(ko, activation_drop=ko['mean_relative_drop']),
      controls=dict(random_asr=None, random_asr_count=None, obrien_asr=None,
                    obrien_asr_count=None, random=[], obrien=[]),
      fm_history=[], linear_history=[])


def run_interactions(ctx: Context, minimal: list[int], progress=None,
                     stage2: dict | None = None) -> tuple[dict, dict]:
  """Stage 3, paper mode. Returns (JSON summary, arrays to save).

  `stage2` is stage 2's summary; after a per-prompt search the summary also
  has `per_prompt` (`per_prompt_stage.stage3`: its knock-on and the
  stage-3-only condition).

  The FM's and the probe's sets for the later stages (hydra, evaluation)
  are the top `fm.set_size` (0: the minimal set's size, at least 1) of each
  ranking. Knock-on: that FM set ablated, on the stage-2 features' peaks on
  the pool's harmful prompts, the stage-2 features it ablates itself left
  out; `activation_drop` is the mean relative drop of the active ones.
  Controls draw from the pool, sized as the minimal set (at least 1), the
  O'Brien-style sets counted on the pool's harmful prompts; `controls` has
  `random_asr` (mean over draws), `random_asr_count` (the most prompts any
  draw jailbreaks), `obrien_asr` / `obrien_asr_count` (best k). When no
  feature fires on the pool's prompts and the minimal set is empty, the
  pool is empty and so is everything ranked from it (accuracies None).
  """
  del progress
  cfg = ctx.config.paper
  pool, stats = interactions.build_pool(ctx, minimal)
  if not pool:
    return _nothing_active(stats), dict(pool=np.zeros(0, np.int64))
  n = ctx.config.fm.n_prompts
  harm = ctx.prompts['harmful_train']
  harm = harm.subset(range(min(n, len(harm))))
  acts = {'harmful': latents.feature_latents(
      ctx.model, ctx.space, harm, pool, ctx.chunks.prompts,
      skip_ids=ctx.skip_ids)}
  x, labels, fit_sets = classifier_inputs(ctx, pool)
  ranked, arrays = rankings.rank_pool(x, labels, **cfg.classifier.to_dict())
  ks = top_k.k_grid(len(pool), **cfg.top_k.to_dict())
  size = max(1, ctx.config.fm.set_size or len(minimal))
  fm_set = [pool[i] for i in ranked['fm_ranking'][:size]]
  lin_set = [pool[i] for i in ranked['probe_ranking'][:size]]
  with Jailbreaker(ctx, 'interactions') as jb:
    by_k = top_k.asr_by_k({'fm': ranked['fm_ranking'],
                           'linear_probe': ranked['probe_ranking']},
                          ks, pool, jb)
    ctrl = controls.control_asr(pool, max(1, len(minimal)), acts['harmful'],
                                jb, eps=cfg.active_eps,
                                **cfg.controls.to_dict())
  fm_asr, fm_count = _by_k(by_k['fm'])
  lin_asr, lin_count = _by_k(by_k['linear_probe'])
  if minimal:
    clean = latents.feature_latents(ctx.model, ctx.space, harm, minimal,
                                    ctx.chunks.prompts, skip_ids=ctx.skip_ids)
    ablated = latents.feature_latents(
        ctx.model, ctx.space, harm, minimal, ctx.chunks.prompts,
        interventions=evaluation.sae_ablation(ctx, fm_set),
        skip_ids=ctx.skip_ids)
    ko = knock_on.knock_on(
        clean, ablated, eps=cfg.active_eps,
        exclude=[i for i, f in enumerate(minimal) if f in set(fm_set)])
  else:
    ko = knock_on.knock_on(np.zeros((1, 0)), np.zeros((1, 0)))
  summary = dict(
      pool=pool, n_pool=len(pool), n_active=stats['n_active'],
      set_size=size, fm_features=fm_set, linear_probe_features=lin_set,
      fm_accuracy=ranked['fm_test_accuracy'],
      fm_train_accuracy=ranked['fm_train_accuracy'],
      linear_probe_accuracy=ranked['probe_test_accuracy'],
      fm_ranking=[pool[i] for i in ranked['fm_ranking']],
      linear_probe_ranking=[pool[i] for i in ranked['probe_ranking']],
      n_train=ranked['n_train'], n_test=ranked['n_test'],
      ks=[int(k) for k in ks],
      fm_asr_by_k=fm_asr, fm_asr_by_k_count=fm_count,
      linear_probe_asr_by_k=lin_asr, linear_probe_asr_by_k_count=lin_count,
      knock_on=dict(ko, activation_drop=ko['mean_relative_drop']),
      controls=dict(random_asr=ctrl['random_mean_asr'],
                    random_asr_count=ctrl['random_max_asr_count'],
                    obrien_asr=ctrl['obrien_max_asr'],
                    obrien_asr_count=ctrl['obrien_max_asr_count'],
                    random=ctrl['random'], obrien=ctrl['obrien']),
      fm_history=[list(r) for r in ranked['fm_history']],
      linear_history=[list(r) for r in ranked['probe_history']],
      classifier_prompts=fit_sets)
  if stage2 is not None and stage2.get('search') == 'per_prompt':
    summary['per_prompt'] = per_prompt_stage.stage3(
        ctx, stage2, _greedy_prompts(ctx), fm_set)
  arrays = dict(arrays, pool=np.asarray(pool))
  return summary, arrays


def run_hydra(ctx: Context, features: list[int], progress=None,
              stage2: dict | None = None) -> dict:
  """Stage 4, paper mode: `hydra.run` on the FM's set, and after a
  per-prompt stage 2 `woken` (`woken.run`: where the latents woken by
  ablating each search prompt's full active set fire)."""
  out = hydra.run(ctx, features, progress)
  if stage2 and stage2.get('search') == 'per_prompt':
    ps, eps = _greedy_prompts(ctx), ctx.config.paper.active_eps
    full = per_prompt_stage.full_active_sets(ctx, ps, eps)
    out['woken'] = woken.run(ctx, ps, full, hydra.downstream(ctx), eps)
  return out
