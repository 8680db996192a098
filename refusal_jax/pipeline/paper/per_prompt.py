"""Stage 2 per prompt: a block-wise greedy search for every prompt, batched.

The note on the paper (paper.md section 2.8b) counts dormant features "on the
source prompt" and reports minimal sets as counts of unique features, which
reads as one search per harmful prompt with the sets pooled afterwards. Here
every prompt gets its own pass of block_greedy.py's rule (its docstring) over
the whole candidate list, under each seed of the block order; the seeds' kept
sets are intersected per prompt.

All searches advance together. At each step every unfinished search proposes
masks (its current ablated set with its next blocks taken out), and the
masks of all searches are scored in ONE call of a paired score function:
(prompts [N], masks [N, C]) -> [N], row n being prompt prompts[n] under mask
masks[n] (sweeps/paired.py's `paired_feature_sweep` for a model, which packs
the rows into calls of one fixed shape). A search's masks are scored on its
own prompt only.

Speculation: a search proposes up to `lookahead` masks per step (more as
searches finish: the step's rows stay near `fill_rows`, the first step's
number, so the fixed-size calls of the paired score are not left half empty
in the last steps), along a
guessed path of decisions: the guess is the search's last decision (at the
start, drop). Guessing "keep" gives masks S minus b_i, S minus b_{i+1}, ...
(all judged against S, as block_greedy.py's batched pass); guessing "drop"
gives the chain S minus b_i, S minus b_i minus b_{i+1}, ... (each judged
against the one before). Decisions are taken in order up to and including
the first one that differs from the guess, the rest discarded. Every
decision is the one-block-at-a-time pass's (tested against
`block_greedy.block_greedy` with `prompts=[p]`).

Thresholds are per search (in units of P('I')): the stage passes tau
('absolute' rule) or tau times the prompt's clean P('I') ('relative' rule).
Masks met by several searches of one prompt (the all-ablated start; the
same seed's path under other thresholds, in a tau sweep) are scored once
(`PairedScore`).

Axis letters (refusal_jax/axes.py): N (prompt, mask) rows, P prompts, C
candidates.
"""

import dataclasses
from typing import Callable, Hashable, Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.pipeline.paper import block_greedy

# prompts [N] int, masks [N, C] float32 (1 = ablated) -> [N] P('I') of
# prompt prompts[n] under masks[n].
PairedFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class PairedScore:
  """Scores (prompt, mask) pairs, each distinct pair once.

  A call passes the pairs not scored before to the paired function, in one
  call.

  Attributes:
    n_calls: calls of the paired function.
    n_evals: distinct (prompt, mask) pairs scored.
  """

  def __init__(self, fn: PairedFn, n_prompts: int):
    self._fn = fn
    self.n_prompts = int(n_prompts)
    self._memo: list[dict[bytes, float]] = [{} for _ in range(n_prompts)]
    self.n_calls = 0
    self.n_evals = 0

  def __call__(self, prompts: Sequence[int], masks: np.ndarray) -> np.ndarray:
    """[N] metric of pairs (prompts[n], masks[n]); masks [N, C]."""
    masks = np.asarray(masks, np.float32)
    prompts = [int(p) for p in prompts]
    keys = [np.packbits(row > 0).tobytes() for row in masks]
    new: dict[tuple[int, bytes], np.ndarray] = {}
    for p, key, row in zip(prompts, keys, masks):
      if key not in self._memo[p]:
        new.setdefault((p, key), row)
    if new:
      rows = np.asarray([p for p, _ in new], np.int64)
      vals = np.asarray(self._fn(rows, np.stack(list(new.values()))),
                        np.float64)
      if vals.shape != rows.shape:
        raise errors.ConfigError(
            f'the paired score function returned shape {vals.shape} for '
            f'{len(rows)} rows; expected [N]')
      errors.check_finite('the greedy metric', vals)
      for (p, key), v in zip(new, vals.tolist()):
        self._memo[p][key] = v
      self.n_calls += 1
      self.n_evals += len(rows)
    return np.asarray([self._memo[p][k] for p, k in zip(prompts, keys)])


@dataclasses.dataclass(frozen=True)
class Search:
  """One block-wise greedy pass: its prompt, block order and threshold."""
  prompt: int
  seed: int
  threshold: float


class _Pass:
  """The state of one search (block_greedy.py's rule)."""

  def __init__(self, search: Search, blocks: list[list[int]], n: int):
    self.search, self.blocks = search, blocks
    self.cur = np.ones(n, np.float32)
    self.base = 0.0
    self.start = 0.0
    self.i = 0
    self.guess_drop = True
    self.trajectory: list[dict] = []

  @property
  def done(self) -> bool:
    return self.i >= len(self.blocks)

  def propose(self, lookahead: int) -> list[np.ndarray]:
    """Masks of the next blocks along the guessed path."""
    rows, s = [], self.cur
    for block in self.blocks[self.i:self.i + lookahead]:
      row = s.copy()
      row[block] = 0.0
      rows.append(row)
      if self.guess_drop:
        s = row
    return rows

  def resolve(self, rows: list[np.ndarray], vals: np.ndarray,
              absolute: bool) -> None:
    """Takes the decisions the scored rows settle."""
    guess, base = self.guess_drop, self.base
    for row, val in zip(rows, vals):
      block = self.blocks[self.i]
      change = float(val) - base
      keep = (abs(change) if absolute else change) >= self.search.threshold
      if guess:  # the next row was built on this block's drop
        base = float(val)
      if not keep:
        self.cur, self.base = row, float(val)
      self.trajectory.append(dict(block=list(block), change=change,
                                  kept=bool(keep), metric=self.base,
                                  size=int(self.cur.sum())))
      self.i += 1
      self.guess_drop = not keep
      if (not keep) != guess:
        break


