"""Timing the sweep engine on a benchmark `Setup`.

`sweep` runs `engine.feature_sweep` on the Setup's model, SAEs, prompts and
masks with the config's mode, value, chunks and trimming; `timed` keeps the
best of a few calls; `time_engine` reports the engine's compile time
separately from its warm evaluations/s.

Axis letters: see refusal_jax/axes.py (M masks, P prompts).
"""

import time
from typing import Any

import numpy as np

from refusal_jax.bench.setup import Setup
from refusal_jax.pipeline import stage_stats
from refusal_jax.sweeps import engine


def _chunks(config) -> engine.Chunks:
  return engine.Chunks(masks=config.sweep.chunk_masks,
                       prompts=config.sweep.chunk_prompts)


def sweep(setup: Setup, config, sae=None, masks=None, n_prompts=None):
  """[M, P] engine metric values; `sae`, `masks`, `n_prompts` override.

  Over the Setup's feature space (`engine.feature_sweep`), or with `sae`
  (one SAE, the candidates its latents) `engine.sae_sweep`.
  """
  n_prompts = n_prompts or len(setup.input_ids)
  kw = dict(metric=setup.metric, mode=config.sweep.mode,
            value=config.sweep.value, chunks=_chunks(config),
            trim_last_layer=config.sweep.trim_last_layer, mesh=setup.mesh)
  args = (setup.input_ids[:n_prompts], setup.attention_mask[:n_prompts])
  masks = setup.masks if masks is None else masks
  params, cfg = setup.model.params, setup.model.config
  if sae is not None:
    return engine.sae_sweep(params, cfg, sae, *args, setup.candidates, masks,
                            **kw)
  return engine.feature_sweep(params, cfg, setup.space, *args,
                              setup.features, masks, **kw)


def timed(fn, repeats: int = 1):
  """(best seconds, last result) of `repeats` calls of fn()."""
  best, out = np.inf, None
  for _ in range(max(repeats, 1)):
    began = time.perf_counter()
    out = fn()
    best = min(best, time.perf_counter() - began)
  return best, out


def time_engine(setup: Setup, config) -> dict[str, Any]:
  """Engine compile seconds and count, warm evaluations/s, [M, P] values.

  The compile time is that of one call on a single chunk (which compiles
  every function the sweep uses) minus the same call's warm time;
  `n_compiles` counts the backend compilations of that first call, and
  `n_compiles_after` those of every later call (0 when a sweep of any
  size reuses what the single chunk compiled).
  """
  n_masks, n_prompts = setup.masks.shape[0], setup.input_ids.shape[0]
  one_masks = setup.masks[:min(config.sweep.chunk_masks, n_masks)]
  one_prompts = min(config.sweep.chunk_prompts, n_prompts)
  with stage_stats.StageMeter() as first:
    cold, _ = timed(lambda: sweep(setup, config, masks=one_masks,
                                  n_prompts=one_prompts))
  with stage_stats.StageMeter() as later:
    warm, _ = timed(lambda: sweep(setup, config, masks=one_masks,
                                  n_prompts=one_prompts))
    seconds, values = timed(lambda: sweep(setup, config),
                            config.sweep.repeats)
  return dict(compile_seconds=max(cold - warm, 0.0),
              n_compiles=first.stats['n_compiles'],
              n_compiles_after=later.stats['n_compiles'], seconds=seconds,
              evals_per_s=n_masks * n_prompts / seconds, values=values)
