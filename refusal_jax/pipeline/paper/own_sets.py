"""Generations and verdicts with each prompt under a feature set of its own.

Stage 2 per prompt gives every prompt its own set; its jailbreak is judged on
a generation with that set ablated on that prompt alone. `generate` runs all
prompts in batches, each row with its own set: one `SAEEdit` per SAE of the
feature space, with a latent mask of one row per prompt ([B, 1, A], broadcast
over tokens). Batches are padded to min(batch size, P) rows, the rows still
generating regrouped after each of `eval.generation_phases` tokens
(pipeline/regrouped.py), and every SAE of the space is edited in every batch (with an empty mask where no set of the batch
has a feature of it), so every condition of a stage shares one compiled
generation per length. `padded` pads a prompt set to whole batches, so the
per-prompt passes of the stage (SAE latents, the judge's NLL) compile once
per batch size whatever the number of prompts. `condition` generates once at
the longest length asked for and judges each shorter prefix (a greedy
generation's first n tokens are the n-token generation) with the graded judge
(data/graded_judge.py).

Axis letters (refusal_jax/axes.py): B prompts of a batch, A SAE latents, G
generated tokens.
"""

import hashlib
from typing import Sequence

import numpy as np

from refusal_jax.data import graded_judge
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import latents
from refusal_jax.pipeline import regrouped
from refusal_jax.pipeline.context import Context, PromptSet

# The name of these generations' batch size in ctx.chunk_sizes.
GENERATE_OP = 'paper/own_sets/generate'


def digest(sets: Sequence[Sequence[int]], *extra) -> str:
  """A short digest of per-prompt feature sets (a memo key)."""
  text = ';'.join(','.join(str(int(f)) for f in sorted(s)) for s in sets)
  text += '|' + ','.join(map(str, extra))
  return hashlib.sha1(text.encode()).hexdigest()[:16]


def padded(ps: PromptSet, multiple: int) -> PromptSet:
  """`ps` with its last prompt repeated up to a multiple of `multiple` rows
  (the same width: no column is dropped)."""
  extra = -len(ps) % max(1, int(multiple))
  if not extra:
    return ps
  rows = list(range(len(ps))) + [len(ps) - 1] * extra
  return PromptSet([ps.instructions[i] for i in rows], ps.ids[rows],
                   ps.mask[rows])


def feature_latents(ctx: Context, ps: PromptSet, features,
                    interventions=None) -> np.ndarray:
  """[P, T, C] latents of `features` on `ps` (`latents.feature_latents` in
  whole batches of `ctx.chunks.prompts`)."""
  full = padded(ps, ctx.chunks.prompts)
  return latents.feature_latents(
      ctx.model, ctx.space, full, features, ctx.chunks.prompts,
      interventions=interventions, skip_ids=ctx.skip_ids)[:len(ps)]


def row_edits(ctx: Context, sets: Sequence[Sequence[int]], saes: Sequence[int]
              ) -> tuple:
  """One SAEEdit per SAE index in `saes`, row b editing sets[b].

  The edit is the stage's (`greedy.mode`, `greedy.value`), at the tokens
  the run's SAE edits touch (`ctx.sae_edit`).
  """
  g = ctx.config.greedy
  edits = []
  for s in saes:
    sae = ctx.space.saes[s]
    mask = np.zeros((len(sets), 1, sae.d_sae), np.float32)
    for b, feats in enumerate(sets):
      if len(feats):
        sae_of, latent_of = ctx.space.locate(feats)
        mask[b, 0, latent_of[sae_of == s]] = 1.0
    edits.append(ctx.sae_edit(sae, mask, value=g.value, mode=g.mode))
  return tuple(edits)


