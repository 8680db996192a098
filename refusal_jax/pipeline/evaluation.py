"""Stage 5: jailbreak success from generations, and CE loss on harmless prompts.

* ASR: greedy generations on the harmful test prompts under an intervention,
  judged by a `Judge` (default: the refusal-substring judge; any object with
  `__call__(prompts, completions) -> list[bool]`, True = jailbroken, plugs in,
  e.g. a classifier model).
* CE loss (the paper's CE table): the model's own greedy completions of the
  harmless test prompts are generated once without intervention; their mean
  per-token cross-entropy is then measured, teacher-forced, under each
  intervention (completion tokens only, up to and including the end-of-turn
  token).
"""

import numpy as np

from refusal_jax.data.judge import SubstringJudge
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.interventions.sae_edit import SAEEdit
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
              jailbroken=[bool(f) for f in flags])


def ce_loss(ctx: Context, ps: PromptSet, tokens: np.ndarray,
            interventions) -> float:
  """Mean CE of completion tokens [B, G] given prompts, under interventions.

  Batches of `ctx.chunk_sizes.batch(CE_OP)` prompts; a batch that runs out of
  device memory is halved and retried.
  """
  cmask = completion_mask(tokens, ctx.model.config.eos_token_ids)
  pad = ctx.model.config.pad_token_id or 0
  t = ps.ids.shape[1]

  def run(i0, i1):
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
    m = cmask[i0:i1]
    return float((nll * m).sum()), int(m.sum())

  parts = engine.batched(run, len(ps), ctx.chunk_sizes, CE_OP)
  total = sum(s for s, _ in parts)
  count = sum(c for _, c in parts)
  return total / max(count, 1)


def _logsumexp(x):
  m = x.max(-1, keepdims=True)
  return m + np.log(np.exp(x - m).sum(-1, keepdims=True))


def sae_ablation(ctx: Context, features) -> SAEEdit | None:
  if not features:
    return None
  g = ctx.config.greedy
  mask = np.zeros(ctx.sae.d_sae, np.float32)
  mask[list(features)] = 1.0
  return ctx.sae_edit(ctx.sae, mask, value=g.value, mode=g.mode)


def run(ctx: Context, direction: np.ndarray, feature_sets: dict,
        progress=None) -> tuple[dict, dict]:
  """Stage 5. feature_sets: {name: latent list}. Returns (summary, texts)."""
  interventions = {'baseline': None,
                   'direction_ablation': DirectionalAblation(direction)}
  for name, feats in feature_sets.items():
    interventions[name] = sae_ablation(ctx, feats)
  asr, texts = {}, {}
  memo = ctx.memo('evaluation')
  for name, iv in interventions.items():
    res = jailbreak_rate(ctx, iv, progress, memo_key=name)
    asr[name] = res['asr']
    texts[name] = res['completions']
  harmless = ctx.prompts['harmless_test']
  harmless = harmless.subset(range(min(ctx.config.eval.n_ce_prompts,
                                       len(harmless))))
  own = memo('ce_completions', lambda: dict(t=generate(
      ctx, harmless, None, ctx.config.eval.ce_max_new_tokens)))['t']
  ce = {}
  for name, key in (('baseline', 'baseline'),
                    ('direction_ablation', 'direction_ablation'),
                    ('feature_ablation', 'stage2')):
    ce[name] = float(memo(f'ce_{name}', lambda key=key: dict(v=ce_loss(
        ctx, harmless, own, interventions[key])))['v'])
  answered = make_judge(ctx)(harmless.instructions, decode(ctx, own))
  harmless_refusal_rate = 1.0 - float(np.mean(answered))
  summary = dict(asr=asr, ce_loss=ce, n_harmful_test=len(
      ctx.prompts['harmful_test']), n_ce_prompts=len(harmless),
                 harmless_refusal_rate=harmless_refusal_rate)
  return summary, dict(completions=texts,
                       prompts=ctx.prompts['harmful_test'].instructions)
