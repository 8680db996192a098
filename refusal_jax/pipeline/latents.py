"""SAE latents of prompt sets, optionally under interventions, and the SAE's
reconstruction error by token class.

Latents come from one jitted call per prompt batch (`_latents_pass`): the
forward pass up to the deepest SAE asked for, capturing every SAE's site,
and the encodings. Batches are padded to one number of rows, so a call
compiles once whatever the number of prompts and SAEs.

Axis letters: see refusal_jax/axes.py (A = SAE latents).
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax.models import matmul_precision
from refusal_jax.models import transformer
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline.context import CLASS_NAMES, Context, PromptSet
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace

# Prompt sets the reconstruction error is measured on (the ones the searched
# SAE's latents are selected on).
ERROR_PROMPT_SETS = ('harmful_train', 'harmless_train')


def _batches(ps: PromptSet, batch_size: int):
  """(i0, i1, ids, mask) of consecutive batches of `ps`, every one padded to
  min(batch_size, len(ps)) rows by repeating its last prompt (one shape for
  the whole set; the caller keeps rows [:i1 - i0])."""
  size = max(1, min(int(batch_size), len(ps)))
  for i0 in range(0, len(ps), size):
    i1 = min(i0 + size, len(ps))
    rows = context_lib.padded_rows(i0, i1, size)
    yield i0, i1, ps.ids[rows], ps.mask[rows]


@functools.partial(jax.jit, static_argnames=('config', 'peak'))
def _latents_pass(params, config, ids, mask, interventions, saes, columns,
                  skip_ids, *, peak: bool):
  """Latents of several SAEs of one prompt batch, in one forward pass.

  Args:
    params: model parameters.
    config: the architecture (static).
    ids: [B, T] token ids.
    mask: [B, T] 1 at real tokens.
    interventions: applied during the pass (None: none).
    saes: the SAEs (their sites and layers are static fields).
    columns: per SAE, None (every latent) or [C_s] latent indices.
    skip_ids: [S] token ids whose latents are left out (0), like padding.
    peak: return each latent's maximum over tokens instead of every token.

  Returns:
    Per SAE, [B, T, C_s] latents (0 at padding and skipped tokens), or
    [B, C_s] with `peak`.
  """
  sites = tuple(dict.fromkeys((s.site, s.layer) for s in saes))
  out = transformer.forward(
      params, config, ids, attention_mask=mask, interventions=interventions,
      capture=sites, stop_layer=max(s.layer for s in saes) + 1,
      logits_at='none')
  keep = mask.astype(bool) & ~jnp.isin(ids, skip_ids)  # [B, T]
  res = []
  for sae, cols in zip(saes, columns):
    f = sae.encode(out.captured[(sae.site, sae.layer)])  # [B, T, A]
    if cols is not None:
      f = f[..., cols]
    f = f * keep[..., None].astype(f.dtype)
    res.append(f.max(axis=1) if peak else f)
  return tuple(res)


def _run_pass(model, saes, ps: PromptSet, batch_size: int, columns,
              interventions, skip_ids, peak: bool) -> list[np.ndarray]:
  """`_latents_pass` over every batch of `ps`; per SAE, the batches joined."""
  skip = np.asarray(skip_ids, np.int32).reshape(-1)  # no eager transfer
  saes = tuple(saes)
  columns = tuple(None if c is None else np.asarray(c, np.int32)
                  for c in columns)
  parts = [[] for _ in saes]
  with matmul_precision.scope(getattr(model, 'matmul_precision', 'auto'),
                              model.dtype):
    for i0, i1, ids, mask in _batches(ps, batch_size):
      got = _latents_pass(model.params, model.config, ids, mask,
                          interventions, saes, columns, skip, peak=peak)
      for part, f in zip(parts, got):
        part.append(np.asarray(f)[:i1 - i0])
  return [np.concatenate(p) for p in parts]


def site_latents(model, sae: SAE, ps: PromptSet, batch_size: int,
                 interventions=None, skip_ids: Sequence[int] = ()
                 ) -> np.ndarray:
  """[B, T, A] latents of `sae` at its site.

  One compiled pass per batch shape: batches are padded to a whole batch
  (`_batches`), and the forward pass and the encoding are one jitted call.

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
  return _run_pass(model, (sae,), ps, batch_size, (None,), interventions,
                   skip_ids, peak=False)[0]


def space_peaks(model, space: FeatureSpace, ps: PromptSet, batch_size: int,
                interventions=None, skip_ids: Sequence[int] = ()
                ) -> np.ndarray:
  """[B, F] each feature's peak over the tokens of each prompt.

  Every feature of the space (F: all its SAEs' latents, in feature order),
  as `site_latents(...).max(axis=1)` per SAE, from one forward pass per
  batch for all SAEs.
  """
  saes = space.saes
  return np.concatenate(_run_pass(model, saes, ps, batch_size,
                                  (None,) * len(saes), interventions,
                                  skip_ids, peak=True), axis=-1)


def feature_latents(model, space: FeatureSpace, ps: PromptSet, features,
                    batch_size: int, interventions=None,
                    skip_ids: Sequence[int] = ()) -> np.ndarray:
  """[B, T, C] latents of features [C] of `space` (each at its SAE's site).

  As `site_latents`, for every SAE of the space that holds one of the
  features at once: one forward pass per batch, one compilation per call
  whatever the number of SAEs and prompts.
  """
  sae_of, latent_of = space.locate(features)
  out = np.zeros(ps.ids.shape + (len(sae_of),), np.float32)
  used = [s for s in range(len(space.saes)) if (sae_of == s).any()]
  if not used or not len(ps):
    return out
  cols = [np.flatnonzero(sae_of == s) for s in used]
  got = _run_pass(model, [space.saes[s] for s in used], ps, batch_size,
                  [latent_of[c] for c in cols], interventions, skip_ids,
                  peak=False)
  for c, f in zip(cols, got):
    out[..., c] = f
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
