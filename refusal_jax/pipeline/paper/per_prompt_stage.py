"""Stage 2 per prompt, and its per-prompt figures in stage 3 (paper mode).

`run` (config `paper.greedy.search = 'per_prompt'`, the paper-mode default):

* the search: per_prompt.py over the stage-1 features, one block-wise
  greedy pass per search prompt and seed, all prompts scored at once by
  sweeps/paired.py (one compiled call shape for the whole stage); tau as
  configured (`tau_rule`); with `sweep_tau`, the set sizes at every tau under
  both rules;
* the judge: each prompt generated once under its own set with
  max(`judge_tokens`) new tokens, every length of `judge_tokens` judged by
  the graded judge; `asr` is at `judge_new_tokens`;
* each seed's set alone: every prompt generated again under the set its
  search kept with that seed (before the seeds' intersection), judged the
  same way, so the intersection's effect is measured, not assumed;
* dormant-but-critical: the members of a prompt's set silent (at or below
  `paper.active_eps` on every token) on that prompt, and each prompt judged
  again without its own dormant members;
* the full-active-set condition: each prompt with every feature of the
  space (all latents of all its SAEs) that fires on it ablated;
* controls: per prompt, `paper.controls.n_draws` random sets of its set's
  size from the stage-1 features (seeded by (controls.seed, prompt)), and
  the O'Brien-style set of the stage-1 features active on at least k of its
  tokens, for each k of `controls.min_tokens`.

`stage3` (called by stages.run_interactions with the stage-3 FM set): the
knock-on of the FM set on each prompt's own active set members (mean and max
over prompts of the deactivated fraction, and the mean relative activation
drop over all (prompt, member) pairs), and the stage-3-only condition (the FM
set ablated on every search prompt) counted against the full-active-set
condition.

Every generation is judged at `judge_new_tokens` unless said otherwise.
Axis letters: P prompts, T tokens, C the stage-1 features, U the union of
the prompts' sets, A SAE latents.
"""

import dataclasses
import hashlib
import time

import numpy as np

from refusal_jax import errors
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import latents
from refusal_jax.pipeline.context import Context, PromptSet
from refusal_jax.pipeline.paper import activity
from refusal_jax.pipeline.paper import controls
from refusal_jax.pipeline.paper import counts
from refusal_jax.pipeline.paper import knock_on
from refusal_jax.pipeline.paper import own_sets
from refusal_jax.pipeline.paper import per_prompt
from refusal_jax.sweeps import paired
from refusal_jax.sweeps.engine import Chunks
from refusal_jax.sweeps.metrics import Metric

# The per-prompt sweeps' name in ctx.chunk_sizes.
SWEEP_OP = 'greedy/per_prompt'
RULES = ('absolute', 'relative')
# P('I') below this counts as a flip (the metric's natural threshold).
_PROB_THRESHOLD = 0.5


def thresholds_for(rule: str, tau: float, clean: np.ndarray) -> list[float]:
  """[P] thresholds of the change of P('I'): tau, or tau x clean P('I')."""
  if rule == 'absolute':
    return [float(tau)] * len(clean)
  if rule == 'relative':
    return [float(tau) * float(c) for c in clean]
  raise errors.ConfigError(
      f"paper.greedy.tau_rule {rule!r}: expected one of {RULES}")


def search_chunks(ctx: Context) -> Chunks:
  """The per-prompt sweeps' chunks: `paper.greedy.chunk_masks` masks (0:
  `chunks.masks`) by `chunks.prompts` prompts, set in ctx.chunk_sizes."""
  n = int(ctx.config.paper.greedy.get('chunk_masks', 0) or 0)
  ctx.chunk_sizes.start_chunks(SWEEP_OP, dataclasses.replace(
      ctx.chunks, masks=n or ctx.chunks.masks))
  return ctx.chunk_sizes.chunks(SWEEP_OP)


