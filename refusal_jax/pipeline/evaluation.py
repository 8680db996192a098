"""Stage 5: jailbreak success from generations, and CE loss on harmless prompts.

* ASR: greedy generations on the harmful test prompts under an intervention,
  classified by the graded judge (`data.graded_judge`: refusal, broken,
  off_topic or jailbreak; config `judge.*`). ASR is the jailbreak share; the
  refusal-substring judge's ASR (`asr_substring`) is kept for comparison
  with earlier work. The judge's NLL rule scores every completion under the
  unablated model and calls it broken above a quantile of the same NLL of
  the model's own harmless answers (those of the CE loss below).
* A model judge, when `judge.model_path` names one (HarmBench's Llama-2
  classifier or Llama-Guard-3, `data.model_judge`, run by
  `judging.ModelJudge`): its verdicts are then the ASR, and `model_judge`
  reports them per condition with their agreement with the graded judge,
  whose classes stay in `judge`.
* The search's surrogate against the judge: the refusal metric greedy and
  the FM search on, measured on the harmful test prompts under each
  condition; a prompt "flips" when the metric falls below the greedy
  threshold; `surrogate_agreement` is the share of flips the judge calls
  jailbreak.
* CE loss (the paper's CE table): the model's own greedy completions of the
  harmless test prompts are generated once without intervention; their mean
  per-token cross-entropy is then measured, teacher-forced, under each
  intervention (completion tokens only, up to and including the end-of-turn
  token).

Compilations: the stage compiles a fixed number of functions whatever its
numbers of prompts, feature sets and SAEs. The harmful test prompts and the
CE-loss harmless prompts are left-padded to one width (`eval_sets`); every
batch of a generation, a teacher-forced pass or a metric pass is padded to
one number of rows (`eval_rows`; a padded row repeats the last prompt and
is dropped); and every feature set is ablated with one edit per SAE of the
feature space (`space_ablation`, empty where the set has none of its
features), so the sets share one compiled generation (one more for the
direction ablation, one for none).
"""

import numpy as np

from refusal_jax.data import graded_judge
from refusal_jax.data import model_judge as model_judge_lib
from refusal_jax.data.judge import SubstringJudge
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import regrouped
from refusal_jax.pipeline.context import Context, PromptSet
from refusal_jax.sweeps import engine

# The name of every generation of this stage in ctx.chunk_sizes: once one
# condition's batch (config.eval.batch_size) has been halved for running out
# of memory, the later ones start from the halved batch.
GENERATE_OP = 'evaluation/generate'
# The same for the teacher-forced CE loss passes (logits at every completion
# token: [batch, G, V]).
CE_OP = 'evaluation/ce_loss'


def widen(ps: PromptSet, width: int) -> PromptSet:
  """`ps` left-padded to `width` columns (mask 0, ids of the first column).

  Positions follow the mask, so a real token's values do not change
  (beyond float rounding); prompt sets of one width share compilations.
  """
  extra = int(width) - ps.ids.shape[1]
  if extra <= 0:
    return ps
  return PromptSet(list(ps.instructions),
                   np.pad(ps.ids, ((0, 0), (extra, 0)), mode='edge'),
                   np.pad(ps.mask, ((0, 0), (extra, 0))))


def _batch_rows(ctx: Context, op: str, n: int, rows: int | None) -> int:
  """Rows of every batch of op: its batch size, at most `rows` (default:
  the n items), so that one shape serves every batch."""
  return max(1, min(ctx.chunk_sizes.batch(op), int(rows or n)))


