"""Stage 2 as the paper ran it: block-wise greedy pruning, seeds intersected.

The secondary note on the paper (shared reference, paper.md section 2.8b)
says: "block-wise greedy ablation, block size 5, keeping features whose
removal moves P('I') by at least a threshold tau (swept 0.1-0.8), run with 3
seeds and intersected". The rule implemented here reads it as pruning, like
the stage's name ("prune to a minimal set"):

1. Start with every candidate ablated: the ablated set S is all I
   candidates.
2. Shuffle the candidates with the seed and cut the order into consecutive
   blocks of `block_size` (the last block may be shorter).
3. Visit the blocks in that order. For block b, "removing" it means taking
   it out of the ablated set (its latents are left as they are). Its change
   is m(S minus b) - m(S), where m is P('I') at the last prompt position,
   averaged over the prompts (or over the columns `prompts` names). If
   |change| >= tau the block is kept in S; otherwise it is dropped from S
   for good, and the later blocks are judged against the smaller set.
4. One pass over the blocks; the kept set is what is left of S.

Readings that had to be made: "removal" is removal from the ablated set
(pruning from all candidates ablated, not growing from none). "Moves ... by
at least" is taken as the size of the change (`absolute=True`); with
`absolute=False` only a rise of P('I') (the block's ablation was lowering
refusal) keeps a block. One pass, not passes repeated until nothing changes.
The change is of the mean over the prompts the score function scores; the
note's "source
prompt" and its counts of "unique features" suggest the paper ran one search
per prompt and pooled the sets: `prompts=[p]` judges by prompt p alone, and
passes for several prompts that share one `CachedScore` score common masks
(the all-ablated start, at least) once.

A block is kept or dropped whole, so a kept block may carry features that do
not matter; repeating the search over seeds (other block compositions) and
intersecting the kept sets leaves the features kept under every grouping
(`intersect_over_seeds`).

Batching: each call of `score_fn` scores up to `max_masks` of the next
undecided blocks at once, each as "S minus that block" against the current
S. The blocks up to and including the first one dropped are decided exactly
as the one-at-a-time pass would decide them (they were all judged against
the S that pass would judge them against); the masks after it are discarded
and scored again against the smaller S. The result is that of the sequential
pass; the cost is at most `max_masks` masks per decided block, and as few
calls as one per dropped block.

Axis letters (refusal_jax/axes.py): M masks, P prompts, and I for the
candidates (the list that masks index).
"""

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from refusal_jax import errors

# masks [M, I] (1 = ablated) -> [M, P] P('I') per prompt.
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class BlockGreedyResult:
  """One block-wise greedy pass.

  Attributes:
    kept: the candidates left in the ablated set, in candidate order.
    kept_indices: their indices into the candidate list.
    blocks: the index blocks in the order they were visited.
    trajectory: per visited block, {'block': indices, 'change': m(S minus
      block) - m(S), 'kept': bool, 'metric': m of the ablated set after the
      decision, 'size': its size}.
    start_metric: m with every candidate ablated.
    final_metric: m with the kept set ablated.
    n_calls: calls of the score function.
    n_masks: masks scored.
    seed: the order's seed.
    tau: the threshold.
  """
  kept: list
  kept_indices: list[int]
  blocks: list[list[int]]
  trajectory: list[dict]
  start_metric: float
  final_metric: float
  n_calls: int
  n_masks: int
  seed: int
  tau: float


@dataclasses.dataclass
class SeedIntersection:
  """Block-wise greedy passes over several seeds and what they all keep.

  Attributes:
    kept: candidates kept under every seed, in candidate order.
    kept_indices: their indices into the candidate list.
    per_seed: {seed: BlockGreedyResult}.
  """
  kept: list
  kept_indices: list[int]
  per_seed: dict


def block_order(n_candidates: int, block_size: int, seed: int
                ) -> list[list[int]]:
  """The seed's shuffled candidate indices cut into consecutive blocks.

  Args:
    n_candidates: I.
    block_size: candidates per block (the last block may be shorter).
    seed: numpy Generator seed of the shuffle.

  Returns:
    Blocks of candidate indices, in visiting order.
  """
  if block_size < 1:
    raise errors.ConfigError(f'block size {block_size} must be >= 1')
  order = np.random.default_rng(seed).permutation(n_candidates)
  return [order[i:i + block_size].tolist()
          for i in range(0, n_candidates, block_size)]


class CachedScore:
  """A score function that scores each distinct mask once.

  Rows already scored (by any earlier call, under any seed or tau) are
  answered from memory; the other distinct rows go to `score_fn` in one call.
  Masks are told apart as binary (> 0), as the greedy search builds them.

  Attributes:
    n_calls: calls passed on to the wrapped function.
    n_masks: masks passed on to it.
  """

  def __init__(self, score_fn: ScoreFn):
    self._fn = score_fn
    self._memo: dict[bytes, np.ndarray] = {}
    self.n_calls = 0
    self.n_masks = 0

  def __call__(self, masks: np.ndarray) -> np.ndarray:
    """[M, I] masks -> [M, P] metric."""
    masks = np.asarray(masks, np.float32)
    keys = [np.packbits(row > 0).tobytes() for row in masks]
    new = {}
    for key, row in zip(keys, masks):
      if key not in self._memo and key not in new:
        new[key] = row
    if new:
      vals = np.asarray(self._fn(np.stack(list(new.values()))), np.float64)
      if vals.ndim != 2 or len(vals) != len(new):
        raise errors.ConfigError(
            f'the score function returned shape {vals.shape} for '
            f'{len(new)} masks; expected [M, P]')
      errors.check_finite('the greedy metric', vals)
      self._memo.update(zip(new, vals))
      self.n_calls += 1
      self.n_masks += len(new)
    return np.stack([self._memo[k] for k in keys])


