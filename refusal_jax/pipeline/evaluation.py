"""Stage 5: jailbreak success from generations, and CE loss on harmless prompts.

* ASR: greedy generations on the harmful test prompts under an intervention,
  classified by the graded judge (`data.graded_judge`: refusal, broken,
  off_topic or jailbreak; config `judge.*`). ASR is the jailbreak share; the
  refusal-substring judge's ASR (`asr_substring`) is kept for comparison
  with earlier work. The judge's NLL rule scores every completion under the
  unablated model and calls it broken above a quantile of the same NLL of
  the model's own harmless answers (those of the CE loss below).
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
"""

import numpy as np

from refusal_jax.data import graded_judge
from refusal_jax.data.judge import SubstringJudge
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline.context import Context, PromptSet
from refusal_jax.sweeps import engine

# The name of every generation of this stage in ctx.chunk_sizes: once one
# condition's batch (config.eval.batch_size) has been halved for running out
# of memory, the later ones start from the halved batch.
GENERATE_OP = 'evaluation/generate'
# The same for the teacher-forced CE loss passes (logits at every completion
# token: [batch, G, V]).
CE_OP = 'evaluation/ce_loss'


def generate(ctx: Context, ps: PromptSet, interventions, max_new_tokens: int,
             progress=None) -> np.ndarray:
  """[B, G] greedy completions (pad after the stop token).

  Prompts are generated in batches of `ctx.chunk_sizes.batch(GENERATE_OP)`;
  a batch that runs out of device memory is halved and retried.
  """

  def run(i0, i1):
    out = ctx.model.generate(ps.ids[i0:i1], ps.mask[i0:i1],
                             max_new_tokens=max_new_tokens,
                             interventions=interventions)
    if progress is not None:
      progress(len(out))
    return out

  return np.concatenate(engine.batched(run, len(ps), ctx.chunk_sizes,
                                       GENERATE_OP))


def completion_mask(tokens: np.ndarray, stop_ids) -> np.ndarray:
  """[B, G] 1 up to and including the first stop token."""
  stop = np.isin(tokens, list(stop_ids))
  before = np.cumsum(stop, axis=1) - stop  # stops strictly before t
  return (before == 0).astype(np.int32)


def decode(ctx: Context, tokens: np.ndarray) -> list[str]:
  stops = set(ctx.model.config.eos_token_ids)
  texts = []
  for row in tokens:
    keep = []
    for t in row:
      if int(t) in stops:
        break
      keep.append(int(t))
    texts.append(ctx.model.tokenizer.decode(keep, skip_special_tokens=True))
  return texts


def make_judge(ctx: Context):
  subs = ctx.config.eval.refusal_substrings
  return SubstringJudge(tuple(subs)) if subs else SubstringJudge()


def jailbreak_rate(ctx: Context, interventions, progress=None,
                   memo_key: str | None = None) -> dict:
  """ASR on the harmful test prompts, with the completions."""
  ps = ctx.prompts['harmful_test']
  run = lambda: dict(t=generate(ctx, ps, interventions,
                                ctx.config.eval.max_new_tokens, progress))
  tokens = (run() if memo_key is None else
            ctx.memo('evaluation')(f'gen_{memo_key}', run))['t']
  texts = decode(ctx, tokens)
  flags = make_judge(ctx)(ps.instructions, texts)
  return dict(asr=float(np.mean(flags)), completions=texts,
              jailbroken=[bool(f) for f in flags], tokens=tokens)


def _token_nll(ctx: Context, ps: PromptSet, tokens: np.ndarray, cmask,
               interventions, i0: int, i1: int):
  """([b, G] NLL of completion tokens, [b, G] completion mask), rows i0:i1."""
  pad = ctx.model.config.pad_token_id or 0
  t = ps.ids.shape[1]
  ids = np.concatenate([ps.ids[i0:i1],
                        np.where(cmask[i0:i1], tokens[i0:i1], pad)], 1)
  mask = np.concatenate([ps.mask[i0:i1], cmask[i0:i1]], 1)
  # Logits at t-1 ... t+G-2 predict the G completion tokens; only those
  # rows are projected onto the vocabulary.
  at = np.broadcast_to(np.arange(t - 1, ids.shape[1] - 1),
                       (len(ids), ids.shape[1] - t))
  logits = np.asarray(ctx.model.forward(
      ids, mask, interventions=interventions, logits_at=at).logits)
  logp = logits - _logsumexp(logits)
  nll = -np.take_along_axis(logp, tokens[i0:i1, :, None], -1)[..., 0]
  return nll, cmask[i0:i1]


