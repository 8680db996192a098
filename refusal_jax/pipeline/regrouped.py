"""Greedy generation that regroups the rows still generating.

A batch of greedy generations runs until its last row stops, so one long
answer keeps every finished row of its batch (refusals stop in about 20
tokens) running to the end. `generate` runs all rows in batches of the
stage's batch rows up to the first of `eval.generation_phases` new tokens,
then gathers the rows that have not stopped into batches of
`eval.continue_batch_size` and continues them to the next phase, and so on
up to max_new_tokens. Every row gets the tokens of one uninterrupted generation
(`generation.decode`: no row's computation reads another's; float rounding
in a batch of another size aside). Shapes are fixed by the config:
`prefill` and `decode` at the batch rows and `decode` at the continuation
rows, three compilations per (prompt width, max_new_tokens)
however many rows stop where; with no phases, each batch is one
`Model.generate` call. The gathers copy the rows' caches through
the host, so a batch of which more than half the rows go on at a phase
is not regrouped but continued in place to the next phase (its finished
rows idle as they would in a plain batch). Where nearly every row runs to
the limit that costs about what a plain batch does; where most stop early,
regrouping saves their steps (BENCHMARKS.md, "Regrouped generation"). The
phases are a config choice, off by default.

Axis letters (refusal_jax/axes.py): B rows, T prompt tokens, G generated
tokens.
"""

from typing import Any, Callable, Sequence

import numpy as np

from refusal_jax.models import generation
from refusal_jax.models.model import Model
from refusal_jax.pipeline import context as context_lib
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.engine import ChunkSizes

# The continuation batches' name in the run's ChunkSizes: `op` + this.
CONTINUE = '/continue'


def phase_bounds(phases: Sequence[int], max_new_tokens: int) -> list[int]:
  """The numbers of tokens after which rows are regrouped, then
  max_new_tokens."""
  g = int(max_new_tokens)
  return sorted({int(p) for p in phases if 0 < int(p) < g}) + [g]


def generate(model: Model, ids: np.ndarray, mask: np.ndarray,
             max_new_tokens: int,
             interventions_for: Callable[[list[int]], Any], *,
             sizes: ChunkSizes, op: str, rows: int,
             phases: Sequence[int] = (), continue_rows: int = 0,
             progress=None) -> np.ndarray:
  """[N, G] greedy completions of N prompts (pad after the stop token).

  Args:
    model: the model that generates.
    ids: [N, T] left-padded prompt ids.
    mask: [N, T] 1 at real tokens.
    max_new_tokens: G.
    interventions_for: the interventions of a batch from its rows (N-row
      indices, the last repeated in a padded batch): a pytree whose
      per-row leaves follow that order, or one shared by every row.
    sizes: the run's chunk sizes; `sizes.batch(op)` rows per first-phase
      call and `sizes.batch(op + CONTINUE)` per continuation, each halved on
      out-of-memory.
    op: the generation's name in `sizes`.
    rows: the batch rows of the first phase (every batch is padded to
      min(sizes.batch(op), rows)).
    phases: regroup after these numbers of new tokens (() or none below G:
      each batch runs to its end).
    continue_rows: rows of a continuation batch (at most the batch rows;
      0: the batch rows).
    progress: called with the number of rows that finished after each call.

  Returns:
    [N, G] int32 token ids.
  """
  n, g = len(ids), int(max_new_tokens)
  bounds = phase_bounds(phases, g)
  last = len(bounds) - 1
  out = np.zeros((n, g), np.int32)
  # Rows still generating, by the phase they stopped at: (row, state holding
  # it, its index there); every state of a level is at its bound's step.
  pending: list[list[tuple[int, generation.Decoding, int]]] = [
      [] for _ in bounds]

  def advance(row_ids, state, level: int, iv):
    """Settles a batch decoded to bounds[level]. While more than half of
    its rows go on, it goes on in place (a gather would copy every one of
    their caches); otherwise its finished rows are copied to `out` and the
    others kept in `pending` to be regrouped."""
    k = len(row_ids)
    while level < last:
      running = int((~np.asarray(state.done)[:k]).sum())
      if running == 0 or 2 * running <= len(state.done):
        break
      level += 1
      state = model.decode(state, bounds[level], interventions=iv)
    done = np.asarray(state.done)[:k] | (level == last)
    tokens = np.asarray(state.tokens)[:k]
    out[np.asarray(row_ids)[done]] = tokens[done]
    keep = np.flatnonzero(~done)
    if len(keep):
      kept = generation.take_rows(state, keep)
      pending[level].extend(
          (int(row_ids[j]), kept, i) for i, j in enumerate(keep))
    if progress is not None and done.any():
      progress(int(done.sum()))

  # Each call settles its rows once its passes have succeeded, so a call
  # that runs out of memory and is retried smaller leaves nothing behind.
  def first(i0, i1):
    idx = context_lib.padded_rows(i0, i1, min(sizes.batch(op), int(rows)))
    iv = interventions_for(idx)
    if not last:  # no phases: one uninterrupted call per batch
      out[i0:i1] = model.generate(ids[idx], mask[idx], max_new_tokens=g,
                                  interventions=iv)[:i1 - i0]
      if progress is not None:
        progress(i1 - i0)
      return
    state = model.prefill(ids[idx], mask[idx], max_new_tokens=g,
                          interventions=iv)
    state = model.decode(state, bounds[0], interventions=iv)
    advance(idx[:i1 - i0], state, 0, iv)

  engine.batched(first, n, sizes, op, limit=int(rows))
  cont = max(1, min(int(continue_rows or rows), int(rows)))
  for level in range(1, len(bounds)):
    entries = pending[level - 1]

    def more(i0, i1, entries=entries, level=level):
      chosen = [entries[j] for j in context_lib.padded_rows(
          i0, i1, min(sizes.batch(op + CONTINUE), cont))]
      state = _gather([(s, i) for _, s, i in chosen])
      idx = [r for r, _, _ in chosen]
      iv = interventions_for(idx)
      state = model.decode(state, bounds[level], interventions=iv)
      advance(idx[:i1 - i0], state, level, iv)

    engine.batched(more, len(entries), sizes, op + CONTINUE, limit=cont)
    pending[level - 1] = []
  return out


def _gather(chosen: list[tuple[generation.Decoding, int]]
            ) -> generation.Decoding:
  """One batch of the (state, row) pairs, in order."""
  pieces, run = [], []
  for state, i in chosen:
    if run and state is not run[0][0]:
      pieces.append(generation.take_rows(run[0][0], [j for _, j in run]))
      run = []
    run.append((state, i))
  pieces.append(generation.take_rows(run[0][0], [j for _, j in run]))
  return generation.concat_rows(pieces) if len(pieces) > 1 else pieces[0]