def generate(ctx: Context, ps: PromptSet, interventions, max_new_tokens: int,
             progress=None, *, model=None, op: str = GENERATE_OP,
             rows: int | None = None) -> np.ndarray:
  """[B, G] greedy completions (pad after the stop token).

  Prompts are generated in batches of `ctx.chunk_sizes.batch(op)`; a batch
  that runs out of device memory is halved and retried. Every batch is
  padded to min(batch size, `rows` or B) prompts (the last one repeated, its
  completions dropped), so one compiled generation serves every batch. The
  rows still generating after each of `eval.generation_phases` tokens are
  regrouped into batches of `eval.continue_batch_size`
  (pipeline/regrouped.py).

  Args:
    ctx: the run's context.
    ps: the prompts.
    interventions: applied to prompt and completion (None: none).
    max_new_tokens: G.
    progress: called with the number of prompts of each finished batch.
    model: the model that generates (default `ctx.model`; the model judge
      passes itself).
    op: the name of the generation's chunk size in `ctx.chunk_sizes`.
    rows: the stage's batch rows (the most prompts any of its calls has).
  """
  e = ctx.config.eval
  return regrouped.generate(
      ctx.model if model is None else model, ps.ids, ps.mask, max_new_tokens,
      lambda idx: interventions, sizes=ctx.chunk_sizes, op=op,
      rows=_batch_rows(ctx, op, len(ps), rows), phases=e.generation_phases,
      continue_rows=e.continue_batch_size, progress=progress)


def completion_mask(tokens: np.ndarray, stop_ids) -> np.ndarray:
  """[B, G] 1 up to and including the first stop token."""
  stop = np.isin(tokens, list(stop_ids))
  before = np.cumsum(stop, axis=1) - stop  # stops strictly before t
  return (before == 0).astype(np.int32)


def decode(ctx: Context, tokens: np.ndarray, model=None) -> list[str]:
  """Each row of tokens [B, G] up to its stop token, as text (default model:
  `ctx.model`)."""
  model = ctx.model if model is None else model
  stops = set(model.config.eos_token_ids)
  texts = []
  for row in tokens:
    keep = []
    for t in row:
      if int(t) in stops:
        break
      keep.append(int(t))
    texts.append(model.tokenizer.decode(keep, skip_special_tokens=True))
  return texts


def make_judge(ctx: Context):
  subs = ctx.config.eval.refusal_substrings
  return SubstringJudge(tuple(subs)) if subs else SubstringJudge()


def _token_nll(ctx: Context, ps: PromptSet, tokens: np.ndarray, cmask,
               interventions, i0: int, i1: int, rows: int | None = None):
  """([b, G] NLL of completion tokens, [b, G] completion mask), rows i0:i1.

  The pass runs on the batch padded to `_batch_rows` rows (dropped after).
  """
  pad = ctx.model.config.pad_token_id or 0
  t = ps.ids.shape[1]
  idx = context_lib.padded_rows(i0, i1, _batch_rows(ctx, CE_OP, len(ps), rows))
  ids = np.concatenate([ps.ids[idx], np.where(cmask[idx], tokens[idx], pad)],
                       1)
  mask = np.concatenate([ps.mask[idx], cmask[idx]], 1)
  # Logits at t-1 ... t+G-2 predict the G completion tokens; only those
  # rows are projected onto the vocabulary.
  at = np.broadcast_to(np.arange(t - 1, ids.shape[1] - 1),
                       (len(ids), ids.shape[1] - t))
  logits = np.asarray(ctx.model.forward(
      ids, mask, interventions=interventions, logits_at=at).logits)[:i1 - i0]
  logp = logits - _logsumexp(logits)
  nll = -np.take_along_axis(logp, tokens[i0:i1, :, None], -1)[..., 0]
  return nll, cmask[i0:i1]


def ce_loss(ctx: Context, ps: PromptSet, tokens: np.ndarray,
            interventions, rows: int | None = None) -> float:
  """Mean CE of completion tokens [B, G] given prompts, under interventions.

  Batches of `ctx.chunk_sizes.batch(CE_OP)` prompts (each padded as in
  `generate`, `rows` the stage's); a batch that runs out of device memory is
  halved and retried.
  """
  cmask = completion_mask(tokens, ctx.model.config.eos_token_ids)

  def run(i0, i1):
    nll, m = _token_nll(ctx, ps, tokens, cmask, interventions, i0, i1, rows)
    return float((nll * m).sum()), int(m.sum())

  parts = engine.batched(run, len(ps), ctx.chunk_sizes, CE_OP)
  total = sum(s for s, _ in parts)
  count = sum(c for _, c in parts)
  return total / max(count, 1)