def lookahead(ctx: Context, n_searches_per_prompt: int) -> int:
  """Masks a search proposes per step: fills the search's masks chunk."""
  pg = ctx.config.paper.greedy
  return max(1, min(int(pg.max_masks), search_chunks(ctx).masks //
                    max(1, n_searches_per_prompt)))


def paired_fn(ctx: Context, ps: PromptSet, features, metric: Metric, memo,
              progress=None) -> per_prompt.PairedFn:
  """prompts [N], masks [N, C] -> [N]: one memoised paired sweep of `ps`
  over `features`, edited as the stage edits (`greedy.mode`)."""
  g = ctx.config.greedy
  feats = np.asarray(features)
  search_chunks(ctx)

  def fn(prompts, masks):
    key = 'pp_' + _bytes_digest(prompts, masks)
    return memo(key, lambda: dict(v=paired.paired_feature_sweep(
        ctx.model.params, ctx.model.config, ctx.space, ps.ids, ps.mask,
        feats, prompts, masks, metric=metric, mode=g.mode, value=g.value,
        chunks=ctx.chunk_sizes, op=SWEEP_OP,
        skip_ids=ctx.skip_array, progress=progress, mesh=ctx.mesh)))['v']

  return fn


def paired_score(ctx: Context, ps: PromptSet, features, metric: Metric,
                 memo, progress=None) -> per_prompt.PairedScore:
  """The search's paired score over `paired_fn`."""
  return per_prompt.PairedScore(
      paired_fn(ctx, ps, features, metric, memo, progress), len(ps))


def _bytes_digest(*arrays) -> str:
  h = hashlib.sha1()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(str(a.shape).encode() + a.tobytes())
  return h.hexdigest()[:16]


def full_active_sets(ctx: Context, ps: PromptSet, eps: float
                     ) -> list[list[int]]:
  """Per prompt, every feature of the space firing (> eps) on it."""
  peak = latents.space_peaks(
      ctx.model, ctx.space, own_sets.padded(ps, ctx.chunks.prompts),
      ctx.chunks.prompts, skip_ids=ctx.skip_ids)[:len(ps)]  # [P, F]
  return [np.flatnonzero(activity.active(peak[p], eps)).tolist()
          for p in range(len(ps))]


def _rate(jail: np.ndarray) -> dict:
  return counts.asr_counts(jail)


def dormant_per_prompt(sets, union, acts, eps: float = 0.0
                       ) -> list[list[int]]:
  """Per prompt, the members of its own set silent on it.

  Args:
    sets: [P] feature lists, each a subset of `union`.
    union: the U features `acts` holds, in its column order.
    acts: [P, T, U] their activations on the prompts (0 at padding).
    eps: active means above this.

  Returns:
    [P] lists: the members of sets[p] at or below eps on every token of
    prompt p, in set order.
  """
  col = {f: i for i, f in enumerate(union)}
  return [[f for f in s if not activity.active(acts[p, :, col[f]],
                                                eps).any()]
          for p, s in enumerate(sets)]


def random_controls(features, sizes, n_draws: int, seed: int
                    ) -> list[list[list[int]]]:
  """[n_draws][P] random sets, prompt p's of size sizes[p] from `features`
  (`controls.random_sets` seeded by (seed, p))."""
  draws = [controls.random_sets([int(f) for f in features], int(n), n_draws,
                                seed=(int(seed), p))
           for p, n in enumerate(sizes)]
  return [[dr[d] for dr in draws] for d in range(n_draws)]


def _control_sets(ctx: Context, ps: PromptSet, features, sets
                  ) -> tuple[dict, list[tuple[int, list[int]]]]:
  """The controls' per-prompt sets: ({'random<d>': sets of each prompt's
  size}, [(k, O'Brien-style sets of features active on >= k tokens)])."""
  c, eps = ctx.config.paper.controls, ctx.config.paper.active_eps
  draws = random_controls(features, [len(s) for s in sets], c.n_draws,
                          c.seed)
  acts = own_sets.feature_latents(ctx, ps, list(features))
  obrien = [(int(k), [[int(features[i]) for i in controls.obrien_set(
      acts[p], int(k), eps=eps, size=c.obrien_size)]
                      for p in range(len(ps))]) for k in c.min_tokens]
  return {f'random{d}': drawn for d, drawn in enumerate(draws)}, obrien


