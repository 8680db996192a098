"""Stage 2: greedy filtering of the stage-1 features to a minimal jailbreak set.

A feature set "flips" when, with its latents edited (zero-ablated by
default), the refusal metric of at least `min_flip_fraction` of the harmful
prompts falls below `threshold`. Two orders (config `greedy.order`):

* 'backward' (prune, default): start from all K stage-1 features (which must
  flip); at each step try removing every remaining feature, in one batched
  call, and drop the one whose removal keeps the set flipping with the lowest
  mean metric; stop when no removal keeps it flipping.
* 'forward' (grow, as the predecessor's `minimize_circuit`): start empty; at
  each step add the feature that lowers the mean metric most given the set
  already chosen; stop as soon as the set flips (or at `max_size`).

Every step evaluates all remaining candidates with `engine.feature_sweep`
(features of `ctx.space`: one SAE's latents, or (SAE, latent) pairs).

With `greedy.judge_check`, the surrogate's flip is checked where the search
would stop: the completions of the search's prompts with the set ablated are
generated and judged (`evaluation.judge_set`: the model judge when
`judge.model_path` is set, else the graded judge). A set whose jailbreak
share is below `min_flip_fraction` is not accepted: backward steps back to
the previous, larger set of its trajectory and checks that one (down to the
full set, kept when none is accepted); forward keeps adding features. The
summary then has `judge_checks` (what the judge said at each check) and
`judge_accepted`.
"""

import numpy as np
from absl import logging

from refusal_jax import errors
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import judging
from refusal_jax.pipeline.context import Context, PromptSet
from refusal_jax.sweeps import engine


def _threshold(ctx: Context) -> float:
  thr = ctx.config.greedy.threshold
  return ctx.metric.threshold_default if thr is None else float(thr)


def evaluate_sets(ctx: Context, ps, features, masks, progress=None,
                  op: str = 'greedy', edit_saes=None):
  """[M, P] metric with each row of masks [M, K] over `features` edited.

  Features are of `ctx.space`; each SAE's are edited at its own site.

  `op` names the sweep in ctx.chunk_sizes (each caller keeps its own chunk
  sizes when one runs out of memory). `edit_saes` (indices into the space's
  SAEs, or None: those the masks edit) are the SAEs the sweep edits
  (`engine.feature_sweep`).
  """
  g = ctx.config.greedy
  return engine.feature_sweep(
      ctx.model.params, ctx.model.config, ctx.space, ps.ids, ps.mask,
      np.asarray(features), np.asarray(masks, np.float32),
      metric=ctx.metric, mode=g.mode, value=g.value, chunks=ctx.chunk_sizes,
      op=op, skip_ids=ctx.skip_array, progress=progress, mesh=ctx.mesh,
      edit_saes=edit_saes)


class JudgeCheck:
  """The judge's verdict on the sets where the search would stop.

  Calling it with a mask [K] over the stage-1 features generates and judges
  the completions of the search's prompts with those features edited as in
  the search (`evaluation.judge_set`, units of work `*_check<i>` in the
  stage's memo) and returns whether the judge's jailbreak share reaches
  `greedy.min_flip_fraction`. `records` holds one entry per check. Use it in
  a `with` block: the model judge is released at its end.
  """

  def __init__(self, ctx: Context, ps: PromptSet, features, memo):
    self.ctx, self.ps, self.features, self.memo = ctx, ps, features, memo
    self.thresholds = evaluation.graded_thresholds(ctx)
    self.model_judge = judging.ModelJudge(ctx)
    self.records: list[dict] = []

  def __enter__(self) -> 'JudgeCheck':
    return self

  def __exit__(self, *exc) -> None:
    self.model_judge.close()

  def __call__(self, mask) -> bool:
    feats = [int(self.features[i]) for i in np.flatnonzero(mask)]
    res = evaluation.judge_set(
        self.ctx, self.ps, evaluation.sae_ablation(self.ctx, feats),
        self.memo, f'check{len(self.records):02d}', self.thresholds,
        self.model_judge)
    ok = bool(res['asr'] >= self.ctx.config.greedy.min_flip_fraction)
    self.records.append(dict(
        size=len(feats), features=feats, judge_asr=res['asr'],
        graded_judge=res['counts'], model_judge=res['model_judge'],
        accepted=ok))
    logging.info('greedy judge check: %d features, jailbreak share %.2f, %s',
                 len(feats), res['asr'], 'accepted' if ok else 'rejected')
    return ok