def completion_nll(ctx: Context, ps: PromptSet, tokens: np.ndarray,
                   interventions=None, rows: int | None = None) -> np.ndarray:
  """[B] mean per-token NLL of each completion (tokens [B, G]) given its prompt.

  The same teacher-forced pass as `ce_loss` (completion tokens up to and
  including the stop token), averaged per completion instead of over all.
  """
  cmask = completion_mask(tokens, ctx.model.config.eos_token_ids)

  def run(i0, i1):
    nll, m = _token_nll(ctx, ps, tokens, cmask, interventions, i0, i1, rows)
    return (nll * m).sum(1) / np.maximum(m.sum(1), 1)

  return np.concatenate(engine.batched(run, len(ps), ctx.chunk_sizes,
                                       CE_OP)).astype(np.float64)


def judge_thresholds(ctx: Context, harmless_nll) -> dict:
  """The graded judge's thresholds from config `judge.*` as a dict.

  `nll_threshold` is the `judge.nll_quantile` of harmless_nll (the model's
  own harmless answers), or None when the quantile is 0.
  """
  j = ctx.config.judge
  q = float(j.nll_quantile)
  nll = (graded_judge.calibrate_nll_threshold(harmless_nll, q) if q
         else None)
  return dict(min_tail_words=int(j.min_tail_words),
              repeat_ngram=int(j.repeat_ngram),
              max_repeat_share=float(j.max_repeat_share),
              nll_threshold=nll,
              min_topic_overlap=float(j.min_topic_overlap))


def eval_sets(ctx: Context) -> tuple[PromptSet, PromptSet]:
  """(the harmful test prompts, the CE-loss harmless prompts: the first
  `eval.n_ce_prompts` harmless test prompts), left-padded to one width."""
  harmful = ctx.prompts['harmful_test']
  harmless = ctx.prompts['harmless_test']
  harmless = harmless.subset(range(min(ctx.config.eval.n_ce_prompts,
                                       len(harmless))))
  width = max(harmful.ids.shape[1], harmless.ids.shape[1])
  return widen(harmful, width), widen(harmless, width)


def eval_rows(ctx: Context) -> int:
  """The batch rows of this stage's passes over `eval_sets` (the larger set:
  every batch is padded to at most this many prompts)."""
  return max(len(ps) for ps in eval_sets(ctx))


def harmless_reference(ctx: Context, memo) -> tuple[PromptSet, np.ndarray,
                                                     np.ndarray]:
  """The CE-loss harmless prompts, the model's own answers and their NLLs.

  Returns:
    (the CE-loss harmless prompts of `eval_sets`, their greedy completions
    [B, G] without intervention, the completions' mean per-token NLL [B]
    under the unablated model), memoised in `memo`.
  """
  harmless = eval_sets(ctx)[1]
  rows = eval_rows(ctx)
  own = memo('ce_completions', lambda: dict(t=generate(
      ctx, harmless, None, ctx.config.eval.ce_max_new_tokens,
      rows=rows)))['t']
  nll = memo('nll_harmless', lambda: dict(v=completion_nll(
      ctx, harmless, own, rows=rows)))['v']
  return harmless, own, nll


def graded_thresholds(ctx: Context) -> dict:
  """`judge_thresholds` as stage 5 computes them, from any stage.

  The harmless answers the NLL rule is calibrated on (only when
  `judge.nll_quantile` is set) are stage 5's own units of work, computed
  once for both.
  """
  nll = (harmless_reference(ctx, ctx.memo('evaluation'))[2]
         if ctx.config.judge.nll_quantile else None)
  return judge_thresholds(ctx, nll)