def _controls(random_sets: dict, obrien, judged: dict, n_judge: int) -> dict:
  """The controls' summary from their judged conditions."""
  rand = [dict(draw=d, **_rate(judged[name]['jailbroken'][n_judge]))
          for d, name in enumerate(random_sets)]
  rows = []
  for k, chosen in obrien:
    sizes = [len(s) for s in chosen]
    jail = (judged[f'obrien{k}']['jailbroken'][n_judge] if any(sizes)
            else np.zeros(0, bool))
    rows.append(dict(min_tokens=k, mean_size=float(np.mean(sizes)),
                     **_rate(jail)))
  return dict(
      random=rand,
      random_mean_asr=float(np.mean([r['asr'] for r in rand])) if rand
      else 0.0,
      random_max_asr_count=max((r['asr_count'] for r in rand), default=0),
      obrien=rows,
      obrien_max_asr=max((r['asr'] for r in rows), default=0.0),
      obrien_max_asr_count=max((r['asr_count'] for r in rows), default=0))


def run(ctx: Context, features: list[int], ps: PromptSet, metric: Metric,
        progress=None) -> dict:
  """Stage 2 per prompt (module docstring). Returns the JSON summary.

  Keys: `features` (the union of the prompts' sets, the set the later
  stages take), `search` ('per_prompt'), `tau`, `tau_rule`, `per_prompt`
  (per prompt: `index`, `features`, `size`, `dormant`, `n_dormant`,
  `judge` (class at judge_new_tokens), `judge_by_tokens`, `jailbroken`,
  `jailbroken_without_dormant`, `full_active_size`,
  `full_active_jailbroken`, `clean_metric` / `start_metric` / `metric`
  (P('I') with nothing, every candidate, its set ablated), `threshold`,
  `per_seed_size`, `per_seed_features`, `per_seed_jailbroken`: each
  seed's kept set and whether it alone jailbreaks the prompt),
  `union_size`, `asr` / `asr_count` (prompts their own
  set jailbreaks), `asr_by_tokens` {n: {asr, asr_count}},
  `judge_new_tokens`, `n_dormant` (distinct dormant members over the
  prompts), `dormant`, `asr_without_dormant` / `_count`,
  `per_seed_asr` / `per_seed_asr_count` {seed: prompts jailbroken by that
  seed's own set},
  `full_active_set` {asr, asr_count, mean_size}, `controls`, `tau_sweep`
  (with sweep_tau: {rule: {tau: {sizes, mean_size, union_size}}}),
  `flips` / `flip_fraction` / `mean_metric` (own sets' P('I'), a flip
  below 0.5), `start_metric`, `search_stats`, `completions` (the own
  sets' texts and classes per length, for completions.json), `n_prompts`,
  `order`.
  """
  cfg = ctx.config.paper
  pg, eps = cfg.greedy, cfg.active_eps
  if not features:
    raise errors.ConfigError('stage 1 found no features to filter')
  memo = ctx.memo('greedy')
  n, feats = len(ps), np.asarray(features)
  score = paired_score(ctx, ps, features, metric, memo, progress)
  clean = score(range(n), np.zeros((n, len(feats)), np.float32))
  chosen = (str(pg.tau_rule), float(pg.tau))
  grid = {chosen: thresholds_for(*chosen, clean)}
  if pg.sweep_tau:
    for rule in RULES:
      for tau in pg.taus:
        grid[(rule, float(tau))] = thresholds_for(rule, tau, clean)
  seeds = tuple(int(s) for s in pg.seeds)
  ahead = lookahead(ctx, len(seeds) * len(grid))
  t0 = time.time()
  found = per_prompt.per_prompt_sets(
      len(feats), score, grid, seeds=seeds, block_size=pg.block_size,
      absolute=pg.absolute, lookahead=ahead)
  search_seconds = time.time() - t0
  res = found[chosen]
  sets = [[int(feats[j]) for j in r.kept_indices] for r in res]
  union = sorted(set().union(*map(set, sets)))
  own_masks = np.stack([np.isin(feats, s) for s in sets]).astype(np.float32)
  own_metric = score(range(n), own_masks)

  thresholds = evaluation.graded_thresholds(ctx)
  n_judge = int(pg.judge_new_tokens)
  lengths = sorted({int(x) for x in pg.judge_tokens} | {n_judge})
  own = own_sets.condition(ctx, ps, sets, memo, 'own', thresholds, lengths)
  jail = own['jailbroken'][n_judge]
  seed_sets = {s: [[int(feats[j]) for j in r.per_seed[s].kept_indices]
                   for r in res] for s in seeds}
  acts = (own_sets.feature_latents(ctx, ps, union) if union
          else np.zeros(ps.ids.shape + (0,), np.float32))
  dormant = dormant_per_prompt(sets, union, acts, eps)
  full_sets = full_active_sets(ctx, ps, eps)
  random_sets, obrien = _control_sets(ctx, ps, feats, sets)
  # Every other condition is judged at n_judge tokens: generated together.
  named = {f'seed{s}': seed_sets[s] for s in seeds}
  if any(dormant):
    named['without_dormant'] = [[f for f in s if f not in set(d)]
                                for s, d in zip(sets, dormant)]
  named['full_active'] = full_sets
  named.update(random_sets)
  named.update({f'obrien{k}': chosen for k, chosen in obrien
                if any(map(len, chosen))})
  judged = own_sets.conditions(ctx, ps, named, memo, thresholds, (n_judge,))
  jail_seed = {s: judged[f'seed{s}']['jailbroken'][n_judge] for s in seeds}
  jail_wo = (judged['without_dormant']['jailbroken'][n_judge]
             if any(dormant) else jail)
  jail_full = judged['full_active']['jailbroken'][n_judge]
  ctrl = _controls(random_sets, obrien, judged, n_judge)

  dormant_union = sorted(set().union(*map(set, dormant)))
  per = []
  for p, r in enumerate(res):
    per.append(dict(
        index=p, features=sets[p], size=len(sets[p]), dormant=dormant[p],
        n_dormant=len(dormant[p]), judge=own['classes'][n_judge][p],
        judge_by_tokens={str(k): own['classes'][k][p] for k in lengths},
        jailbroken=bool(jail[p]),
        jailbroken_without_dormant=bool(jail_wo[p]),
        full_active_size=len(full_sets[p]),
        full_active_jailbroken=bool(jail_full[p]),
        clean_metric=float(clean[p]),
        start_metric=float(next(iter(r.per_seed.values())).start_metric),
        metric=float(own_metric[p]), threshold=float(grid[chosen][p]),
        per_seed_size={str(s): len(seed_sets[s][p]) for s in seeds},
        per_seed_features={str(s): seed_sets[s][p] for s in seeds},
        per_seed_jailbroken={str(s): bool(jail_seed[s][p]) for s in seeds}))
  wo = _rate(jail_wo)
  seed_rates = {str(s): _rate(j) for s, j in jail_seed.items()}
  sweep = {}
  if pg.sweep_tau:
    for rule in RULES:
      sweep[rule] = {}
      for tau in pg.taus:
        rows = found[(rule, float(tau))]
        sizes = [len(x.kept_indices) for x in rows]
        sweep[rule][str(float(tau))] = dict(
            sizes=sizes, mean_size=float(np.mean(sizes)),
            union_size=len(set().union(*(set(x.kept_indices)
                                         for x in rows))))
  flip = own_metric < _PROB_THRESHOLD
  out = dict(
      features=union, search='per_prompt', tau=float(pg.tau),
      tau_rule=str(pg.tau_rule), per_prompt=per, union_size=len(union),
      **_rate(jail),
      asr_by_tokens={str(k): _rate(own['jailbroken'][k]) for k in lengths},
      judge_new_tokens=n_judge, n_dormant=len(dormant_union),
      dormant=dormant_union, asr_without_dormant=wo['asr'],
      asr_without_dormant_count=wo['asr_count'],
      per_seed_asr={s: r['asr'] for s, r in seed_rates.items()},
      per_seed_asr_count={s: r['asr_count'] for s, r in seed_rates.items()},
      full_active_set=dict(**_rate(jail_full), mean_size=float(
          np.mean([len(s) for s in full_sets]))),
      controls=ctrl,
      flips=bool(flip.mean() >= ctx.config.greedy.min_flip_fraction),
      flip_fraction=float(flip.mean()), mean_metric=float(own_metric.mean()),
      start_metric=float(np.mean([x['start_metric'] for x in per])),
      threshold=_PROB_THRESHOLD,
      search_stats=dict(n_calls=score.n_calls, n_evaluations=score.n_evals,
                        n_searches=len(grid) * len(seeds) * n,
                        lookahead=ahead, seconds=round(search_seconds, 2)),
      completions=dict(
          prompts=list(ps.instructions),
          completions={str(k): own['texts'][k] for k in lengths},
          judge={str(k): own['classes'][k] for k in lengths}),
      n_prompts=n, order='paper_block_per_prompt', trajectory=[])
  if sweep:
    out['tau_sweep'] = sweep
  return out


