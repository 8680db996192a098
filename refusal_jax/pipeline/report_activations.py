"""What the report's features do on the prompts (pipeline/report.py).

Activations of the reported features over the tokens of a prompt set, their
decoder rows' cosine with the refusal direction, and the per-feature
statistics of the report's feature cards: how often and how strongly a
feature fires, its top tokens and their contexts, its stage-3 effects.
"""

import numpy as np

from refusal_jax.pipeline import latents
from refusal_jax.pipeline import report_figures as figures
from refusal_jax.pipeline.context import Context, PromptSet

CONTEXT_BEFORE = 6
CONTEXT_AFTER = 2


def feature_activations(ctx: Context, ps, feats: list[int]) -> list[tuple]:
  """Per prompt: (real token ids [T], activations of `feats` [T, F])."""
  out = []
  bs = max(1, int(ctx.chunks.prompts))
  cols = np.asarray(feats, np.int64)
  for i in range(0, len(ps), bs):
    # Slices keep the padded width, so at most two shapes are compiled.
    sub = PromptSet(ps.instructions[i:i + bs], ps.ids[i:i + bs],
                    ps.mask[i:i + bs])
    f = latents.feature_latents(ctx.model, ctx.space, sub, cols, bs,
                                skip_ids=ctx.skip_ids)
    for b in range(len(sub)):
      real = sub.mask[b].astype(bool)
      out.append((sub.ids[b][real], f[b][real]))
  return out


def prompt_activations(ctx: Context, key: str,
                       feats: list[int]) -> tuple[list, list[str]]:
  """`feature_activations` of the prompt set `key`, and its instructions."""
  ps = ctx.prompts.get(key)
  if ps is None or not feats:
    return [], []
  return feature_activations(ctx, ps, feats), ps.instructions


def decoder_cosines(space, direction, feats: list[int]) -> np.ndarray | None:
  """Cosine of each feature's decoder row (in its SAE of `space`) with the
  refusal direction."""
  if direction is None or not feats:
    return None
  sae_of, latent_of = space.locate(feats)
  w = np.stack([np.asarray(space.saes[s].W_dec[a], np.float32)
                for s, a in zip(sae_of, latent_of)])
  d = np.asarray(direction, np.float32)
  d = d / (np.linalg.norm(d) + 1e-12)
  return (w @ d) / (np.linalg.norm(w, axis=1) + 1e-12)


def top_examples(acts, j: int, k: int) -> list[tuple[float, int, int]]:
  """The k strongest (value, prompt, position) activations of column j."""
  best = []
  for p, (_, a) in enumerate(acts):
    col = a[:, j]
    for t in np.argsort(-col)[:k]:
      if col[t] > 0:
        best.append((float(col[t]), p, int(t)))
  best.sort(key=lambda r: -r[0])
  return best[:k]


def top_distinct_tokens(tokenizer, acts, j: int, k: int) -> str:
  """The k token strings with the largest max activation of column j."""
  best = {}
  for ids, a in acts:
    for t in np.flatnonzero(a[:, j] > 0):
      tid = int(ids[t])
      best[tid] = max(best.get(tid, 0.0), float(a[t, j]))
  top = sorted(best.items(), key=lambda kv: -kv[1])[:k]
  texts = figures.token_texts(tokenizer, [i for i, _ in top])
  return ', '.join(f'{figures.token_label(text)!r} {v:.3f}'
                   for text, (_, v) in zip(texts, top))


def context(tokenizer, ids, t: int) -> dict:
  """A cell: the token at t, highlighted, with a few tokens either side."""
  text = lambda s: ''.join(figures.token_texts(tokenizer, s)).replace(
      '\n', '\u23ce')
  lo = max(0, t - CONTEXT_BEFORE)
  return {'before': text(ids[lo:t]), 'token': text(ids[t:t + 1]),
          'after': text(ids[t + 1:t + 1 + CONTEXT_AFTER])}


def activity(acts, j: int) -> tuple[float, float]:
  """(fraction of tokens where column j fires, its max activation)."""
  if not acts:
    return 0.0, 0.0
  col = np.concatenate([a[:, j] for _, a in acts])
  return (float((col > 0).mean()) if col.size else 0.0,
          float(col.max()) if col.size else 0.0)


def stage3_effects(arts: dict) -> dict[int, tuple[float, float]]:
  """{latent: (FM effect, linear effect)} over the stage-3 pool."""
  npz = arts['interactions_npz']
  if not all(k in npz for k in ('pool', 'fm_effect', 'linear_effect')):
    return {}
  return {int(a): (float(f), float(l)) for a, f, l in zip(
      npz['pool'], npz['fm_effect'], npz['linear_effect'])}
