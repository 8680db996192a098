"""Regrouped greedy generation against batches run to their end.

`run_config` builds a pipeline context (model, prompts) and generates the
harmful test prompts under each condition twice in the same process: every
batch run until its last row stops (`eval.generation_phases` = ()), then
with the config's phases (pipeline/regrouped.py), each timed warm (compiled
by an untimed first call). Conditions: no intervention (the tuned model
refuses most harmful prompts: short rows with a few long answers), and the
model's refusal direction ablated when its checkpoint folder has
`refusal_direction.json` (most rows answer to the end). Rows whose tokens
differ between the two are counted: regrouping changes no row's
computation, but a batch of another size can round differently.
"""

import os
import time

import numpy as np

from refusal_jax import errors
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.organisms import behaviour
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import evaluation


def _timed(fn):
  fn()
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def run_config(config, mesh=None) -> dict:
  """The measurements (module docstring) as a JSON-ready dict.

  Args:
    config: a dissection config (configs/dissect_*.py); its harmful test
      prompts, `eval.max_new_tokens`, `eval.batch_size`,
      `eval.generation_phases` and `eval.continue_batch_size` are used.
    mesh: optional device mesh.

  Raises:
    errors.ConfigError: the config has no generation phases to compare.
  """
  phases = tuple(int(p) for p in config.eval.generation_phases)
  if not phases:
    raise errors.ConfigError(
        'eval.generation_phases is empty: nothing to compare the plain '
        'batches with')
  ctx = context_lib.build_context(config, mesh=mesh)
  harmful = evaluation.eval_sets(ctx)[0]
  rows = evaluation.eval_rows(ctx)
  conditions = {'none': None}
  if os.path.exists(os.path.join(ctx.model.path or '',
                                 behaviour.DIRECTION_FILE)):
    sel = behaviour.load_direction(ctx.model.path)
    conditions['direction_ablation'] = DirectionalAblation(
        sel.direction, skip_ids=ctx.direction_skip_array)
  g = int(config.eval.max_new_tokens)
  out = dict(model=ctx.model.path, n_prompts=len(harmful),
             max_new_tokens=g, batch_rows=rows, phases=list(phases),
             continue_batch_size=int(config.eval.continue_batch_size),
             conditions={})
  for name, iv in conditions.items():
    res = {}
    for label, ph in (('plain', ()), ('regrouped', phases)):
      ctx.config.eval.generation_phases = ph
      res[label] = _timed(lambda: evaluation.generate(ctx, harmful, iv, g,
                                                      rows=rows))
    ctx.config.eval.generation_phases = phases
    (plain, t_plain), (regr, t_regr) = res['plain'], res['regrouped']
    length = evaluation.completion_mask(
        plain, ctx.model.config.eos_token_ids).sum(1)
    out['conditions'][name] = dict(
        plain_seconds=round(t_plain, 2), regrouped_seconds=round(t_regr, 2),
        speedup=round(t_plain / t_regr, 2),
        rows_differing=int((plain != regr).any(1).sum()),
        mean_length=round(float(length.mean()), 1),
        rows_at_limit=int((length >= g).sum()))
  return out
