"""SAE latents of prompt sets, optionally under interventions, and the SAE's
reconstruction error by token class.

Axis letters: see refusal_jax/axes.py (A = SAE latents).
"""

from typing import Sequence

import numpy as np

from refusal_jax.pipeline.context import CLASS_NAMES, Context, PromptSet
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace

# Prompt sets the reconstruction error is measured on (the ones the searched
# SAE's latents are selected on).
ERROR_PROMPT_SETS = ('harmful_train', 'harmless_train')


def site_latents(model, sae: SAE, ps: PromptSet, batch_size: int,
                 interventions=None, skip_ids: Sequence[int] = ()
                 ) -> np.ndarray:
  """[B, T, A] latents of `sae` at its site.

  Args:
    model: the Model.
    sae: the SAE.
    ps: the prompts.
    batch_size: prompts per forward pass.
    interventions: applied during the pass (see interventions/base.py).
    skip_ids: token ids whose latents are left out (0), like padding.

  Returns:
    [B, T, A] latents, 0 at padding and at skipped tokens.
  """
  out = []
  site = (sae.site, sae.layer)
  for i in range(0, len(ps), batch_size):
    ids, mask = ps.ids[i:i + batch_size], ps.mask[i:i + batch_size]
    acts = model.forward(ids, mask, capture=[site], logits_at='none',
                         interventions=interventions,
                         stop_layer=sae.layer + 1).captured[site]
    f = np.asarray(sae.encode(acts))
    keep = mask * ~np.isin(ids, np.asarray(skip_ids, np.int64))
    out.append(f * keep[..., None])
  return np.concatenate(out)


def feature_latents(model, space: FeatureSpace, ps: PromptSet, features,
                    batch_size: int, interventions=None,
                    skip_ids: Sequence[int] = ()) -> np.ndarray:
  """[B, T, C] latents of features [C] of `space` (each at its SAE's site).

  As `site_latents`, per SAE of the space that holds one of the features.
  """
  sae_of, latent_of = space.locate(features)
  out = np.zeros(ps.ids.shape + (len(sae_of),), np.float32)
  for s, sae in enumerate(space.saes):
    cols = np.flatnonzero(sae_of == s)
    if len(cols):
      out[..., cols] = site_latents(model, sae, ps, batch_size, interventions,
                                    skip_ids)[..., latent_of[cols]]
  return out


def active_latents(f: np.ndarray, eps: float = 0.0) -> np.ndarray:
  """[A] bool, latents that fire (> eps) anywhere in f [B, T, A]."""
  return f.max(axis=(0, 1)) > eps


def reconstruction_errors(model, sae: SAE, ps: PromptSet, batch_size: int
                          ) -> tuple[np.ndarray, np.ndarray]:
  """Squared reconstruction error and squared norm of each token's residual.

  Args:
    model: the Model.
    sae: the SAE; its site's clean activations x are reconstructed.
    ps: the prompts.
    batch_size: prompts per forward pass.

  Returns:
    ([B, T] ||x - decode(encode(x))||^2, [B, T] ||x||^2), float64, 0 at
    padding.
  """
  err, norm = [], []
  site = (sae.site, sae.layer)
  for i in range(0, len(ps), batch_size):
    ids, mask = ps.ids[i:i + batch_size], ps.mask[i:i + batch_size]
    x = model.forward(ids, mask, capture=[site], logits_at='none',
                      stop_layer=sae.layer + 1).captured[site]
    x_hat = np.asarray(sae.reconstruct(x), np.float64)
    x = np.asarray(x, np.float64)
    real = mask.astype(bool)
    err.append(np.where(real, np.square(x - x_hat).sum(-1), 0.0))
    norm.append(np.where(real, np.square(x).sum(-1), 0.0))
  return np.concatenate(err), np.concatenate(norm)


def error_by_token_class(ctx: Context,
                         keys: Sequence[str] = ERROR_PROMPT_SETS) -> dict:
  """The searched SAE's reconstruction error per token class.

  Measured on the clean residual at every real token, whatever
  `sae_skip_special_tokens` says: it is the evidence for choosing it (Gemma
  Scope was not trained on BOS). Per class (context.CLASS_NAMES):

  * n_tokens: tokens of the class over the prompt sets `keys`;
  * n_special: those holding one of the tokenizer's special tokens (what
    `sae_skip_special_tokens` skips);
  * relative_mse: sum ||x - x_hat||^2 / sum ||x||^2 over the class's tokens
    (a fraction of the residual's energy left unexplained; None without
    tokens). It is not normalised by the class's variance, which is 0 at BOS
    (the same token at the same position in every prompt).

  Args:
    ctx: the run's context.
    keys: the prompt sets, by name.

  Returns:
    {'bos' | 'template' | 'instruction': {n_tokens, n_special,
    relative_mse}}.
  """
  sums = {c: [0, 0, 0.0, 0.0] for c in CLASS_NAMES}
  special = np.asarray(ctx.special_ids, np.int64)
  for key in keys:
    ps = ctx.prompts.get(key)
    if ps is None:
      continue
    err, norm = reconstruction_errors(ctx.model, ctx.sae, ps,
                                      ctx.chunks.prompts)
    classes = ctx.token_classes(ps)
    is_special = np.isin(ps.ids, special)
    for c, acc in sums.items():
      at = classes == c
      acc[0] += int(at.sum())
      acc[1] += int((at & is_special).sum())
      acc[2] += float(err[at].sum())
      acc[3] += float(norm[at].sum())
  return {name: dict(n_tokens=sums[c][0], n_special=sums[c][1],
                     relative_mse=(sums[c][2] / sums[c][3] if sums[c][3] > 0
                                   else None))
          for c, name in CLASS_NAMES.items()}