def judge_set(ctx: Context, ps: PromptSet, interventions, memo, key: str,
              thresholds: dict, model_judge=None, progress=None,
              rows: int | None = None) -> dict:
  """Greedy completions of `ps` under `interventions`, judged.

  Args:
    ctx: the run's context.
    ps: the prompts.
    interventions: the intervention (None: none).
    memo: where the units of work are kept: `gen_<key>` (completions),
      `nll_<key>` (their NLL, only for the graded judge's NLL rule) and
      `model_judge_<key>` (the model judge's verdicts).
    key: the name of this condition.
    thresholds: the graded judge's (`judge_thresholds`).
    model_judge: a `judging.ModelJudge`, or None.
    progress: called with the number of prompts generated.
    rows: the stage's batch rows (`generate`; default: the prompts').

  Returns:
    `tokens` [B, G], `texts`, `classes` (the graded judge's class per
    prompt), `counts` (`graded_judge.class_counts`), `verdicts` (the model
    judge's per prompt, None when not configured), `model_judge`
    (`data.model_judge.agreement` of those verdicts with the graded judge's
    jailbreaks, or None) and `asr`: the model judge's jailbreak share when
    configured, else the graded judge's.
  """
  tokens = memo(f'gen_{key}', lambda: dict(t=generate(
      ctx, ps, interventions, ctx.config.eval.max_new_tokens,
      progress, rows=rows)))['t']
  texts = decode(ctx, tokens)
  nll = None
  if thresholds.get('nll_threshold') is not None:
    nll = memo(f'nll_{key}', lambda: dict(v=completion_nll(
        ctx, ps, tokens, rows=rows)))['v']
  classes = graded_judge.GradedJudge(
      graded_judge.JudgeThresholds(**thresholds)).classify(
          ps.instructions, texts, nll)
  counts = graded_judge.class_counts(classes)
  verdicts = (None if model_judge is None else model_judge.verdicts(
      ps.instructions, texts, memo, f'model_judge_{key}'))
  agreement = (None if verdicts is None else model_judge_lib.agreement(
      verdicts, [c == graded_judge.JAILBREAK for c in classes]))
  asr = (counts[graded_judge.JAILBREAK]['fraction'] if agreement is None
         else agreement['asr'])
  return dict(tokens=tokens, texts=texts, classes=classes, counts=counts,
              verdicts=verdicts, model_judge=agreement, asr=asr)


def surrogate_agreement(metric: np.ndarray, classes, threshold: float) -> dict:
  """How often a flip of the search's metric is a jailbreak by the judge.

  Args:
    metric: [P] refusal metric of each prompt under a condition.
    classes: The graded judge's class of each prompt's completion.
    threshold: A prompt flips when its metric is below this.

  Returns:
    `n_flips`, `n_flips_jailbreak`, `agreement` (their ratio; None without
    flips), `flip_classes` {class: count among flips} and
    `jailbreak_recall` (share of the judge's jailbreaks that flip; None
    without jailbreaks).
  """
  flips = np.asarray(metric) < threshold
  jail = np.asarray([c == graded_judge.JAILBREAK for c in classes])
  n_flips, n_jail = int(flips.sum()), int(jail.sum())
  both = int((flips & jail).sum())
  return dict(
      n_flips=n_flips, n_flips_jailbreak=both,
      agreement=both / n_flips if n_flips else None,
      flip_classes={c: int(sum(f and k == c for f, k in zip(flips, classes)))
                    for c in graded_judge.CLASSES},
      jailbreak_recall=both / n_jail if n_jail else None)


def _logsumexp(x):
  m = x.max(-1, keepdims=True)
  return m + np.log(np.exp(x - m).sum(-1, keepdims=True))


def sae_ablation(ctx: Context, features) -> SAEEdit | tuple | None:
  """The stage edit (`greedy.mode`, `greedy.value`) of `features`: one
  SAEEdit per SAE holding one of them (the edit alone for one), or None."""
  if not features:
    return None
  g = ctx.config.greedy
  edits = ctx.feature_edits(features, value=g.value, mode=g.mode)
  return edits[0] if len(edits) == 1 else edits  # one SAEEdit per SAE


def space_ablation(ctx: Context, features) -> SAEEdit | tuple | None:
  """As `sae_ablation`, with one SAEEdit per SAE of the feature space.

  An SAE none of whose latents is in `features` gets an empty edit (it
  changes nothing, exactly), so that every non-empty set has one pytree
  structure and the generations of all sets share their compilations.
  """
  if not features:
    return None
  g = ctx.config.greedy
  sae_of, latent_of = ctx.space.locate(features)
  edits = []
  for s, sae in enumerate(ctx.space.saes):
    mask = np.zeros(sae.d_sae, np.float32)
    mask[latent_of[sae_of == s]] = 1.0
    edits.append(ctx.sae_edit(sae, mask, value=g.value, mode=g.mode))
  return edits[0] if len(edits) == 1 else tuple(edits)


