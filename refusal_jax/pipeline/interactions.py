"""Stage 3: interaction discovery with a factorization machine.

The pool is the stage-2 minimal set plus the other features (SAE latents, of
every SAE of the feature space) active on the harmful prompts (most active
first, up to `fm.pool_size`). Random ablation masks over the pool are
evaluated with the sweep engine (one row per mask, target y = mean refusal
metric over the prompts). Mask densities are drawn
uniformly from [`fm.density_min`, `fm.density_max`] so that both sparse and
dense ablations are seen. Masks are evaluated in blocks of
4 * `chunks.masks` (the last one padded), with every SAE holding a pool
feature edited in each, so the stage runs one compiled sweep whatever the
number of masks, features and SAEs; the pool's activity is one forward
pass per prompt batch for all SAEs (`latents.space_peaks`). On the same
masks two models are fitted, with a held-out split for validation:

* a second-order factorization machine (rank `fm.rank`), which models
  pairwise interactions between ablated features;
* a linear probe (the same model without the pairwise term).

From each a feature set of the same size is built greedily on its
predictions (`fm.model.greedy_set`), so the two can be compared side by side.
"""

import numpy as np

from refusal_jax import fm
from refusal_jax.pipeline import latents
from refusal_jax.pipeline.context import Context
from refusal_jax.pipeline.greedy import evaluate_sets


def build_pool(ctx: Context, minimal: list[int]) -> tuple[list[int], dict]:
  """Minimal set + most active other latents on the harmful prompts."""
  cfg = ctx.config.fm
  ps = ctx.prompts['harmful_train']
  ps = ps.subset(range(min(cfg.n_prompts, len(ps))))
  strength = ctx.memo('interactions')('pool', lambda: dict(
      s=latents.space_peaks(ctx.model, ctx.space, ps, ctx.chunks.prompts,
                            skip_ids=ctx.skip_ids).mean(0)))['s']
  # strength: [A] mean over prompts of each feature's max over tokens (A: the
  # feature space, all SAEs' latents)
  others = [int(a) for a in np.argsort(-strength)
            if strength[a] > 0 and int(a) not in set(minimal)]
  pool = list(minimal) + others[:max(0, cfg.pool_size - len(minimal))]
  stats = dict(n_active=int((strength > 0).sum()),
               pool_strength=strength[pool].tolist())
  return pool, stats


def sample_masks(n_masks: int, n_features: int, density_min: float,
                 density_max: float, seed: int) -> np.ndarray:
  """[M, I] 0/1 masks with per-mask density ~ U(density_min, density_max)."""
  rng = np.random.default_rng(seed)
  q = rng.uniform(density_min, density_max, size=(n_masks, 1))
  return (rng.random((n_masks, n_features)) < q).astype(np.float32)


def _evaluate_block(ctx: Context, ps, pool: list[int], masks: np.ndarray,
                    rows: int, saes: list[int], progress) -> np.ndarray:
  """[M] mean metric over the prompts of each mask [M, I] over the pool.

  The block is padded to `rows` masks with empty ones (their values are
  dropped), and every SAE of `saes` (those holding a pool feature) is
  edited in every call (an empty edit where a block sets none of its
  features), so that every block of the stage runs the same compiled sweep.
  """
  n = len(masks)
  padded = np.zeros((rows, masks.shape[1]), np.float32)
  padded[:n] = masks
  vals = evaluate_sets(ctx, ps, pool, padded, progress, op='interactions',
                       edit_saes=saes)
  return vals[:n].mean(1)


def run(ctx: Context, minimal: list[int], progress=None) -> tuple[dict, dict]:
  """Stage 3. Returns (JSON summary, arrays to save)."""
  cfg = ctx.config.fm
  pool, stats = build_pool(ctx, minimal)
  ps = ctx.prompts['harmful_train']
  ps = ps.subset(range(min(cfg.n_prompts, len(ps))))
  masks = sample_masks(cfg.n_masks, len(pool), cfg.density_min,
                       cfg.density_max, ctx.config.seed)
  memo = ctx.memo('interactions')
  block = 4 * ctx.chunks.masks
  saes = sorted({int(s) for s in ctx.space.locate(pool)[0]})
  y = np.concatenate([memo(f'masks{i:06d}', lambda i=i: dict(
      y=_evaluate_block(ctx, ps, pool, masks[i:i + block],
                        min(block, len(masks)), saes, progress)))['y']
                      for i in range(0, len(masks), block)])
  n_val = max(1, int(round(cfg.val_fraction * len(y))))
  xt, yt, xv, yv = masks[n_val:], y[n_val:], masks[:n_val], y[:n_val]
  kw = dict(l2=cfg.l2, steps=cfg.steps, lr=cfg.lr, seed=ctx.config.seed)
  fm_fit = fm.fit(xt, yt, xv, yv, rank=cfg.rank, **kw)
  lin_fit = fm.fit(xt, yt, xv, yv, rank=0, **kw)
  budget = cfg.set_size or max(1, len(minimal))
  fm_set = [pool[i] for i in fm.greedy_set(fm_fit.params, len(pool), budget)]
  lin_set = [pool[i] for i in fm.greedy_set(lin_fit.params, len(pool),
                                            budget)]
  fm_effect = fm.marginal_effects(fm_fit.params)
  lin_effect = fm.marginal_effects(lin_fit.params)
  summary = dict(
      pool=pool, n_pool=len(pool), n_active=stats['n_active'],
      n_masks=int(len(y)), n_val_masks=n_val, set_size=budget,
      fm_features=fm_set, linear_probe_features=lin_set,
      fm_val_loss=fm_fit.val_loss, linear_val_loss=lin_fit.val_loss,
      fm_train_loss=fm_fit.train_loss,
      linear_train_loss=lin_fit.train_loss,
      y_variance=float(np.var(yv)),
      fm_ranking=[pool[i] for i in np.argsort(fm_effect)[:budget * 2]],
      fm_history=fm_fit.history, linear_history=lin_fit.history)
  arrays = dict(masks=masks, y=y, pool=np.asarray(pool),
                fm_effect=fm_effect, linear_effect=lin_effect,
                fm_w=fm_fit.params['w'], fm_v=fm_fit.params['v'],
                lin_w=lin_fit.params['w'])
  return summary, arrays
