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

The stage compiles a fixed number of functions, whatever the number of
layers, positions, candidates and prompts (`n_compiles` of direction.json):
the two training sets share one padded shape for the mean activations, the
two validation sets one for their clean logits (and the baseline), and the
three scores are one compiled sweep. Each candidate row is (r, layer
one-hot, ablate flag, add coefficient): a bypass or KL row ablates r (its
addition is 0), an induce row adds it at resid_pre of its layer (its
ablation is of the zero vector), and the metric is the KL where the
prompt's `kl` target is set, the refusal metric elsewhere. Adding or
ablating 0 leaves the residual bit for bit as it is, so the scores are
those of the separate ablations and additions.

Candidates in the last `prune_layer_fraction` of layers and in the first
`min_layer_fraction` are not scored (NaN); of the others, the one with the
lowest bypass score is kept. Then the SAE latents whose decoder rows
are most cosine-similar to r (signed, largest first) are collected, or ranked
by first-order attribution when `features.ranking = 'attribution'`. With
several SAEs (`config.saes`) every feature of the space is ranked, and
`features.k_per_layer` keeps the top K of each SAE (the paper's top K per
layer) instead of the top `features.top_k` over all.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from refusal_jax import errors
from refusal_jax.interventions import attribution
from refusal_jax.interventions.directions import ActAdd, DirectionalAblation
from refusal_jax.models import matmul_precision
from refusal_jax.models import transformer
from refusal_jax.pipeline import directions
from refusal_jax.pipeline.context import Context
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import Metric, kl_div


def _score_row(row, shared):
  """Ablation of row['ablate'] * r everywhere (but at `shared` ids) and
  addition of row['coeff'] * r at resid_pre of the layer of row['layer']."""
  return (DirectionalAblation(row['vector'] * row['ablate'], skip_ids=shared),
          ActAdd(vector=row['vector'], coeff=row['coeff'],
                 layer_weights=row['layer']))


@dataclasses.dataclass(frozen=True)
class _Score:
  """Per prompt: KL(clean || intervened) where targets['kl'] is set, the
  refusal metric of the intervened logits elsewhere."""
  metric: Metric

  def __call__(self, logits, targets):
    kl = kl_div(targets['clean'], logits)
    return jnp.where(targets['kl'] > 0, kl, self.metric(logits))


@functools.partial(jax.jit, static_argnames=('config', 'metric'))
def _clean(params, config, ids, mask, *, metric):
  """Last-position logits [P, V] float32 and their metric [P]."""
  logits = transformer.forward(params, config, ids, attention_mask=mask,
                               logits_at='last').logits[:, 0]
  return logits, metric(logits)


def _padded(sets) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
  """Prompt sets padded to one [P, T] shape, and each set's own P.

  Columns are added on the left (mask 0, left padding as the encoding's),
  rows by repeating the last one; a padded row's results are dropped.
  """
  t = max(ps.ids.shape[1] for ps in sets)
  n = max(len(ps) for ps in sets)
  out = []
  for ps in sets:
    cols = ((0, n - len(ps)), (t - ps.ids.shape[1], 0))
    out.append((np.pad(ps.ids, cols, mode='edge'),
                np.pad(np.pad(ps.mask, ((0, 0), cols[1])),
                       ((0, cols[0][1]), (0, 0)), mode='edge')))
  return out, n


def _precision(ctx: Context):
  """The run's matmul precision scope (models/matmul_precision.py)."""
  return matmul_precision.scope(ctx.config.get('matmul_precision', 'auto'),
                                ctx.model.dtype)


def candidate_directions(ctx: Context) -> np.ndarray:
  """[P, L, D] difference-in-means candidates at the post-instruction tokens."""
  cfg = ctx.config.direction
  n_pos = cfg.n_positions or ctx.n_eoi

  def compute():
    with _precision(ctx):
      r = directions.diff_in_means(
          ctx.model.params, ctx.model.config,
          (ctx.prompts['harmful_train'].ids,
           ctx.prompts['harmful_train'].mask),
          (ctx.prompts['harmless_train'].ids,
           ctx.prompts['harmless_train'].mask),
          layers=range(ctx.model.config.num_layers), n_positions=n_pos,
          batch_size=ctx.chunks.prompts)
    errors.check_finite('the mean residual activations', r)  # before saving
    return dict(r=r)

  return ctx.memo('direction')('candidates', compute)['r']


def _clean_logits(ctx: Context, padded) -> list[tuple[np.ndarray, ...]]:
  """(clean last logits [P, V], metric [P]) of each padded prompt set."""
  model = ctx.model
  with _precision(ctx):
    return [tuple(np.asarray(a) for a in _clean(
        model.params, model.config, ids, mask, metric=ctx.metric))
            for ids, mask in padded]


def score_candidates(ctx: Context, cands: np.ndarray, progress=None) -> dict:
  """Bypass, induce and KL scores of every candidate [C, D], vmapped.

  One compiled sweep for all three (module docstring); the validation sets
  are padded to one shape (`_padded`).
  """
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
  padded, n_pad = _padded([hv, sv])
  memo = ctx.memo('direction')
  clean = {}

  def score(op, i, ablate, coeff, kl):
    if i not in clean:  # only for a sweep not memoised yet
      clean.update(enumerate(_clean_logits(ctx, padded)))
    n = len(rows)
    args = dict(vector=rows,
                layer=np.eye(n_layers, dtype=np.float32)[layer_of[scored]],
                ablate=np.full(n, ablate, np.float32),
                coeff=np.full(n, coeff, np.float32))
    targets = dict(clean=clean[i][0], kl=np.full(n_pad, kl, np.float32))
    with _precision(ctx):
      v = engine.sweep(
          model.params, model.config, *padded[i], args, _score_row,
          metric=_Score(ctx.metric), shared=ctx.direction_skip_array,
          targets=targets, chunks=ctx.chunk_sizes, op=f'direction/{op}',
          progress=progress, mesh=ctx.mesh)
    return dict(v=v[:, :len((hv, sv)[i])].mean(1))

  coeff = float(ctx.config.direction.induce_coeff)
  bypass = memo('bypass', lambda: score('bypass', 0, 1.0, 0.0, 0.0))['v']
  induce = memo('induce', lambda: score('induce', 1, 0.0, coeff, 0.0))['v']
  kl = memo('kl', lambda: score('kl', 1, 1.0, 0.0, 1.0))['v']

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


def _unit(x) -> np.ndarray:
  """x / (|x| + 1e-8) over the last axis in float32 numpy (no compile)."""
  x = np.asarray(x).astype(np.float32)
  return x / (np.linalg.norm(x, axis=-1, keepdims=True) + np.float32(1e-8))


def _feature_scores(ctx: Context, sae, direction) -> tuple[np.ndarray, ...]:
  """(score [A], decoder cosine [A]) of one SAE's latents; higher = first.

  The cosines are computed on the host: one matrix-vector product per SAE,
  whose eager JAX version compiled per SAE width.
  """
  cfg = ctx.config.features
  cos = _unit(sae.W_dec) @ _unit(direction)
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
  padded, _ = _padded([hv, ctx.prompts['harmless_val']])
  baseline = float(np.mean(_clean_logits(ctx, padded[:1])[0][1][:len(hv)]))
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
