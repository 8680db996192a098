"""Stage 4: redundant ("hydra") features that stay silent until others are ablated.

With the ablation set S (the stage-3 FM set) edited at the searched SAE's
site (each SAE's features at its own site, with several), the latents of each downstream SAE H are compared with the clean run on
the harmful prompts:

* dormant: never active (max over prompts and real tokens is 0) when clean;
* awakened: dormant and active (> `hydra.eps`) once S is ablated;
* redundant: awakened, and ablating it at H on top of S lowers the mean refusal
  metric by more than `hydra.min_effect` (it was compensating for S).

For the redundant features we report where they fire under the ablation: the
BOS token, the other chat-template tokens, or the instruction's tokens
(`context.token_classes`). A downstream SAE is needed (after the deepest
searched SAE): ablations at one site cannot change that same site's latents
on the prompt. Under
`sae_skip_special_tokens` both edits leave special tokens unchanged and their
latents there are not counted.
"""

import numpy as np

from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.pipeline import latents
from refusal_jax.pipeline.context import CLASS_NAMES, Context
from refusal_jax.sae import space
from refusal_jax.sweeps import engine


def _set_plus_one(row, shared):
  edits, hydra_sae, skip_ids = shared
  return (*edits, SAEEdit(sae=hydra_sae, latent_mask=row, skip_ids=skip_ids))


def downstream(ctx: Context) -> list:
  """The hydra SAEs after the space's deepest SAE."""
  last = space.pass_order(ctx.space.saes[-1])
  return [h for h in ctx.hydra_saes if space.pass_order(h) > last]


def run(ctx: Context, ablate: list[int], progress=None) -> dict:
  """Stage 4. Returns the JSON summary."""
  cfg = ctx.config.hydra
  hydras = downstream(ctx)
  if not hydras or not ablate:
    return dict(n_redundant=0, n_awakened=0, token_positions={},
                redundant=[], note=('no SAE downstream of the searched site'
                                    if not hydras else 'empty ablation set'))
  ps = ctx.prompts['harmful_train']
  ps = ps.subset(range(min(cfg.n_prompts, len(ps))))
  edit = ctx.feature_edits(ablate)
  classes = ctx.token_classes(ps)
  counts = {v: 0.0 for v in CLASS_NAMES.values()}
  redundant, n_awake, per_sae = [], 0, []
  base = ctx.metric(ctx.model.forward(ps.ids, ps.mask, interventions=edit,
                                      logits_at='last').logits[:, 0])
  base = float(np.mean(np.asarray(base)))
  for h in hydras:
    memo = ctx.memo('hydra')
    key = h.hook_name.replace('.', '_')
    clean = memo(f'{key}_clean', lambda: dict(f=latents.site_latents(
        ctx.model, h, ps, ctx.chunks.prompts, skip_ids=ctx.skip_ids)))['f']
    ablated = memo(f'{key}_ablated', lambda: dict(f=latents.site_latents(
        ctx.model, h, ps, ctx.chunks.prompts, interventions=edit,
        skip_ids=ctx.skip_ids)))['f']
    dormant = ~latents.active_latents(clean)
    awake = np.flatnonzero(dormant & latents.active_latents(ablated, cfg.eps))
    awake = awake[np.argsort(-ablated.max(axis=(0, 1))[awake])][
        :cfg.max_candidates]
    n_awake += len(awake)
    if not len(awake):
      per_sae.append(dict(hook=h.hook_name, n_awakened=0, n_redundant=0))
      continue
    rows = np.eye(h.d_sae, dtype=np.float32)[awake]
    vals = memo(f'{key}_effects', lambda: dict(v=engine.sweep(
        ctx.model.params, ctx.model.config, ps.ids, ps.mask, rows,
        _set_plus_one, shared=(edit, h, ctx.skip_array),
        metric=ctx.metric, start_layer=ctx.space.saes[0].layer,
        chunks=ctx.chunk_sizes,
        op='hydra', progress=progress, mesh=ctx.mesh)))['v']
    effect = vals.mean(1) - base
    red = awake[effect < -cfg.min_effect]
    for a in red:
      fires = ablated[..., a] > cfg.eps
      for c, name in CLASS_NAMES.items():
        counts[name] += float((fires & (classes == c)).sum())
      redundant.append(dict(hook=h.hook_name, latent=int(a), effect=float(
          effect[list(awake).index(a)])))
    per_sae.append(dict(hook=h.hook_name, n_awakened=int(len(awake)),
                        n_redundant=int(len(red))))
  total = sum(counts.values())
  fractions = {k: (v / total if total else 0.0) for k, v in counts.items()}
  return dict(n_redundant=len(redundant), n_awakened=n_awake,
              token_positions=fractions, redundant=redundant,
              per_sae=per_sae, set_metric=base)