def stage3(ctx: Context, stage2: dict, ps: PromptSet, fm_set: list[int]
           ) -> dict:
  """Stage 3's per-prompt figures for the FM set (module docstring).

  Returns:
    {'knock_on': {mean_deactivated_fraction, max_deactivated_fraction
    (over prompts with active own-set members), activation_drop (mean
    relative drop over all active (prompt, member) pairs), n_active,
    n_deactivated, n_prompts}, 'stage3_only': {asr, asr_count,
    full_active_count, of_full_active_count (prompts jailbroken by both)}}.
  """
  eps = ctx.config.paper.active_eps
  per = stage2['per_prompt']
  sets = [r['features'] for r in per]
  union = sorted(set().union(*map(set, sets)))
  memo = ctx.memo('interactions')
  fractions, drops, n_on, n_off = [], [], 0, 0
  if union and fm_set:
    clean = own_sets.feature_latents(ctx, ps, union)
    ablated = own_sets.feature_latents(
        ctx, ps, union, evaluation.sae_ablation(ctx, fm_set))
    col = {f: i for i, f in enumerate(union)}
    fm = set(fm_set)
    for p, s in enumerate(sets):
      cols = [col[f] for f in s]
      ko = knock_on.knock_on(clean[p:p + 1][..., cols],
                             ablated[p:p + 1][..., cols], eps=eps,
                             exclude=[i for i, f in enumerate(s) if f in fm])
      if ko['n_active']:
        fractions.append(ko['deactivated_fraction'])
        drops.append(ko['mean_relative_drop'] * ko['n_active'])
        n_on += ko['n_active']
        n_off += ko['n_deactivated']
  thresholds = evaluation.graded_thresholds(ctx)
  n_judge = int(stage2['judge_new_tokens'])
  jail = (own_sets.condition(ctx, ps, [fm_set] * len(ps), memo,
                             'stage3_only', thresholds,
                             (n_judge,))['jailbroken'][n_judge]
          if fm_set else np.zeros(len(ps), bool))
  full = np.asarray([r['full_active_jailbroken'] for r in per], bool)
  return dict(
      knock_on=dict(
          mean_deactivated_fraction=float(np.mean(fractions)) if fractions
          else 0.0,
          max_deactivated_fraction=float(np.max(fractions)) if fractions
          else 0.0,
          activation_drop=float(np.sum(drops) / n_on) if n_on else 0.0,
          n_active=n_on, n_deactivated=n_off, n_prompts=len(fractions)),
      stage3_only=dict(**_rate(jail), full_active_count=int(full.sum()),
                       of_full_active_count=int((jail & full).sum())))
