"""Stage 1: the refusal direction and the SAE features nearest to it.

Candidates r_{p,l} = mean_harmful - mean_harmless of resid_pre[l] at each
post-instruction position p (Arditi et al. 2024), computed in one batched pass
with float32 accumulation. Every candidate is scored with vmapped
interventions (no Python loop over forward passes):

* bypass: mean refusal metric on harmful validation prompts with r ablated
  everywhere (lower = better jailbreak); with
  `direction.skip_special_tokens`, everywhere but at the tokenizer's special
  tokens, as every other ablation of the direction in the run;
* induce: mean refusal metric on harmless validation prompts with +r added at
  resid_pre[l] (must be >= `induce_min` to count as a refusal direction);
* kl: KL(clean || ablated) of last-position distributions on harmless
  validation prompts (must be <= `kl_max`).

Candidates in the last `prune_layer_fraction` of layers and in the first
`min_layer_fraction` are not scored (NaN); of the others, the one with the
lowest bypass score is kept. Then the SAE latents whose decoder rows
are most cosine-similar to r (signed, largest first) are collected, or ranked
by first-order attribution when `features.ranking = 'attribution'`. With
several SAEs (`config.saes`) every feature of the space is ranked, and
`features.k_per_layer` keeps the top K of each SAE (the paper's top K per
layer) instead of the top `features.top_k` over all.
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from refusal_jax import errors
from refusal_jax.interventions import attribution
from refusal_jax.interventions.directions import ActAdd, DirectionalAblation
from refusal_jax.interventions.directions import unit
from refusal_jax.pipeline import directions
from refusal_jax.pipeline.context import Context
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import KLFromClean


def _ablate(row, shared):
  return DirectionalAblation(row, skip_ids=shared)


def _induce(row, shared):
  return ActAdd(vector=row[0], coeff=shared, layer_weights=row[1])


def candidate_directions(ctx: Context) -> np.ndarray:
  """[P, L, D] difference-in-means candidates at the post-instruction tokens."""
  cfg = ctx.config.direction
  n_pos = cfg.n_positions or ctx.n_eoi

  def compute():
    r = directions.diff_in_means(
        ctx.model.params, ctx.model.config,
        (ctx.prompts['harmful_train'].ids, ctx.prompts['harmful_train'].mask),
        (ctx.prompts['harmless_train'].ids,
         ctx.prompts['harmless_train'].mask),
        layers=range(ctx.model.config.num_layers), n_positions=n_pos,
        batch_size=ctx.chunks.prompts)
    errors.check_finite('the mean residual activations', r)  # before saving
    return dict(r=r)

  return ctx.memo('direction')('candidates', compute)['r']


def score_candidates(ctx: Context, cands: np.ndarray, progress=None) -> dict:
  """Bypass, induce and KL scores of every candidate [C, D], vmapped."""
  model, n_layers = ctx.model, ctx.model.config.num_layers
  flat = cands.reshape(-1, cands.shape[-1])
  layer_of = np.tile(np.arange(n_layers), cands.shape[0])
  # Candidates outside the layers select() may pick (below
  # direction.min_layer_fraction or in the pruned last layers) are not
  # scored: NaN.
  first, last = _layer_range(ctx)
  scored = (layer_of >= first) & (layer_of < last)
  if not scored.any():
    raise errors.ConfigError(
        f'direction.min_layer_fraction and prune_layer_fraction leave no '
        f'layer to score (layers {first} to {last - 1} of {n_layers})')
  rows = flat[scored]
  hv, sv = ctx.prompts['harmful_val'], ctx.prompts['harmless_val']
  kw = dict(metric=ctx.metric, chunks=ctx.chunk_sizes, progress=progress,
            mesh=ctx.mesh)
  memo = ctx.memo('direction')
  skip = ctx.direction_skip_array
  bypass = memo('bypass', lambda: dict(v=engine.sweep(
      model.params, model.config, hv.ids, hv.mask, rows, _ablate,
      shared=skip, op='direction/bypass', **kw).mean(1)))['v']
  induce = memo('induce', lambda: dict(v=engine.sweep(
      model.params, model.config, sv.ids, sv.mask,
      (rows, np.eye(n_layers, dtype=np.float32)[layer_of[scored]]), _induce,
      shared=jnp.float32(ctx.config.direction.induce_coeff),
      op='direction/induce', **kw).mean(1)))['v']
  clean = model.forward(sv.ids, sv.mask, logits_at='last').logits[:, 0]
  kw['metric'] = KLFromClean()
  kl = memo('kl', lambda: dict(v=engine.sweep(
      model.params, model.config, sv.ids, sv.mask, rows, _ablate,
      shared=skip, targets=np.asarray(clean), op='direction/kl',
      **kw).mean(1)))['v']

  def full(v):
    out = np.full(len(flat), np.nan, np.float32)
    out[scored] = v
    return out

  bypass, induce, kl = full(bypass), full(induce), full(kl)
  return dict(bypass=bypass, induce=induce, kl=kl, layer=layer_of,
              position=np.repeat(np.arange(cands.shape[0]) - cands.shape[0],
                                 n_layers))


def _layer_range(ctx: Context) -> tuple[int, int]:
  """[first, last) layers whose candidates are scored and may be chosen."""
  cfg = ctx.config.direction
  n_layers = ctx.model.config.num_layers
  return (int(n_layers * cfg.get('min_layer_fraction', 0.0)),
          int(n_layers * (1.0 - cfg.prune_layer_fraction)))


def select(ctx: Context, scores: dict) -> tuple[int, str]:
  """Index of the chosen candidate and a note on how it was chosen."""
  cfg = ctx.config.direction
  _, max_layer = _layer_range(ctx)
  finite = np.isfinite(scores['bypass']) & np.isfinite(scores['kl']) & (
      np.isfinite(scores['induce']))
  layer_ok = finite & (scores['layer'] < max_layer)
  ok = layer_ok & (scores['kl'] <= cfg.kl_max) & (
      scores['induce'] >= cfg.induce_min)
  note = 'passed all filters'
  if not ok.any():
    if not cfg.fallback or not layer_ok.any():
      raise errors.ConfigError(
          'no refusal-direction candidate passes the KL / induce filters; '
          'relax direction.kl_max or direction.induce_min')
    ok = layer_ok
    note = 'no candidate passed the KL/induce filters; chose among all layers'
    logging.warning('direction selection: %s', note)
  best = int(np.argmin(np.where(ok, scores['bypass'], np.inf)))
  return best, note


def _feature_scores(ctx: Context, sae, direction) -> tuple[np.ndarray, ...]:
  """(score [A], decoder cosine [A]) of one SAE's latents; higher = first."""
  cfg = ctx.config.features
  cos = np.asarray(unit(sae.W_dec.astype(jnp.float32)) @ unit(
      jnp.asarray(direction)))
  if cfg.ranking == 'cosine':
    return (cos if cfg.signed else np.abs(cos)), cos
  if cfg.ranking == 'attribution':
    ps = ctx.prompts['harmful_train']
    metric = ctx.metric
    effect = np.asarray(attribution.latent_attribution(
        ctx.model.params, ctx.model.config, sae, jnp.asarray(ps.ids),
        jnp.asarray(ps.mask), lambda out: metric(out.logits[:, 0]).mean(),
        skip_ids=ctx.skip_array))
    return -effect, cos
  raise errors.ConfigError(
      f"features.ranking {cfg.ranking!r}: expected 'cosine' or "
      "'attribution'")