def run_searches(n_candidates: int, searches: Sequence[Search],
                 score: PairedScore, *, block_size: int = 5,
                 absolute: bool = True, lookahead: int = 4,
                 fill_rows: int | None = None
                 ) -> list[block_greedy.BlockGreedyResult]:
  """Every search's pass, all advanced together (module docstring).

  Args:
    n_candidates: C.
    searches: the passes to run.
    score: the paired score; pairs of all searches go to it at once.
    block_size: candidates per block (the paper: 5).
    absolute: judge |change| (True) or only a rise of P('I').
    lookahead: masks a search proposes per step (at least 1).
    fill_rows: while fewer searches are live, each proposes up to
      max(lookahead, fill_rows // live) masks (None: lookahead x the number
      of searches; 0: always lookahead). The decisions are the same; only
      the number of steps changes.

  Returns:
    One BlockGreedyResult per search, in order (`kept` holds candidate
    indices; `n_calls` and `n_masks` are the whole run's: the calls and
    evaluations of `score` it made).
  """
  if n_candidates == 0:
    raise errors.ConfigError('block-wise greedy needs at least one candidate')
  if lookahead < 1:
    raise errors.ConfigError(f'lookahead {lookahead} must be >= 1')
  calls0, evals0 = score.n_calls, score.n_evals
  orders = {s: block_greedy.block_order(n_candidates, block_size, s)
            for s in {x.seed for x in searches}}
  passes = [_Pass(s, orders[s.seed], n_candidates) for s in searches]
  full = np.ones((len(passes), n_candidates), np.float32)
  start = score([p.search.prompt for p in passes], full)
  for p, v in zip(passes, start):
    p.base = p.start = float(v)
  fill = lookahead * len(passes) if fill_rows is None else int(fill_rows)
  while True:
    live = [p for p in passes if not p.done]
    if not live:
      break
    ahead = max(lookahead, fill // len(live))
    rows = [p.propose(ahead) for p in live]
    prompts = [p.search.prompt for p, r in zip(live, rows) for _ in r]
    vals = score(prompts, np.concatenate([np.stack(r) for r in rows]))
    at = 0
    for p, r in zip(live, rows):
      p.resolve(r, vals[at:at + len(r)], absolute)
      at += len(r)
  out = []
  for p in passes:
    kept = np.flatnonzero(p.cur).tolist()
    out.append(block_greedy.BlockGreedyResult(
        kept=kept, kept_indices=kept, blocks=p.blocks,
        trajectory=p.trajectory, start_metric=p.start, final_metric=p.base,
        n_calls=score.n_calls - calls0, n_masks=score.n_evals - evals0,
        seed=p.search.seed, tau=p.search.threshold))
  return out


def per_prompt_sets(n_candidates: int, score: PairedScore,
                    thresholds: dict[Hashable, Sequence[float]], *,
                    seeds: Sequence[int] = (0, 1, 2), block_size: int = 5,
                    absolute: bool = True, lookahead: int = 4,
                    fill_rows: int | None = None
                    ) -> dict[Hashable, list[block_greedy.SeedIntersection]]:
  """Per prompt, the seeds' passes intersected, for every threshold setting.

  Args:
    n_candidates: C.
    score: the paired score over `score.n_prompts` prompts.
    thresholds: {name: [P] threshold of each prompt} (e.g. one per (rule,
      tau) of a sweep); the passes of every name run together.
    seeds: seeds of the block orders (the paper: 3).
    block_size, absolute, lookahead, fill_rows: as `run_searches`.

  Returns:
    {name: [P] SeedIntersection, one per prompt; `.kept` are candidate
    indices}.
  """
  if not seeds:
    raise errors.ConfigError('a per-prompt search needs at least one seed')
  keys, searches = [], []
  for name, thr in thresholds.items():
    if len(thr) != score.n_prompts:
      raise errors.ConfigError(
          f'{len(thr)} thresholds for {score.n_prompts} prompts ({name!r})')
    for p, t in enumerate(thr):
      for s in seeds:
        keys.append((name, p, int(s)))
        searches.append(Search(p, int(s), float(t)))
  results = run_searches(n_candidates, searches, score,
                         block_size=block_size, absolute=absolute,
                         lookahead=lookahead, fill_rows=fill_rows)
  by_key = dict(zip(keys, results))
  out = {}
  for name in thresholds:
    rows = []
    for p in range(score.n_prompts):
      per_seed = {int(s): by_key[(name, p, int(s))] for s in seeds}
      common = sorted(set.intersection(
          *(set(r.kept_indices) for r in per_seed.values())))
      rows.append(block_greedy.SeedIntersection(
          kept=common, kept_indices=common, per_seed=per_seed))
    out[name] = rows
  return out