def run(ctx: Context, direction: np.ndarray, feature_sets: dict,
        progress=None, model_judge=None) -> tuple[dict, dict]:
  """Stage 5. Returns (summary, texts).

  Args:
    ctx: the run's context.
    direction: [D] the refusal direction.
    feature_sets: {name: latent list}.
    progress: called with the number of harmful prompts generated.
    model_judge: a `judging.ModelJudge`; when configured, its verdicts are
      the ASR (`asr`) and `model_judge` gives them with their agreement with
      the graded judge, whose classes stay in `judge`.
  """
  interventions = {'baseline': None,
                   'direction_ablation': DirectionalAblation(
                       direction, skip_ids=ctx.direction_skip_array)}
  for name, feats in feature_sets.items():
    interventions[name] = space_ablation(ctx, feats)
  memo = ctx.memo('evaluation')
  harmful = eval_sets(ctx)[0]
  rows = eval_rows(ctx)
  # The graded judge's NLL threshold from the model's own harmless answers
  # (those of the CE loss), NLLs under the unablated model.
  harmless, own, harmless_nll = harmless_reference(ctx, memo)
  thresholds = judge_thresholds(ctx, harmless_nll)
  substring = make_judge(ctx)
  # A set equal to an earlier one (paper mode's probe set is often the
  # stage-2 union) is generated and judged once.
  seen, same = {}, {}
  for name, feats in feature_sets.items():
    same[name] = seen.setdefault(tuple(sorted(map(int, feats))), name)
  res = {}
  for name, iv in interventions.items():
    earlier = same.get(name, name)
    res[name] = (res[earlier] if earlier != name else judge_set(
        ctx, harmful, iv, memo, name, thresholds, model_judge, progress,
        rows=rows))
  texts = {name: r['texts'] for name, r in res.items()}
  classes = {name: r['classes'] for name, r in res.items()}
  judged = {name: r['counts'] for name, r in res.items()}
  asr = {name: r['asr'] for name, r in res.items()}
  asr_substring = {name: float(np.mean(substring(harmful.instructions, t)))
                   for name, t in texts.items()}
  # The search's surrogate on the same prompts, for the searched sets.
  thr = (ctx.metric.threshold_default if ctx.config.greedy.threshold is None
         else float(ctx.config.greedy.threshold))
  surrogate = {}
  for name in feature_sets:
    metric = memo(f'metric_{same[name]}', lambda name=same[name]: dict(
        v=context_lib.refusal_scores(
            ctx.model, ctx.metric, harmful, ctx.config.chunks.prompts,
            interventions[name])))['v']
    surrogate[name] = surrogate_agreement(metric, classes[name], thr)
  ce = {}
  for name, key in (('baseline', 'baseline'),
                    ('direction_ablation', 'direction_ablation'),
                    ('feature_ablation', 'stage2')):
    ce[name] = float(memo(f'ce_{name}', lambda key=key: dict(v=ce_loss(
        ctx, harmless, own, interventions[key], rows=rows)))['v'])
  answered = make_judge(ctx)(harmless.instructions, decode(ctx, own))
  harmless_refusal_rate = 1.0 - float(np.mean(answered))
  summary = dict(asr=asr, asr_substring=asr_substring, judge=judged,
                 judge_thresholds=thresholds, surrogate=surrogate,
                 surrogate_threshold=thr, ce_loss=ce,
                 n_harmful_test=len(harmful), n_ce_prompts=len(harmless),
                 harmless_refusal_rate=harmless_refusal_rate,
                 harmless_nll_quantiles={
                     str(q): float(np.quantile(harmless_nll, q))
                     for q in (0.5, 0.9, 0.99, 1.0)})
  out = dict(completions=texts, judge=classes, prompts=harmful.instructions)
  if model_judge is not None and model_judge.configured:
    summary['model_judge'] = model_judge_summary(
        model_judge, {name: r['model_judge'] for name, r in res.items()})
    out['model_judge'] = {name: r['verdicts'] for name, r in res.items()}
  return summary, out


def model_judge_summary(model_judge, counts: dict) -> dict:
  """summary `model_judge`: kind, path, and per condition its ASR, its
  agreement with the graded judge (share of prompts where both say
  jailbreak or both do not) and `data.model_judge.agreement`'s counts."""
  return dict(kind=model_judge.kind, path=model_judge.path,
              asr={k: c['asr'] for k, c in counts.items()},
              agreement={k: c['agreement'] for k, c in counts.items()},
              counts=counts)
