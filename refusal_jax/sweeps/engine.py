"""The sweep engine: a metric for P prompts x M interventions, fast.

Every stage of the pipeline and the benchmark evaluate through here.

* `sweep`: the general path. `build(args_row, shared) -> interventions` turns
  one row of a stacked argument pytree (a direction, a layer one-hot, a latent
  mask...) into interventions; rows are evaluated with `jax.jit(jax.vmap(...))`.
  Layers before `start_layer` (the first layer any intervention touches) run
  once per prompt chunk and are shared by every row (prefix caching).
* `sae_sweep`: the SAE-latent fast path. Masks are over a candidate set of C
  latents of one SAE. The residual at the SAE's site and its latents are
  computed once per prompt chunk; per mask, only the edit of the C candidate
  latents (a [C, D] decoder slice) and the layers after the site are run.
* `feature_sweep`: the same over a feature space of many SAEs
  (sae/space.py), e.g. one per layer: each mask edits every SAE's candidates
  at its own site in one pass; the prefix is shared up to the first SAE a
  sweep touches, and each later SAE encodes and decodes only its candidate
  latents in the pass. `sae_sweep` is its one-SAE case.

Both compute only last-position logits (no [T, V] projection); the SAE paths
also run the last decoder layer at the last position only (its keys and
values at every position), the only position a metric reads. Both compile once
per shape (chunks have fixed sizes; a ragged last chunk is padded, never
recompiled) and bound memory by `Chunks`. No input buffer is donated: the
shared prefix residual is reused by every mask chunk, and no output has the
shape of a mask chunk.

Out of memory: chunk sizes are looked up per operation in a `ChunkSizes`
(one per run, in the pipeline's context). When a chunk does not fit in device
memory, its operation's masks chunk is halved (then, at 1, its prompts
chunk), one warning is logged and the failed chunk is retried; the smaller
size is kept for that operation for the rest of the run. `batched` does the
same for batched calls such as generation. Values do not depend on the chunk
sizes beyond float rounding (tested).

With a `mesh`, each mask chunk is split over the mesh's 'data' axis (the
chunk is rounded up to a multiple of its size) and prompts are replicated;
a sweep with fewer masks than 'data' devices splits its prompt chunks there
instead (`_plan`). Parameters keep the shardings they were loaded with
(`load_model(..., mesh=...)`): fsdp/tensor sharding of the weights and data
parallelism over masks compose through XLA's SPMD partitioner. Results are
gathered to every process; only process 0 writes artifacts (pipeline/
artifacts.py).

Matmul precision: every sweep runs under the 'auto' policy of
models/matmul_precision.py (float32 parameters at 'highest', so no TF32 on
GPUs; bfloat16 ones at the backend's default), unless an enclosing
`jax.default_matmul_precision` scope (the pipeline's
`config.matmul_precision`) chose one.

Axis letters: see refusal_jax/axes.py (M masks, P prompts, C candidates).
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from refusal_jax import errors
from refusal_jax.interventions import base as iv_base
from refusal_jax.interventions import sae_edit
from refusal_jax.models import layers
from refusal_jax.models import matmul_precision
from refusal_jax.models import sites
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.parallel import mesh as mesh_lib
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace
from refusal_jax.sweeps.metrics import Metric


@dataclasses.dataclass(frozen=True)
class Chunks:
  """Memory bounds of a sweep.

  Attributes:
    masks: interventions evaluated per compiled call (the vmapped axis).
    prompts: prompts per compiled call. One call holds about
      masks * prompts * T * max(D, F) activations.
  """
  masks: int = 16
  prompts: int = 32


class ChunkSizes:
  """The chunk sizes of one run, per operation, halved when memory runs out.

  An operation is a name chosen by the caller ('direction/bypass', 'greedy',
  'evaluation/generate', ...). Each starts from the configured sizes: `chunks`
  for sweeps, `batch` for batched calls. `sweep`, `sae_sweep` and `batched`
  halve the size of the operation that ran out of device memory and retry;
  the halved size is kept under that name for the rest of the run, so other
  operations keep theirs.

  Attributes:
    default_chunks: sweep chunks of an operation not yet reduced.
    default_batch: batch size of a batched operation not yet reduced.
  """

  def __init__(self, chunks: Chunks = Chunks(), batch: int = 32):
    self.default_chunks = chunks
    self.default_batch = int(batch)
    self._chunks: dict[str, Chunks] = {}
    self._batches: dict[str, int] = {}

  def chunks(self, op: str) -> Chunks:
    """The sweep chunks of operation `op`."""
    return self._chunks.get(op, self.default_chunks)

  def start_chunks(self, op: str, chunks: Chunks) -> None:
    """Operation `op` starts from `chunks` instead of the defaults (and is
    halved from them on out-of-memory); an op already halved keeps its
    halved chunks."""
    self._chunks.setdefault(op, chunks)

  def batch(self, op: str) -> int:
    """The batch size of batched operation `op`."""
    return self._batches.get(op, self.default_batch)

  def reduced(self) -> dict[str, Chunks | int]:
    """{operation: its reduced chunks or batch} for every halved one."""
    return {**self._chunks, **self._batches}

  def halve_chunks(self, op: str, n_masks: int, n_prompts: int, mesh=None,
                   axes=('masks', 'prompts')) -> bool:
    """Halves `op`'s chunk along the first of `axes` that can shrink.

    Sizes are halved from what a sweep of n_masks x n_prompts really uses
    (`_plan`: capped at the counts, rounded to the mesh's 'data' axis).

    Args:
      op: the operation.
      n_masks: masks of the sweep that ran out of memory.
      n_prompts: its prompts.
      mesh: its device mesh, or None.
      axes: which chunks may shrink, in order.

    Returns:
      False when no axis can shrink (both at 1, or at the mesh's size).
    """
    cur = self.chunks(op)
    mm, pm, _ = _plan(cur, n_masks, n_prompts, mesh)
    for axis in axes:
      if axis == 'masks':
        new = dataclasses.replace(cur, masks=max(1, mm // 2))
      else:
        new = dataclasses.replace(cur, prompts=max(1, pm // 2))
      nm, npr, _ = _plan(new, n_masks, n_prompts, mesh)
      if nm * npr < mm * pm:
        old_size, new_size = (mm, nm) if axis == 'masks' else (pm, npr)
        logging.warning(
            'out of device memory in %s: %s chunk %d -> %d for the rest of '
            'the run', op, axis, old_size, new_size)
        self._chunks[op] = new
        return True
    return False

  def halve_batch(self, op: str, n: int) -> bool:
    """Halves `op`'s batch (from what n items really use); False at 1."""
    cur = min(self.batch(op), n)
    if cur <= 1:
      return False
    logging.warning('out of device memory in %s: batch %d -> %d for the rest '
                    'of the run', op, cur, cur // 2)
    self._batches[op] = cur // 2
    return True


def _sizes(chunks: 'Chunks | ChunkSizes') -> ChunkSizes:
  """The run's ChunkSizes, or a fresh one for a plain Chunks."""
  return chunks if isinstance(chunks, ChunkSizes) else ChunkSizes(chunks)


def batched(fn: Callable[[int, int], Any], n: int, sizes: ChunkSizes,
            op: str, limit: int | None = None) -> list[Any]:
  """[fn(i0, i1) for consecutive batches of [0, n)], halving on OOM.

  Args:
    fn: evaluates items [i0, i1); must not keep state across calls that a
      failed call could leave half-updated.
    n: number of items.
    sizes: the run's chunk sizes; `sizes.batch(op)` items per call.
    op: the operation's name.
    limit: at most this many items per call, whatever the batch size.

  Returns:
    The results of fn, one per batch, in order.

  Raises:
    MemoryError, jax.errors.JaxRuntimeError: out of memory at batch 1.
  """
  out, i = [], 0
  while i < n:
    j = min(i + min(sizes.batch(op), limit or n), n)
    try:
      out.append(fn(i, j))
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
      if not (errors.is_out_of_memory(e) and sizes.halve_batch(op, j - i)):
        raise
      continue
    i = j
  return out


def _pad_to(x: np.ndarray, size: int) -> np.ndarray:
  """Pads the leading axis of x to `size` by repeating its last row."""
  if x.shape[0] == size:
    return x
  reps = np.repeat(x[-1:], size - x.shape[0], axis=0)
  return np.concatenate([x, reps], axis=0)


def _pad_tree(tree, size: int):
  return jax.tree.map(lambda a: _pad_to(np.asarray(a), size), tree)


def _plan(chunks: Chunks, n_masks: int, n_prompts: int, mesh):
  """(masks per call, prompts per call, the axis split over 'data').

  Masks are split over the mesh's 'data' axis when there are at least as
  many as its devices; otherwise (a handful of interventions over many
  prompts) the prompts are. The split chunk is rounded up to a multiple of
  the axis size (padded rows are dropped from the result).
  """
  n = mesh_lib.data_size(mesh)
  mm, pm = min(chunks.masks, n_masks), min(chunks.prompts, n_prompts)
  if n_masks >= n:
    return -(-mm // n) * n, pm, 'masks'
  return mm, -(-pm // n) * n, 'batch'


def _placer(mesh, split: str, logical: str):
  """Places an array with its leading axis split if it is the split axis."""
  if split == logical:
    return lambda x: mesh_lib.put_rows(x, mesh, logical)
  return lambda x: mesh_lib.put_replicated(x, mesh)


def _run_chunks(sizes: ChunkSizes, op: str, n_masks: int, n_prompts: int,
                mesh, prepare, evaluate, progress) -> np.ndarray:
  """[M, P] values of every (mask chunk, prompt chunk), halving on OOM.

  Args:
    sizes: the run's chunk sizes; `sizes.chunks(op)` bounds each call.
    op: the operation's name.
    n_masks: M.
    n_prompts: P.
    mesh: device mesh or None (`_plan`).
    prepare: (p0, p1, pm, put_prompts) -> the state of prompts [p0, p1)
      padded to pm rows (e.g. the shared prefix residual).
    evaluate: (state, m0, m1, mm, put_masks) -> [mm', pm'] host values of
      masks [m0, m1) padded to mm rows (padded rows and columns are dropped).
    progress: optional callable(n_done_masks).

  Returns:
    [M, P] float32.

  Raises:
    MemoryError, jax.errors.JaxRuntimeError: out of memory with both chunks
      at their smallest.
  """
  out = np.zeros((n_masks, n_prompts), np.float32)
  if not n_masks or not n_prompts:
    return out
  p0, m0, state = 0, 0, None
  while p0 < n_prompts:
    mm, pm, split = _plan(sizes.chunks(op), n_masks, n_prompts, mesh)
    p1, m1 = min(p0 + pm, n_prompts), min(m0 + mm, n_masks)
    try:
      if state is None:  # errors surface here, not in the first evaluate
        state = jax.block_until_ready(
            prepare(p0, p1, pm, _placer(mesh, split, 'batch')))
      vals = evaluate(state, m0, m1, mm, _placer(mesh, split, 'masks'))
    except (MemoryError, jax.errors.JaxRuntimeError) as e:
      # The prompt chunk's own pass does not shrink with the masks chunk.
      axes = ('prompts',) if state is None else ('masks', 'prompts')
      if not (errors.is_out_of_memory(e) and sizes.halve_chunks(
          op, n_masks, n_prompts, mesh, axes)):
        raise
      if _plan(sizes.chunks(op), n_masks, n_prompts, mesh)[1] != pm:
        state, m0 = None, 0  # a smaller prompt chunk: its masks from 0
      continue
    out[m0:m1, p0:p1] = vals[:m1 - m0, :p1 - p0]
    if progress is not None:
      progress(m1 - m0)
    m0 = m1
    if m0 == n_masks:
      p0, m0, state = p1, 0, None
  return out


@functools.partial(jax.jit, static_argnames=('config', 'layer'))
def prefix_residual(params, config: ModelConfig, input_ids, attention_mask,
                    layer: int) -> jax.Array:
  """resid_pre[layer] [B, T, D] with no interventions (shared prefix)."""
  return transformer.forward(params, config, input_ids,
                             attention_mask=attention_mask,
                             stop_layer=layer).resid


@functools.partial(jax.jit, static_argnames=('config', 'build', 'start_layer',
                                             'metric'))
def _general_chunk(params, config, input_ids, resid, attention_mask, args,
                   shared, targets, *, build, start_layer, metric):
  """[Mc, Pc] metric for one chunk of stacked args."""

  def one(row):
    out = transformer.forward(
        params, config, input_ids,  # when resuming, for interventions only
        attention_mask=attention_mask, start_layer=start_layer,
        resid=resid if start_layer else None,
        interventions=build(row, shared), logits_at='last')
    if targets is None:
      return metric(out.logits[:, 0])
    return metric(out.logits[:, 0], targets)

  return jax.vmap(one)(args)


def sweep(params, config: ModelConfig, input_ids, attention_mask, args,
          build: Callable[[Any, Any], Any], *, metric: Metric,
          shared: Any = None, start_layer: int = 0, targets=None,
          chunks: Chunks | ChunkSizes = Chunks(), op: str = 'sweep',
          progress=None, mesh=None) -> np.ndarray:
  """Evaluates `metric` for every prompt under every stacked intervention.

  Args:
    params: model parameters.
    config: architecture.
    input_ids: [P, T] left-padded prompts.
    attention_mask: [P, T].
    args: pytree whose leaves have a leading [M] axis; row m builds
      intervention m.
    build: (row, shared) -> interventions. Must be a module-level function
      (it is a static jit argument: a new lambda per call recompiles).
    metric: last-position metric: logits [P, V] -> [P], or
      (logits, targets) -> [P] when `targets` is given. Hashable (static).
    shared: pytree passed to every `build` call unbatched (e.g. an SAE).
    start_layer: first layer any intervention touches; layers before it run
      once per prompt chunk.
    targets: optional [P, ...] per-prompt data for the metric (e.g. the
      clean logits, for a KL divergence), or a pytree of such arrays.
    chunks: memory bounds: fixed `Chunks`, or the run's `ChunkSizes` (then
      `chunks.chunks(op)`, and a halving on out-of-memory is remembered).
    op: the operation's name in `chunks`.
    progress: optional callable(n_done_masks) for progress reporting.
    mesh: optional device mesh; rows are split over its 'data' axis.

  Returns:
    [M, P] float32 metric values.
  """
  input_ids = np.asarray(input_ids)
  attention_mask = np.asarray(attention_mask)
  n_masks = jax.tree.leaves(args)[0].shape[0]
  shared = mesh_lib.put_replicated(shared, mesh)
  targets = None if targets is None else jax.tree.map(np.asarray, targets)

  def prepare(p0, p1, pm, put):
    ids = put(_pad_to(input_ids[p0:p1], pm))
    mask = put(_pad_to(attention_mask[p0:p1], pm))
    resid = (prefix_residual(params, config, ids, mask, start_layer)
             if start_layer else None)
    tgt = None if targets is None else jax.tree.map(
        lambda a: put(_pad_to(a[p0:p1], pm)), targets)
    return ids, mask, resid, tgt

  def evaluate(state, m0, m1, mm, put):
    ids, mask, resid, tgt = state
    rows = jax.tree.map(
        put, _pad_tree(jax.tree.map(lambda a: np.asarray(a)[m0:m1], args), mm))
    return mesh_lib.to_host(_general_chunk(
        params, config, ids, resid, mask, rows, shared, tgt, build=build,
        start_layer=start_layer, metric=metric))

  with matmul_precision.scope('auto', matmul_precision.params_dtype(params)):
    return _run_chunks(_sizes(chunks), op, n_masks, input_ids.shape[0],
                       mesh, prepare, evaluate, progress)


# --------------------------------------------------------------------------
# SAE fast path


def sae_resume_layer(sae: SAE) -> int:
  """The layer whose resid_pre equals the SAE's site (resid sites only)."""
  if sae.site == sites.RESID_POST:
    return sae.layer + 1
  if sae.site == sites.RESID_PRE:
    return sae.layer
  raise errors.ConfigError(
      f'the SAE fast path needs a residual site, not {sae.site!r}')


def _candidate_latents(sae: SAE, x, candidates):
  """Candidate latents [P, T, C] and decoder slice [C, D] of x [P, T, D].

  JumpReLU and ReLU latents are per-latent functions of the input, so only
  the C candidate encoder columns are applied; top-k ranks all latents.
  """
  if sae.architecture == 'topk':
    f = sae.encode(x)[..., candidates]
  else:
    f = sae.replace(
        W_enc=sae.W_enc[:, candidates], b_enc=sae.b_enc[candidates],
        threshold=(None if sae.threshold is None
                   else sae.threshold[candidates])).encode(x)
  w = sae.W_dec[candidates].astype(jnp.float32)
  if sae.architecture == 'topk' and sae.rescale_acts_by_decoder_norm:
    w = w / sae.decoder_norms()[candidates][:, None]
  return f, w


_site_latents = jax.jit(_candidate_latents)


def _edit_residual(x, f, w, mask, value, mode: str, keep):
  """x [P, T, D] with candidates mask [C] of latents f [P, T, C] edited.

  Only the edited latents' decoder rows w [C, D] change x (the SAE's error
  term is kept), at positions keep [P, T, 1].
  """
  edited = sae_edit.edit_latents(f, mask, value, mode)
  delta = jnp.einsum('PTC,CD->PTD', edited - f, w)
  return (x.astype(jnp.float32) + jnp.where(keep, delta, 0.0)).astype(x.dtype)


class _CandidateEdit:
  """An edit of C candidate latents of an SAE met inside the pass.

  The SAE's input depends on the edits before it, so its candidate latents
  are encoded in the pass (candidate columns only, as `_candidate_latents`).
  """

  def __init__(self, sae: SAE, candidates, mask, value, mode: str, keep):
    self.sae, self.candidates, self.mask = sae, candidates, mask
    self.value, self.mode, self.keep = value, mode, keep

  def apply(self, site, layer, x, ctx):
    del ctx  # positions are `keep`, fixed per prompt chunk
    if site != self.sae.site or layer != self.sae.layer:
      return x
    f, w = _candidate_latents(self.sae, x, self.candidates)
    return _edit_residual(x, f, w, self.mask, self.value, self.mode,
                          self.keep)


def _resid_pre_only(interventions):
  """A block visitor applying `interventions` at resid_pre only."""

  def visit(site, layer, h):
    if site != sites.RESID_PRE:
      return h
    return iv_base.apply_all(interventions, site, layer, h, None)

  return visit


def last_hidden(params, config: ModelConfig, x, attention_mask, *,
                start_layer: int, trim_last_layer: bool = True,
                interventions: tuple = ()) -> jax.Array:
  """Runs layers [start_layer, L) from a residual; the last token's output.

  Args:
    params: model parameters.
    config: architecture.
    x: [B, T, D] resid_pre[start_layer].
    attention_mask: [B, T].
    start_layer: first layer to run (num_layers: none).
    trim_last_layer: run the last layer at the last position only (its keys
      and values still at every position); otherwise at every position.
    interventions: applied in the layers run; with `trim_last_layer`, none
      may act in the last layer after its resid_pre (`_trims`).

  Returns:
    [B, D] resid_post of the last layer at each row's last real token (before
    the final norm).
  """
  n_layers = config.num_layers
  token_mask = attention_mask.astype(bool)
  last = transformer.last_token_positions(token_mask)  # [B, 1]
  trim = trim_last_layer and start_layer < n_layers
  stop = n_layers - 1 if trim else n_layers
  if start_layer < stop:
    x = transformer.forward(params, config, attention_mask=attention_mask,
                            start_layer=start_layer, stop_layer=stop,
                            resid=x, interventions=interventions).resid
  if not trim:
    return jnp.take_along_axis(x, last[..., None], axis=1)[:, 0]
  model = nnx.merge(transformer.graphdef(config), params)
  cos, sin = layers.rope_cos_sin(transformer.default_positions(token_mask),
                                 config, x.dtype)
  x, _ = transformer.apply_block(model.layers[n_layers - 1], n_layers - 1, x,
                                 cos, sin, token_mask, query_index=last,
                                 visit=_resid_pre_only(interventions))
  return x[:, 0]


def final_logits(params, config: ModelConfig, h) -> jax.Array:
  """Final norm, unembedding and softcap: h [..., D] -> [..., V] float32.

  The product is formed vocabulary-major ([V, ...], the head's rows as the
  long matmul dimension, a tied [V, D] embedding used as stored) and moved to
  [..., V] afterwards: with few rows (one per evaluation of a chunk) this is
  markedly faster on CPU than the row-major product.
  """
  model = nnx.merge(transformer.graphdef(config), params)
  h = model.norm(h)
  if config.tie_embeddings:
    logits = jnp.einsum('VD,...D->V...', model.embed_tokens[...], h,
                        preferred_element_type=jnp.float32)
  elif model.lm_head[...].dtype != jnp.float32:
    # XLA's CPU runtime has no BF16 x BF16 -> F32 product with the [D, V]
    # head contracted on its first axis ("Unsupported element type for
    # DotThunk"); the row-major product is supported on every backend.
    return layers.softcap(
        jnp.einsum('...D,DV->...V', h, model.lm_head[...],
                   preferred_element_type=jnp.float32), config.final_softcap)
  else:
    logits = jnp.einsum('DV,...D->V...', model.lm_head[...], h,
                        preferred_element_type=jnp.float32)
  logits = jnp.moveaxis(logits, 0, -1)
  return layers.softcap(logits, config.final_softcap)


@functools.partial(jax.jit, static_argnames=('config', 'start_layer',
                                             'metric', 'mode',
                                             'trim_last_layer'))
def _sae_chunk(params, config, resid, attention_mask, edit_at, f, w, masks,
               value, tail=(), *, start_layer, metric, mode, trim_last_layer):
  """[Mc, Pc] metric for a chunk of latent masks [Mc, C].

  The first w.shape[0] mask columns edit the precomputed latents f at the
  resumed residual (no columns when f is None); the rest edit the SAEs of
  `tail` ((SAE, candidates [C_s]) pairs, in pass order), met in the pass.
  Masks [Mc, Pc, C] give each prompt its own mask (sweeps/paired.py).
  """
  keep = edit_at.astype(bool)[..., None]  # [Pc, T, 1] positions edited
  n_head = 0 if f is None else w.shape[0]

  def one(m):
    m = m if m.ndim == 1 else m[:, None]  # [C] or [Pc, 1, C]
    x = resid
    if f is not None:
      x = _edit_residual(resid, f, w, m[..., :n_head], value, mode, keep)
    edits, col = [], n_head
    for sae, cands in tail:
      edits.append(_CandidateEdit(
          sae, cands, m[..., col:col + cands.shape[0]], value, mode, keep))
      col += cands.shape[0]
    return last_hidden(params, config, x, attention_mask,
                       start_layer=start_layer,
                       trim_last_layer=trim_last_layer,
                       interventions=tuple(edits))

  h = jax.vmap(one)(masks)  # [Mc, Pc, D]
  return metric(final_logits(params, config, h))


def _trims(saes, config: ModelConfig) -> bool:
  """Whether no edit of `saes` acts in the last layer after its resid_pre."""
  last = config.num_layers - 1
  return not any(s.layer == last and s.site != sites.RESID_PRE for s in saes)


def feature_sweep(params, config: ModelConfig, space: FeatureSpace,
                  input_ids, attention_mask, features, masks, *,
                  metric: Metric, mode: str = 'zero', value: float = 0.0,
                  chunks: Chunks | ChunkSizes = Chunks(),
                  op: str = 'sae_sweep', trim_last_layer: bool = True,
                  skip_ids=None, progress=None, mesh=None,
                  edit_saes=None) -> np.ndarray:
  """Metric for every prompt with each subset of features edited.

  Features are (SAE, latent) pairs of a `FeatureSpace`; one evaluation edits
  each SAE's chosen latents at its own site in one forward pass, exactly as
  running one `SAEEdit(sae, latent_mask=..., skip_ids=skip_ids)` per SAE of
  the space through the plain forward pass (tested), at all real tokens
  except those holding one of `skip_ids`.

  Only SAEs with a feature set in some mask take part. Layers before the
  first of them run once per prompt chunk (prefix caching); when it is at a
  residual site, its candidate latents are also encoded once per prompt chunk.
  The later SAEs' inputs depend on the edits before them: their candidate
  latents (candidate encoder columns only, for JumpReLU and ReLU) are encoded
  in each evaluation's pass. Every SAE's edit decodes its candidate rows only.

  Args:
    params: model parameters.
    config: architecture.
    space: the SAEs and their feature numbering.
    input_ids: [P, T] left-padded prompts.
    attention_mask: [P, T].
    features: [C] feature ids of `space` the masks refer to.
    masks: [M, C] 0/1, which features to edit in each evaluation.
    metric: last-position metric.
    mode: 'zero' | 'clamp' | 'scale' (see interventions/sae_edit.py).
    value: clamp value or scale factor.
    chunks: memory bounds: fixed `Chunks`, or the run's `ChunkSizes` (see
      `sweep`).
    op: the operation's name in `chunks`.
    trim_last_layer: run the last decoder layer at the last position only
      (keys and values at every position; queries, attention output and MLP
      at one), the only position the metric reads, unless an SAE edits that
      layer after its resid_pre. False runs it at every position; both give
      the same values (tested).
    skip_ids: optional token ids whose positions are never edited (e.g. BOS
      and the chat template's special tokens, see SAEEdit.skip_ids).
    progress: optional callable(n_done_masks).
    mesh: optional device mesh; masks are split over its 'data' axis.
    edit_saes: indices of the space's SAEs that take part (each holding
      one of `features`), or None: those with a feature set in some mask.
      Fixing them (e.g. every SAE of the candidates) lets sweeps of
      different masks over the same features share one compilation; an
      SAE none of whose features a mask sets is edited by nothing (exactly).

  Returns:
    [M, P] float32 metric values.
  """
  sae_of, latent_of = space.locate(features)
  masks = np.asarray(masks, np.float32)
  if edit_saes is not None:
    used = sorted({int(s) for s in edit_saes})
    if not used or not set(used) <= set(sae_of.tolist()) or (
        masks[:, ~np.isin(sae_of, used)].any()):
      raise errors.ConfigError(
          f'edit_saes {used}: expected SAEs holding the candidates, '
          'including every one a mask edits')
  else:
    used = [s for s in range(len(space.saes))
            if masks[:, sae_of == s].any()] or [int(sae_of[0]) if len(sae_of)
                                                 else 0]
  saes = [space.saes[s] for s in used]
  head = saes[0].site in (sites.RESID_PRE, sites.RESID_POST)
  start = sae_resume_layer(saes[0]) if head else saes[0].layer
  if start == 0:
    raise errors.ConfigError(
        f'the SAE fast path starts after the embedding; {saes[0].hook_name} '
        'edits layer 0 before its residual (use engine.sweep with SAEEdit)')
  cols = [np.flatnonzero(sae_of == s) for s in used]
  masks = masks[:, np.concatenate(cols)]  # columns grouped by SAE, pass order
  # Host int32 arrays, passed to the jitted calls as they are: an eager
  # jnp.asarray compiles once per length.
  cands = [mesh_lib.put_replicated(latent_of[c].astype(np.int32), mesh)
           for c in cols]
  saes = [mesh_lib.put_replicated(s, mesh) for s in saes]
  tail = tuple(zip(saes[1:], cands[1:]) if head else zip(saes, cands))
  trim = trim_last_layer and _trims(saes, config)
  input_ids = np.asarray(input_ids)
  attention_mask = np.asarray(attention_mask)
  edit_at = attention_mask.astype(bool)  # [P, T] positions the edit applies to
  if skip_ids is not None:
    edit_at = edit_at & ~np.isin(input_ids, np.asarray(skip_ids))

  def prepare(p0, p1, pm, put):
    ids = put(_pad_to(input_ids[p0:p1], pm))
    mask = put(_pad_to(attention_mask[p0:p1], pm))
    resid = prefix_residual(params, config, ids, mask, start)
    f, w = _site_latents(saes[0], resid, cands[0]) if head else (None, None)
    return resid, mask, put(_pad_to(edit_at[p0:p1], pm)), f, w

  def evaluate(state, m0, m1, mm, put):
    return mesh_lib.to_host(_sae_chunk(
        params, config, *state, put(_pad_to(masks[m0:m1], mm)),
        jnp.float32(value), tail, start_layer=start, metric=metric, mode=mode,
        trim_last_layer=trim))

  with matmul_precision.scope('auto', matmul_precision.params_dtype(params)):
    return _run_chunks(_sizes(chunks), op, masks.shape[0],
                       input_ids.shape[0], mesh, prepare, evaluate, progress)


def sae_sweep(params, config: ModelConfig, sae: SAE, input_ids,
              attention_mask, candidates, masks, *, metric: Metric,
              mode: str = 'zero', value: float = 0.0,
              chunks: Chunks | ChunkSizes = Chunks(), op: str = 'sae_sweep',
              trim_last_layer: bool = True, skip_ids=None, progress=None,
              mesh=None) -> np.ndarray:
  """Metric for every prompt with each subset of one SAE's latents edited.

  `feature_sweep` over the space of one SAE (features are its latents).
  Equals running `SAEEdit(sae, latent_mask=scatter(masks[m]),
  skip_ids=skip_ids)` through the plain forward pass one mask at a time
  (tested). The residual at the SAE's site and its candidate latents are
  computed once per prompt chunk; per mask, only the edit of the C candidate
  latents (a [C, D] decoder slice) and the layers after the site are run.

  Args:
    params: model parameters.
    config: architecture.
    sae: the SAE (at a resid_pre or resid_post site).
    input_ids: [P, T] left-padded prompts.
    attention_mask: [P, T].
    candidates: [C] latent indices the masks refer to.
    masks: [M, C] 0/1, which candidates to edit in each evaluation.
    metric: last-position metric.
    mode: 'zero' | 'clamp' | 'scale' (see interventions/sae_edit.py).
    value: clamp value or scale factor.
    chunks: memory bounds (see `sweep`).
    op: the operation's name in `chunks`.
    trim_last_layer: run the last decoder layer at the last position only
      (see `feature_sweep`).
    skip_ids: optional token ids whose positions are never edited.
    progress: optional callable(n_done_masks).
    mesh: optional device mesh; masks are split over its 'data' axis.

  Returns:
    [M, P] float32 metric values.
  """
  sae_resume_layer(sae)  # a residual site
  return feature_sweep(
      params, config, FeatureSpace((sae,)), input_ids, attention_mask,
      candidates, masks, metric=metric, mode=mode, value=value,
      chunks=chunks, op=op, trim_last_layer=trim_last_layer,
      skip_ids=skip_ids, progress=progress, mesh=mesh)
