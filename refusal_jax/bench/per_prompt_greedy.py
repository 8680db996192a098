"""Per-prompt block-wise greedy: P prompts at once against one at a time.

In one process, on the same model, SAEs, candidates and prompts, `run`
times stage 2's per-prompt search (pipeline/paper/per_prompt.py) two ways:

* batched: every prompt's and seed's pass advances together; each step is
  one paired sweep (sweeps/paired.py) of fixed shape, each prompt under its
  own masks;
* one prompt at a time: for each prompt, `block_greedy.intersect_over_seeds`
  on that prompt alone, scored by `engine.feature_sweep` on a one-prompt set
  (all of the same width; it compiles once per mask count and set of SAEs
  the masks touch, as `feature_sweep` does), with as many masks per call as
  the batched search's lookahead.

The batched path's time includes its first call (the prompts' clean P('I'),
which the thresholds need; it compiles the sweep); the one-prompt path is
given the thresholds. The sets found are asserted equal. For each path: wall
seconds, the part spent compiling (JAX's compile events,
pipeline/stage_stats.py), the evaluations the search asked for (one = one
prompt under one mask; the batched path also reports the evaluations its
padded calls computed) and evaluations per second of the warm part; the ratio
is the one-at-a-time wall time over the batched one (also without compile
time).
"""

import json
import os
import time

import numpy as np

from refusal_jax import asset_paths
from refusal_jax import errors
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import direction as direction_stage
from refusal_jax.pipeline import stage_stats
from refusal_jax.pipeline.context import Context, PromptSet
from refusal_jax.pipeline.paper import block_greedy
from refusal_jax.pipeline.paper import per_prompt
from refusal_jax.pipeline.paper import per_prompt_stage
from refusal_jax.pipeline.paper import stages
from refusal_jax.sweeps import engine


class _Clock:
  """Wall and compile seconds of a block of work."""

  def __enter__(self):
    stage_stats.StageMeter()  # registers the compile listener
    self.t0, self.c0 = time.time(), stage_stats.compile_seconds()
    return self

  def __exit__(self, *exc):
    self.wall = time.time() - self.t0
    self.compile = stage_stats.compile_seconds() - self.c0
    return False


def _direction(path: str) -> np.ndarray:
  with open(path) as f:
    return np.asarray(json.load(f)['direction'], np.float32)