def run(ctx: Context, features: list[int], progress=None) -> dict:
  """Stage 2. Returns the JSON summary (minimal set and trajectory)."""
  if not ctx.config.greedy.get('judge_check'):
    return _search(ctx, features, progress, None)
  ps = _prompts(ctx)
  with JudgeCheck(ctx, ps, features, ctx.memo('greedy')) as check:
    out = _search(ctx, features, progress, check)
  return dict(out, judge_checks=check.records,
              judge_accepted=bool(check.records and
                                  check.records[-1]['accepted']))


def _prompts(ctx: Context) -> PromptSet:
  ps = ctx.prompts['harmful_train']
  return ps.subset(range(min(ctx.config.greedy.n_prompts, len(ps))))


def _search(ctx: Context, features: list[int], progress,
            check: JudgeCheck | None) -> dict:
  """The greedy search; `check` (or None) judges where it would stop."""
  g = ctx.config.greedy
  if not features:
    raise errors.ConfigError('stage 1 found no features to filter')
  ps = _prompts(ctx)
  thr = _threshold(ctx)
  k = len(features)

  memo = ctx.memo('greedy')
  steps = iter(range(10**9))

  def score(masks):
    vals = memo(f'step{next(steps):04d}', lambda: dict(v=evaluate_sets(
        ctx, ps, features, masks, progress)))['v']
    return vals.mean(1), (vals < thr).mean(1)

  trajectory = []
  history = []  # the set of each trajectory point
  if g.order == 'backward':
    cur = np.ones(k, np.float32)
    history.append(cur)
    mean, frac = score(cur[None])
    trajectory.append(dict(size=k, mean_metric=float(mean[0]),
                           flip_fraction=float(frac[0])))
    flips = frac[0] >= g.min_flip_fraction
    if not flips:
      logging.warning('all %d stage-1 features together flip only %.2f of '
                      'prompts; keeping the full set', k, frac[0])
    while flips and cur.sum() > 1:
      live = np.flatnonzero(cur)
      rows = np.repeat(cur[None], len(live), axis=0)
      rows[np.arange(len(live)), live] = 0.0
      mean, frac = score(rows)
      ok = frac >= g.min_flip_fraction
      if not ok.any():
        break
      pick = int(np.argmin(np.where(ok, mean, np.inf)))
      cur = rows[pick]
      history.append(cur)
      trajectory.append(dict(size=int(cur.sum()), removed=int(
          features[live[pick]]), mean_metric=float(mean[pick]),
                             flip_fraction=float(frac[pick])))
    if check is not None and flips:
      # Step back until the judge accepts a set (or the full set is left).
      while not check(history[-1]) and len(history) > 1:
        history.pop()
      cur = history[-1]
  elif g.order == 'forward':
    cur = np.zeros(k, np.float32)
    flips = done = False
    max_size = g.max_size or k
    while not done and cur.sum() < min(max_size, k):
      free = np.flatnonzero(cur == 0)
      rows = np.repeat(cur[None], len(free), axis=0)
      rows[np.arange(len(free)), free] = 1.0
      mean, frac = score(rows)
      pick = int(np.argmin(mean))
      cur = rows[pick]
      flips = frac[pick] >= g.min_flip_fraction
      trajectory.append(dict(size=int(cur.sum()), added=int(
          features[free[pick]]), mean_metric=float(mean[pick]),
                             flip_fraction=float(frac[pick])))
      history.append(cur)
      done = flips and (check is None or check(cur))
  else:
    raise errors.ConfigError(
        f"greedy.order {g.order!r}: expected 'backward' or 'forward'")
  minimal = [int(features[i]) for i in np.flatnonzero(cur)]
  last = trajectory[len(history) - 1]  # the kept set's point
  return dict(features=minimal, flips=bool(flips), threshold=thr,
              mean_metric=last['mean_metric'],
              flip_fraction=last['flip_fraction'],
              trajectory=trajectory, n_prompts=len(ps), order=g.order)
