"""Per-prompt masks: each prompt of a sweep under a feature mask of its own.

`paired_feature_sweep` evaluates masks [M, P, C]: evaluation (m, p) is prompt
p with the features of masks[m, p] edited. `engine.feature_sweep` is the case
where every prompt of row m has the same mask. Used by the paper's stage 2
per prompt (pipeline/paper/per_prompt.py), where every prompt follows its own
greedy trajectory and each step scores all prompts at once, each under its own
current set.

Fixed shapes: every compiled call holds exactly `chunks.masks` x
`chunks.prompts` evaluations (the last chunk of either axis is padded, also
when there are fewer prompts or masks than a chunk), and every SAE holding a
candidate takes part in every call whatever the masks say. So one candidate
list and one prompt width compile each function once, however many calls,
prompts or masks follow. The shared prefix (the layers before the first SAE,
and the first SAE's candidate latents when it sits on the residual stream) is
computed once per prompt chunk per call, as in `feature_sweep`.

Out of memory: the masks chunk (then the prompts chunk) of operation `op` is
halved in the run's `ChunkSizes` and the call retried, as the engine does.
With a mesh, parameters keep their shardings and every other input is
replicated (masks are not split over the 'data' axis).

Axis letters (refusal_jax/axes.py): M masks per prompt, P prompts, C
candidates, T tokens, D d_model.
"""

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.models import sites
from refusal_jax.models.config import ModelConfig
from refusal_jax.parallel import mesh as mesh_lib
from refusal_jax.sae.space import FeatureSpace
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import Metric

# The engine's own pieces, so that both paths compute alike.
# pylint: disable=protected-access
_sae_chunk = engine._sae_chunk
_site_latents = engine._site_latents
_sizes = engine._sizes
_trims = engine._trims
# pylint: enable=protected-access


def _pad_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
  """Pads `axis` of x to `size` by repeating its last entry."""
  n = x.shape[axis]
  if n == size:
    return x
  last = np.take(x, [n - 1], axis=axis)
  return np.concatenate([x, np.repeat(last, size - n, axis=axis)], axis=axis)


def paired_feature_sweep(params, config: ModelConfig, space: FeatureSpace,
                         input_ids, attention_mask, features, masks, *,
                         metric: Metric, mode: str = 'zero',
                         value: float = 0.0,
                         chunks: engine.Chunks | engine.ChunkSizes = (
                             engine.Chunks()),
                         op: str = 'paired_sweep', n_rows=None,
                         trim_last_layer: bool = True, skip_ids=None,
                         progress=None, mesh=None) -> np.ndarray:
  """Metric of every prompt under each of its own feature masks.

  Evaluation (m, p) equals `feature_sweep` of prompt p with mask masks[m, p]
  (tested), up to float rounding.

  Args:
    params: model parameters.
    config: architecture.
    space: the SAEs and their feature numbering.
    input_ids: [P, T] left-padded prompts.
    attention_mask: [P, T].
    features: [C] feature ids of `space` the masks refer to.
    masks: [M, P, C] 0/1; masks[m, p] is edited on prompt p.
    metric: last-position metric.
    mode: 'zero' | 'clamp' | 'scale' (interventions/sae_edit.py).
    value: clamp value or scale factor.
    chunks: memory bounds and the fixed call shape: `chunks.masks` masks x
      `chunks.prompts` prompts per call (a `ChunkSizes`: those of `op`).
    op: the operation's name in `chunks`.
    n_rows: optional [P] int: only masks[:n_rows[p], p] are needed. Prompt
      chunks with nothing needed are skipped, and so are mask chunks past
      every need of the prompt chunk; the values not needed are NaN.
    trim_last_layer: as `feature_sweep`.
    skip_ids: optional token ids whose positions are never edited.
    progress: optional callable(n_evaluations_done).
    mesh: optional device mesh (see the module docstring).

  Returns:
    [M, P] float32 metric values.
  """
  masks = np.asarray(masks, np.float32)
  input_ids = np.asarray(input_ids)
  attention_mask = np.asarray(attention_mask)
  n_masks, n_prompts = masks.shape[:2]
  if masks.ndim != 3 or n_prompts != input_ids.shape[0]:
    raise errors.ConfigError(
        f'masks of shape {masks.shape} for {input_ids.shape[0]} prompts: '
        'expected [M, P, C]')
  need = (np.full(n_prompts, n_masks) if n_rows is None
          else np.minimum(np.asarray(n_rows, np.int64), n_masks))
  sae_of, latent_of = space.locate(features)
  used = sorted(set(sae_of.tolist()))
  if not used:
    raise errors.ConfigError('a paired sweep needs at least one candidate')
  saes = [space.saes[s] for s in used]
  head = saes[0].site in (sites.RESID_PRE, sites.RESID_POST)
  start = engine.sae_resume_layer(saes[0]) if head else saes[0].layer
  if start == 0:
    raise errors.ConfigError(
        f'the SAE fast path starts after the embedding; {saes[0].hook_name} '
        'edits layer 0 before its residual')
  cols = [np.flatnonzero(sae_of == s) for s in used]
  masks = masks[..., np.concatenate(cols)]  # grouped by SAE, pass order
  put = lambda x: mesh_lib.put_replicated(x, mesh)
  cands = [put(jnp.asarray(latent_of[c], jnp.int32)) for c in cols]
  saes = [put(s) for s in saes]
  tail = tuple(zip(saes[1:], cands[1:]) if head else zip(saes, cands))
  trim = trim_last_layer and _trims(saes, config)
  edit_at = attention_mask.astype(bool)
  if skip_ids is not None:
    edit_at = edit_at & ~np.isin(input_ids, np.asarray(skip_ids))
  sizes = _sizes(chunks)

  def prepare(p0, pm):
    ids = put(_pad_axis(input_ids[p0:p0 + pm], pm, 0))
    mask = put(_pad_axis(attention_mask[p0:p0 + pm], pm, 0))
    resid = engine.prefix_residual(params, config, ids, mask, start)
    f, w = _site_latents(saes[0], resid, cands[0]) if head else (None, None)
    return resid, mask, put(_pad_axis(edit_at[p0:p0 + pm], pm, 0)), f, w

  def evaluate(state, m0, p0, mm, pm):
    rows = _pad_axis(_pad_axis(masks[m0:m0 + mm, p0:p0 + pm], mm, 0), pm, 1)
    return mesh_lib.to_host(_sae_chunk(
        params, config, *state, put(rows), jnp.float32(value), tail,
        start_layer=start, metric=metric, mode=mode, trim_last_layer=trim))

  out = np.full((n_masks, n_prompts), np.nan, np.float32)
  p0 = 0
  while p0 < n_prompts:
    cur = sizes.chunks(op)
    mm, pm = cur.masks, cur.prompts
    p1 = min(p0 + pm, n_prompts)
    todo = int(need[p0:p1].max())
    try:
      state = jax.block_until_ready(prepare(p0, pm)) if todo else None
      for m0 in range(0, todo, mm):
        m1 = min(m0 + mm, n_masks)
        vals = evaluate(state, m0, p0, mm, pm)
        out[m0:m1, p0:p1] = vals[:m1 - m0, :p1 - p0]
        if progress is not None:
          progress(int(np.clip(need[p0:p1] - m0, 0, m1 - m0).sum()))
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
      if not (errors.is_out_of_memory(e) and sizes.halve_chunks(
          op, mm, pm, None)):
        raise
      continue  # the prompt chunk again, with the smaller chunks
    p0 = p1
  for p in range(n_prompts):
    out[need[p]:, p] = np.nan
  return out
