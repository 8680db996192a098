"""Per-prompt masks: each prompt of a sweep under a feature mask of its own.

`paired_feature_sweep` evaluates pairs: row n is prompt prompts[n] with the
features of masks[n] edited. `engine.feature_sweep` evaluates every prompt
under every mask; here each mask is evaluated on its own prompt only. Used by
the paper's stage 2 per prompt (pipeline/paper/per_prompt.py), where every
prompt follows its own greedy trajectory and each step scores all prompts at
once, each under its own current set.

Fixed shapes: prompts are taken in chunks of `chunks.prompts` (the last one
padded); the shared prefix of a prompt chunk (the layers before the first
SAE, and the first SAE's candidate latents when it sits on the residual
stream) is computed once per call, as in `feature_sweep`. The rows of a
prompt chunk are packed densely into calls of exactly `chunks.masks *
chunks.prompts` rows (the last call padded), each row gathering its
prompt's prefix on the device. Every SAE holding a candidate takes part in
every call, whatever the masks say. So one candidate list and one prompt
width compile each function once, however many calls, prompts or rows
follow, and only the last call of each prompt chunk carries padding.

Out of memory: the masks chunk (then the prompts chunk) of operation `op` is
halved in the run's `ChunkSizes` and the call retried, as the engine does.
With a mesh, parameters keep their shardings and every other input is
replicated (rows are not split over the 'data' axis). Matmul precision: as
the engine's sweeps (the 'auto' policy of models/matmul_precision.py unless
an enclosing scope chose one), so both paths compute alike.

Axis letters (refusal_jax/axes.py): N rows (prompt, mask pairs), P prompts,
C candidates, T tokens, D d_model.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.models import matmul_precision
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


@functools.partial(jax.jit, static_argnames=('config', 'start_layer',
                                             'metric', 'mode',
                                             'trim_last_layer'))
def _rows_chunk(params, config, resid, attention_mask, edit_at, f, w, idx,
                masks, value, tail=(), *, start_layer, metric, mode,
                trim_last_layer):
  """[R] metric of rows: prompt idx[r] of the chunk under masks [R, C]."""
  take = lambda a: None if a is None else jnp.take(a, idx, axis=0)
  return _sae_chunk(params, config, take(resid), take(attention_mask),
                    take(edit_at), take(f), w, masks[None], value, tail,
                    start_layer=start_layer, metric=metric, mode=mode,
                    trim_last_layer=trim_last_layer)[0]


def paired_feature_sweep(params, config: ModelConfig, space: FeatureSpace,
                         input_ids, attention_mask, features, prompts,
                         masks, *, metric: Metric, mode: str = 'zero',
                         value: float = 0.0,
                         chunks: engine.Chunks | engine.ChunkSizes = (
                             engine.Chunks()),
                         op: str = 'paired_sweep',
                         trim_last_layer: bool = True, skip_ids=None,
                         progress=None, mesh=None) -> np.ndarray:
  """Metric of each prompt under its own feature masks.

  Row n equals `feature_sweep` of prompt prompts[n] alone with mask
  masks[n] (tested), up to float rounding.

  Args:
    params: model parameters.
    config: architecture.
    space: the SAEs and their feature numbering.
    input_ids: [P, T] left-padded prompts.
    attention_mask: [P, T].
    features: [C] feature ids of `space` the masks refer to.
    prompts: [N] int, the prompt of each row.
    masks: [N, C] 0/1; masks[n] is edited on prompt prompts[n].
    metric: last-position metric.
    mode: 'zero' | 'clamp' | 'scale' (interventions/sae_edit.py).
    value: clamp value or scale factor.
    chunks: memory bounds and the fixed call shape: prompt chunks of
      `chunks.prompts`, calls of `chunks.masks * chunks.prompts` rows (a
      `ChunkSizes`: those of `op`).
    op: the operation's name in `chunks`.
    trim_last_layer: as `feature_sweep`.
    skip_ids: optional token ids whose positions are never edited.
    progress: optional callable(n_rows_done).
    mesh: optional device mesh (see the module docstring).

  Returns:
    [N] float32 metric values.
  """
  masks = np.asarray(masks, np.float32)
  prompts = np.asarray(prompts, np.int64).reshape(-1)
  input_ids = np.asarray(input_ids)
  attention_mask = np.asarray(attention_mask)
  n_prompts = input_ids.shape[0]
  if masks.ndim != 2 or len(masks) != len(prompts):
    raise errors.ConfigError(
        f'masks of shape {masks.shape} for {len(prompts)} rows: expected '
        '[N, C]')
  if len(prompts) and (prompts.min() < 0 or prompts.max() >= n_prompts):
    raise errors.ConfigError(
        f'row prompts outside [0, {n_prompts}): {prompts.min()}..'
        f'{prompts.max()}')
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
  masks = masks[:, np.concatenate(cols)]  # grouped by SAE, pass order
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

  def evaluate(state, rows, p0, size):
    idx = _pad_axis(prompts[rows] - p0, size, 0).astype(np.int32)
    return mesh_lib.to_host(_rows_chunk(
        params, config, *state, put(idx), put(_pad_axis(masks[rows], size, 0)),
        jnp.float32(value), tail, start_layer=start, metric=metric,
        mode=mode, trim_last_layer=trim))

  with matmul_precision.scope('auto', matmul_precision.params_dtype(params)):
    return _run(n_prompts, prompts, sizes, op, prepare, evaluate, progress)


def _run(n_prompts, prompts, sizes, op, prepare, evaluate, progress
         ) -> np.ndarray:
  """[N] values: the rows of each prompt chunk in calls of fixed size."""
  out = np.full(len(prompts), np.nan, np.float32)
  p0 = 0
  while p0 < n_prompts:
    cur = sizes.chunks(op)
    pm, size = cur.prompts, cur.masks * cur.prompts
    todo = np.flatnonzero((prompts >= p0) & (prompts < p0 + pm))
    state = None
    try:
      if len(todo):
        state = jax.block_until_ready(prepare(p0, pm))
      for r0 in range(0, len(todo), size):
        rows = todo[r0:r0 + size]
        out[rows] = evaluate(state, rows, p0, size)[:len(rows)]
        if progress is not None:
          progress(len(rows))
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
      # the prompt chunk's own pass does not shrink with the rows
      axes = ('prompts',) if state is None else ('masks', 'prompts')
      if not (errors.is_out_of_memory(e) and sizes.halve_chunks(
          op, cur.masks, pm, None, axes)):
        raise
      continue  # the prompt chunk again, with the smaller chunks
    p0 += pm
  return out