def ce_loss(ctx: Context, ps: PromptSet, tokens: np.ndarray,
            interventions) -> float:
  """Mean CE of completion tokens [B, G] given prompts, under interventions.

  Batches of `ctx.chunk_sizes.batch(CE_OP)` prompts; a batch that runs out of
  device memory is halved and retried.
  """
  cmask = completion_mask(tokens, ctx.model.config.eos_token_ids)

  def run(i0, i1):
    nll, m = _token_nll(ctx, ps, tokens, cmask, interventions, i0, i1)
    return float((nll * m).sum()), int(m.sum())

  parts = engine.batched(run, len(ps), ctx.chunk_sizes, CE_OP)
  total = sum(s for s, _ in parts)
  count = sum(c for _, c in parts)
  return total / max(count, 1)


def completion_nll(ctx: Context, ps: PromptSet, tokens: np.ndarray,
                   interventions=None) -> np.ndarray:
  """[B] mean per-token NLL of each completion (tokens [B, G]) given its prompt.

  The same teacher-forced pass as `ce_loss` (completion tokens up to and
  including the stop token), averaged per completion instead of over all.
  """
  cmask = completion_mask(tokens, ctx.model.config.eos_token_ids)

  def run(i0, i1):
    nll, m = _token_nll(ctx, ps, tokens, cmask, interventions, i0, i1)
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
  if not features:
    return None
  g = ctx.config.greedy
  edits = ctx.feature_edits(features, value=g.value, mode=g.mode)
  return edits[0] if len(edits) == 1 else edits  # one SAEEdit per SAE


def run(ctx: Context, direction: np.ndarray, feature_sets: dict,
        progress=None) -> tuple[dict, dict]:
  """Stage 5. feature_sets: {name: latent list}. Returns (summary, texts)."""
  interventions = {'baseline': None,
                   'direction_ablation': DirectionalAblation(direction)}
  for name, feats in feature_sets.items():
    interventions[name] = sae_ablation(ctx, feats)
  asr_substring, texts, tokens = {}, {}, {}
  memo = ctx.memo('evaluation')
  for name, iv in interventions.items():
    res = jailbreak_rate(ctx, iv, progress, memo_key=name)
    asr_substring[name] = res['asr']
    texts[name] = res['completions']
    tokens[name] = res['tokens']
  harmless = ctx.prompts['harmless_test']
  harmless = harmless.subset(range(min(ctx.config.eval.n_ce_prompts,
                                       len(harmless))))
  own = memo('ce_completions', lambda: dict(t=generate(
      ctx, harmless, None, ctx.config.eval.ce_max_new_tokens)))['t']
  # The graded judge: NLLs under the unablated model, its threshold from the
  # model's own harmless answers.
  harmful = ctx.prompts['harmful_test']
  harmless_nll = memo('nll_harmless', lambda: dict(v=completion_nll(
      ctx, harmless, own)))['v']
  thresholds = judge_thresholds(ctx, harmless_nll)
  judge = graded_judge.GradedJudge(graded_judge.JudgeThresholds(**thresholds))
  classes, judged, asr = {}, {}, {}
  for name in interventions:
    nll = memo(f'nll_{name}', lambda name=name: dict(v=completion_nll(
        ctx, harmful, tokens[name])))['v']
    classes[name] = judge.classify(harmful.instructions, texts[name], nll)
    judged[name] = graded_judge.class_counts(classes[name])
    asr[name] = judged[name][graded_judge.JAILBREAK]['fraction']
  # The search's surrogate on the same prompts, for the searched sets.
  thr = (ctx.metric.threshold_default if ctx.config.greedy.threshold is None
         else float(ctx.config.greedy.threshold))
  surrogate = {}
  for name in feature_sets:
    metric = memo(f'metric_{name}', lambda name=name: dict(
        v=context_lib.refusal_scores(
            ctx.model, ctx.metric, harmful, ctx.config.chunks.prompts,
            interventions[name])))['v']
    surrogate[name] = surrogate_agreement(metric, classes[name], thr)
  ce = {}
  for name, key in (('baseline', 'baseline'),
                    ('direction_ablation', 'direction_ablation'),
                    ('feature_ablation', 'stage2')):
    ce[name] = float(memo(f'ce_{name}', lambda key=key: dict(v=ce_loss(
        ctx, harmless, own, interventions[key])))['v'])
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
  return summary, dict(completions=texts, judge=classes,
                       prompts=harmful.instructions)