def cached(score_fn: ScoreFn) -> CachedScore:
  """`score_fn` itself when it is a CachedScore, else a new one around it."""
  return score_fn if isinstance(score_fn, CachedScore) else CachedScore(
      score_fn)


def block_greedy(candidates: Sequence[Any], score_fn: ScoreFn, *,
                 tau: float, block_size: int = 5, seed: int = 0,
                 absolute: bool = True, max_masks: int = 16,
                 prompts: Sequence[int] | None = None) -> BlockGreedyResult:
  """One block-wise greedy pass (module docstring: the rule).

  Args:
    candidates: the I candidates (any labels, e.g. (SAE, latent) pairs);
      masks index them in this order.
    score_fn: masks [M, I] float32 (1 = ablated) -> [M, P] P('I') per
      prompt. Wrap it in `CachedScore` to share scores between passes.
    tau: keep a block when its change is at least this.
    block_size: candidates per block (the paper: 5).
    seed: seed of the candidate order.
    absolute: judge |change| (the note's "moves"); False: only a rise of
      P('I') keeps a block.
    max_masks: at most this many blocks scored per call.
    prompts: the columns of the [M, P] metric averaged (None: all).

  Returns:
    BlockGreedyResult.
  """
  n = len(candidates)
  if n == 0:
    raise errors.ConfigError('block-wise greedy needs at least one candidate')
  if max_masks < 1:
    raise errors.ConfigError(f'max_masks {max_masks} must be >= 1')
  score = cached(score_fn)
  calls0, masks0 = score.n_calls, score.n_masks
  blocks = block_order(n, block_size, seed)
  cur = np.ones(n, np.float32)
  cols = slice(None) if prompts is None else list(prompts)
  base = float(score(cur[None])[:, cols].mean(1)[0])
  start = base
  trajectory = []
  i = 0
  while i < len(blocks):
    todo = blocks[i:i + max_masks]
    rows = np.repeat(cur[None], len(todo), axis=0)
    for r, block in enumerate(todo):
      rows[r, block] = 0.0
    vals = score(rows)[:, cols].mean(1)
    for r, block in enumerate(todo):
      change = float(vals[r]) - base
      keep = (abs(change) if absolute else change) >= tau
      if not keep:
        cur, base = rows[r], float(vals[r])
      trajectory.append(dict(block=list(block), change=change, kept=bool(keep),
                             metric=base, size=int(cur.sum())))
      i += 1
      if not keep:
        break
  kept_indices = np.flatnonzero(cur).tolist()
  return BlockGreedyResult(
      kept=[candidates[j] for j in kept_indices], kept_indices=kept_indices,
      blocks=blocks, trajectory=trajectory, start_metric=start,
      final_metric=base, n_calls=score.n_calls - calls0,
      n_masks=score.n_masks - masks0, seed=seed, tau=float(tau))


def intersect_over_seeds(candidates: Sequence[Any], score_fn: ScoreFn, *,
                         tau: float, block_size: int = 5,
                         seeds: Sequence[int] = (0, 1, 2),
                         absolute: bool = True, max_masks: int = 16,
                         prompts: Sequence[int] | None = None
                         ) -> SeedIntersection:
  """`block_greedy` under each seed; the candidates every pass keeps.

  Masks shared between passes (the all-ablated start, at least) are scored
  once.

  Args:
    candidates, score_fn, tau, block_size, absolute, max_masks, prompts:
      as `block_greedy`.
    seeds: seeds of the candidate orders (the paper: 3).

  Returns:
    SeedIntersection.
  """
  if not seeds:
    raise errors.ConfigError('intersect_over_seeds needs at least one seed')
  score = cached(score_fn)
  per_seed = {int(s): block_greedy(candidates, score, tau=tau,
                                   block_size=block_size, seed=int(s),
                                   absolute=absolute, max_masks=max_masks,
                                   prompts=prompts)
              for s in seeds}
  common = set.intersection(*(set(r.kept_indices) for r in per_seed.values()))
  kept_indices = sorted(common)
  return SeedIntersection(kept=[candidates[j] for j in kept_indices],
                          kept_indices=kept_indices, per_seed=per_seed)


def tau_sweep(candidates: Sequence[Any], score_fn: ScoreFn, *,
              taus: Sequence[float], block_size: int = 5,
              seeds: Sequence[int] = (0, 1, 2), absolute: bool = True,
              max_masks: int = 16, prompts: Sequence[int] | None = None
              ) -> dict[float, SeedIntersection]:
  """`intersect_over_seeds` for every tau, sharing one score memory.

  Args:
    candidates, score_fn, block_size, seeds, absolute, max_masks, prompts:
      as `intersect_over_seeds`.
    taus: the thresholds (the paper swept 0.1 to 0.8).

  Returns:
    {tau: SeedIntersection}; `.kept` is the set kept at that tau.
  """
  score = cached(score_fn)
  return {float(t): intersect_over_seeds(
      candidates, score, tau=float(t), block_size=block_size, seeds=seeds,
      absolute=absolute, max_masks=max_masks, prompts=prompts)
          for t in taus}