def nearest_features(ctx: Context, direction: np.ndarray) -> dict:
  """Top-K features by signed decoder cosine (or by attribution).

  Over the feature space of `ctx.space`: the top `features.top_k` of all its
  features, or with `features.k_per_layer` the top K of each SAE, best
  first.
  """
  cfg = ctx.config.features
  scores = [_feature_scores(ctx, sae, direction) for sae in ctx.space.saes]
  score = np.concatenate([sc for sc, _ in scores])
  cos = np.concatenate([c for _, c in scores])
  k_per = cfg.get('k_per_layer') or 0
  if k_per:
    top = np.concatenate([
        ctx.space.feature_ids(s, np.argsort(-sc)[:k_per])
        for s, (sc, _) in enumerate(scores)])
    top = top[np.argsort(-score[top], kind='stable')]
  else:
    top = np.argsort(-score)[:cfg.top_k]
  out = dict(features=top.tolist(), cosine=cos[top].tolist(),
             score=score[top].tolist())
  if len(ctx.space.saes) > 1:  # each feature's SAE
    out['hooks'] = [ctx.space.saes[s].hook_name
                    for s in ctx.space.locate(top)[0]]
  return out


def run(ctx: Context, progress=None) -> tuple[dict, dict]:
  """Stage 1. Returns (JSON summary, arrays to save)."""
  cands = candidate_directions(ctx)
  scores = score_candidates(ctx, cands, progress)
  best, note = select(ctx, scores)
  direction = cands.reshape(-1, cands.shape[-1])[best]
  feats = nearest_features(ctx, direction)
  hv = ctx.prompts['harmful_val']
  baseline = float(np.mean(np.asarray(ctx.metric(ctx.model.forward(
      hv.ids, hv.mask, logits_at='last').logits[:, 0]))))
  summary = dict(
      layer=int(scores['layer'][best]),
      position=int(scores['position'][best]),
      bypass_score=float(scores['bypass'][best]),
      induce_score=float(scores['induce'][best]),
      kl=float(scores['kl'][best]), baseline_score=baseline,
      selection_note=note, n_candidates=int(len(scores['bypass'])),
      n_features=len(feats['features']), **feats)
  arrays = dict(direction=direction, candidates=cands,
                **{f'score_{k}': v for k, v in scores.items()})
  return summary, arrays