def generate(ctx: Context, ps: PromptSet, sets: Sequence[Sequence[int]],
             max_new_tokens: int, progress=None,
             rows_per_batch: int | None = None) -> np.ndarray:
  """[P, G] greedy completions, prompt p with sets[p] edited.

  Args:
    ctx: the run's context.
    ps: the P prompts.
    sets: P feature lists of `ctx.space` (an empty one: no edit).
    max_new_tokens: G.
    progress: called with the number of prompts that finished.
    rows_per_batch: the first phase's batch rows (at most the batch size;
      default P).
  """
  if len(sets) != len(ps):
    raise ValueError(f'{len(sets)} feature sets for {len(ps)} prompts')
  saes = range(len(ctx.space.saes))
  e = ctx.config.eval
  return regrouped.generate(
      ctx.model, ps.ids, ps.mask, max_new_tokens,
      lambda idx: row_edits(ctx, [sets[i] for i in idx], saes),
      sizes=ctx.chunk_sizes, op=GENERATE_OP, rows=rows_per_batch or len(ps),
      phases=e.generation_phases, continue_rows=e.continue_batch_size,
      progress=progress)


def judge(ctx: Context, ps: PromptSet, tokens: np.ndarray,
          thresholds: dict) -> tuple[list[str], list[str]]:
  """(texts, graded-judge classes) of completions [P, G] of `ps`.

  `thresholds` are `evaluation.graded_thresholds(ctx)`; with an NLL
  threshold the completions' NLL under the unablated model is computed.
  """
  texts = evaluation.decode(ctx, tokens)
  nll = None
  if thresholds.get('nll_threshold') is not None:
    full = padded(ps, ctx.chunk_sizes.batch(evaluation.CE_OP))
    rows = list(range(len(ps))) + [len(ps) - 1] * (len(full) - len(ps))
    nll = evaluation.completion_nll(ctx, full, tokens[rows])[:len(ps)]
  classes = graded_judge.GradedJudge(
      graded_judge.JudgeThresholds(**thresholds)).classify(
          ps.instructions, texts, nll)
  return texts, classes


def jailbroken(classes: Sequence[str]) -> np.ndarray:
  """[P] bool: the graded judge's jailbreak class."""
  return np.asarray([c == graded_judge.JAILBREAK for c in classes], bool)


def condition(ctx: Context, ps: PromptSet, sets: Sequence[Sequence[int]],
              memo, key: str, thresholds: dict,
              lengths: Sequence[int]) -> dict:
  """Each prompt under its own set: generated once, judged at each length.

  Args:
    ctx: the run's context.
    ps: the P prompts.
    sets: P feature lists.
    memo: the stage's memo; the tokens are unit `<key>_<digest>`.
    key: the condition's name.
    thresholds: the graded judge's (`evaluation.graded_thresholds`).
    lengths: the numbers of new tokens judged; the longest is generated.

  Returns:
    {'tokens': [P, G], 'texts': {n: [P] str}, 'classes': {n: [P] class},
    'jailbroken': {n: [P] bool}}.
  """
  return conditions(ctx, ps, {key: sets}, memo, thresholds, lengths)[key]


def conditions(ctx: Context, ps: PromptSet,
               named: dict[str, Sequence[Sequence[int]]], memo,
               thresholds: dict, lengths: Sequence[int]) -> dict[str, dict]:
  """`condition` for several conditions, generated together.

  The rows of every condition not yet in the memo go to one `generate`
  call (in batches of P rows, the rows still generating regrouped across
  conditions), so a condition whose rows stop early does not leave its
  batches half empty.

  Returns:
    {name: `condition`'s dict}.
  """
  n_max = max(int(n) for n in lengths)
  keys = {name: f'{name}_{digest(sets, n_max)}' for name, sets in named.items()}
  todo = [name for name in named if not memo.has(keys[name])]
  made = {}
  if todo:
    n, k = len(ps), len(todo)
    stacked = PromptSet(list(ps.instructions) * k, np.tile(ps.ids, (k, 1)),
                        np.tile(ps.mask, (k, 1)))
    rows = [s for name in todo for s in named[name]]
    tokens = generate(ctx, stacked, rows, n_max, rows_per_batch=n)
    made = {name: tokens[i * n:(i + 1) * n] for i, name in enumerate(todo)}
  out = {}
  for name in named:
    tokens = memo(keys[name], lambda name=name: dict(t=made[name]))['t']
    texts, classes, jail = {}, {}, {}
    for length in sorted({int(x) for x in lengths}):
      texts[length], classes[length] = judge(ctx, ps, tokens[:, :length],
                                             thresholds)
      jail[length] = jailbroken(classes[length])
    out[name] = dict(tokens=tokens, texts=texts, classes=classes,
                     jailbroken=jail)
  return out
