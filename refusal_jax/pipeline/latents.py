"""SAE latents of prompt sets, optionally under interventions."""

import numpy as np

from refusal_jax.pipeline.context import PromptSet
from refusal_jax.sae.model import SAE


def site_latents(model, sae: SAE, ps: PromptSet, batch_size: int,
                 interventions=None) -> np.ndarray:
  """[B, T, A] float32 latents of `sae` at its site; 0 at padding."""
  out = []
  site = (sae.site, sae.layer)
  for i in range(0, len(ps), batch_size):
    ids, mask = ps.ids[i:i + batch_size], ps.mask[i:i + batch_size]
    acts = model.forward(ids, mask, capture=[site], logits_at='none',
                         interventions=interventions,
                         stop_layer=sae.layer + 1).captured[site]
    f = np.asarray(sae.encode(acts))
    out.append(f * mask[..., None])
  return np.concatenate(out)


def active_latents(f: np.ndarray, eps: float = 0.0) -> np.ndarray:
  """[A] bool, latents that fire (> eps) anywhere in f [B, T, A]."""
  return f.max(axis=(0, 1)) > eps