def _computed(rows: np.ndarray, masks: int, prompts: int) -> int:
  """Evaluations a paired sweep computes for rows of prompts [N] (padding
  included: whole calls of masks x prompts rows per prompt chunk)."""
  per_chunk = np.bincount(np.asarray(rows) // prompts)
  size = masks * prompts
  return int(sum(-(-n // size) * size for n in per_chunk))


def run(ctx: Context, direction_path: str, *, n_prompts: int, tau: float,
        tau_rule: str = 'absolute') -> dict:
  """Times both paths on `ctx` (its config's paper.greedy and chunks).

  Args:
    ctx: a paper-mode pipeline context (model, feature space, prompts).
    direction_path: a refusal_direction.json ({'direction': [D]}); the
      candidates are its nearest features (`direction.nearest_features`).
    n_prompts: harmful training prompts searched.
    tau: the threshold.
    tau_rule: 'absolute' or 'relative' (per_prompt_stage.thresholds_for).

  Returns:
    The measurements (module docstring) as a dict.
  """
  pg, g = ctx.config.paper.greedy, ctx.config.greedy
  ps = ctx.prompts['harmful_train']
  if len(ps) < n_prompts:
    raise errors.ConfigError(f'{n_prompts} prompts asked, {len(ps)} there')
  ps = ps.subset(range(n_prompts))
  feats = direction_stage.nearest_features(
      ctx, _direction(direction_path))['features']
  metric = stages.p_refusal(ctx)
  seeds = tuple(int(s) for s in pg.seeds)
  ahead = per_prompt_stage.lookahead(ctx, len(seeds))
  chunks = ctx.chunk_sizes.chunks(per_prompt_stage.SWEEP_OP)
  computed = [0]
  inner = per_prompt_stage.paired_fn(ctx, ps, feats, metric,
                                     ctx.memo('bench'))

  def counted(rows, masks):
    computed[0] += _computed(rows, chunks.masks, chunks.prompts)
    return inner(rows, masks)

  score = per_prompt.PairedScore(counted, n_prompts)
  with _Clock() as batched:  # the clean P('I') included (and compiling)
    clean = score(range(n_prompts),
                  np.zeros((n_prompts, len(feats)), np.float32))
    thr = per_prompt_stage.thresholds_for(tau_rule, tau, clean)
    found = per_prompt.per_prompt_sets(
        len(feats), score, {'x': thr}, seeds=seeds,
        block_size=pg.block_size, absolute=pg.absolute,
        lookahead=ahead)['x']
  one_evals, one_calls = 0, 0
  loop_sets = []
  with _Clock() as loop:
    for p in range(n_prompts):
      single = PromptSet([ps.instructions[p]], ps.ids[p:p + 1],
                         ps.mask[p:p + 1])
      cached = block_greedy.CachedScore(
          lambda masks, single=single: engine.feature_sweep(
              ctx.model.params, ctx.model.config, ctx.space, single.ids,
              single.mask, np.asarray(feats), masks, metric=metric,
              mode=g.mode, value=g.value, chunks=engine.Chunks(
                  masks=ahead, prompts=1), op='bench/one_prompt',
              skip_ids=ctx.skip_array, mesh=ctx.mesh))
      res = block_greedy.intersect_over_seeds(
          feats, cached, tau=thr[p], block_size=pg.block_size, seeds=seeds,
          absolute=pg.absolute, max_masks=ahead)
      loop_sets.append([feats.index(f) for f in res.kept])
      one_evals += cached.n_masks
      one_calls += cached.n_calls
  batched_sets = [r.kept_indices for r in found]
  if batched_sets != loop_sets:
    raise AssertionError('the batched and the one-prompt searches found '
                         f'different sets: {batched_sets} != {loop_sets}')

  def path(clock, evals, calls, **extra):
    warm = max(clock.wall - clock.compile, 1e-9)
    return dict(seconds=round(clock.wall, 3),
                compile_seconds=round(clock.compile, 3),
                warm_seconds=round(warm, 3), evaluations=int(evals),
                calls=int(calls), evals_per_s=round(evals / warm, 1),
                **extra)

  b = path(batched, score.n_evals, score.n_calls,
           evaluations_computed=computed[0])
  o = path(loop, one_evals, one_calls)
  return dict(
      n_prompts=n_prompts, n_candidates=len(feats), seeds=list(seeds),
      block_size=int(pg.block_size), tau=float(tau), tau_rule=tau_rule,
      lookahead=ahead, chunk_masks=chunks.masks,
      chunk_prompts=chunks.prompts, set_sizes=[len(s) for s in
                                               batched_sets],
      same_sets=True, batched=b, one_at_a_time=o,
      speedup=round(o['seconds'] / max(b['seconds'], 1e-9), 2),
      speedup_warm=round(o['warm_seconds'] / max(b['warm_seconds'], 1e-9),
                         2))



def run_config(config, *, n_prompts: int, tau: float,
               tau_rule: str = 'absolute', mesh=None) -> dict:
  """`run` on the paper-mode context of an organism's pipeline config.

  Args:
    config: a pipeline config of an embedded organism (`config.organism`,
      e.g. configs/benchmark_per_prompt_greedy.py); its candidates are the
      nearest features of the organism's shipped refusal direction
      (`features.*`), its seeds, block size and chunks those of the search.
    n_prompts: harmful training prompts searched (at least that many are
      loaded).
    tau, tau_rule: as `run`.
    mesh: optional device mesh.

  Returns:
    `run`'s measurements.
  """
  if not config.get('organism'):
    raise errors.ConfigError(
        'the per-prompt greedy benchmark needs an organism config (its '
        'shipped refusal_direction.json gives the candidates)')
  config = config.copy_and_resolve_references()
  config.data.n_train = max(config.data.n_train, n_prompts)
  config.greedy.n_prompts = n_prompts
  ctx = context_lib.build_context(config, mesh)
  path = os.path.join(asset_paths.organism_path(config.organism),
                      'refusal_direction.json')
  return run(ctx, path, n_prompts=n_prompts, tau=tau, tau_rule=tau_rule)
