"""The Gemma-2 / Llama-3.x decoder and its pure forward function.

`forward(params, config, input_ids, ...)` is a pure function of the parameter
pytree, the inputs and the interventions: jit it, vmap it over a stacked
intervention axis, differentiate it. Features:

* interventions at the named sites of models/sites.py (None = no-op);
* selective capture of (site, layer) activations, optionally at chosen
  positions only (nothing is captured by default);
* running only layers [start_layer, stop_layer): stop early and return the
  residual, or resume from a given residual; a split pass equals a full pass;
* logits at all positions, the last position, or chosen positions only;
* a KV cache for generation (see generation.py).

Axis letters: see refusal_jax/axes.py.
"""

import functools
import math
from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from refusal_jax import errors
from refusal_jax.models import intervention as iv_base
from refusal_jax.models import layers
from refusal_jax.models import sites
from refusal_jax.models.attention import Attention, KVCache, gather_slots
from refusal_jax.models.config import ModelConfig

Params = Any  # nnx.State of a Transformer


@flax.struct.dataclass
class Output:
  """Result of a forward pass.

  Attributes:
    logits: [B, T', V] float32 logits at the requested positions, or None when
      the pass stopped before the last layer.
    resid: [B, T, D] residual stream after the last layer run, when
      stop_layer was given (None otherwise).
    captured: {(site, layer): [B, T or P, D]} requested activations.
    cache: the updated KVCache when one was passed.
  """
  logits: jax.Array | None
  resid: jax.Array | None
  captured: dict[tuple[str, int], jax.Array]
  cache: KVCache | None


class Block(nnx.Module):
  """One decoder block; submodule names mirror transformers."""

  def __init__(self, config: ModelConfig, layer: int, *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    norm = functools.partial(layers.RMSNorm, config.d_model,
                             eps=config.norm_eps,
                             unit_offset=config.norm_unit_offset, dtype=dtype)
    self.input_layernorm = norm()
    self.self_attn = Attention(config, layer, rngs=rngs, dtype=dtype)
    self.post_attention_layernorm = norm()
    if config.post_norms:
      self.pre_feedforward_layernorm = norm()
      self.post_feedforward_layernorm = norm()
    self.mlp = layers.MLP(config, rngs=rngs, dtype=dtype)
    self.post_norms = config.post_norms


class Transformer(nnx.Module):
  """Decoder of the Gemma-2 / Llama-3.x family, configured by ModelConfig."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    self.config = config
    std = 1.0 / math.sqrt(config.d_model) if config.embed_scale else 0.02
    self.embed_tokens = nnx.Param(nnx.initializers.normal(std)(
        rngs.params(), (config.vocab_size, config.d_model), dtype))  # [V, D]
    self.layers = nnx.List([Block(config, i, rngs=rngs, dtype=dtype)
                            for i in range(config.num_layers)])
    self.norm = layers.RMSNorm(config.d_model, eps=config.norm_eps,
                               unit_offset=config.norm_unit_offset,
                               dtype=dtype)
    if not config.tie_embeddings:
      self.lm_head = nnx.Param(nnx.initializers.normal(0.02)(
          rngs.params(), (config.d_model, config.vocab_size), dtype))  # [D, V]


@functools.lru_cache(maxsize=None)
def graphdef(config: ModelConfig):
  """The (static) NNX graph definition of a Transformer for `config`."""
  abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
  return nnx.split(abstract)[0]


def init_params(config: ModelConfig, seed: int = 0,
                dtype=jnp.float32) -> Params:
  """Freshly initialised parameters (used to train model organisms)."""
  return nnx.split(Transformer(config, rngs=nnx.Rngs(seed), dtype=dtype))[1]


def abstract_params(config: ModelConfig, dtype=jnp.float32) -> Params:
  """Parameter shapes and dtypes, with no memory allocated."""
  model = nnx.eval_shape(
      lambda: Transformer(config, rngs=nnx.Rngs(0), dtype=dtype))
  return nnx.split(model)[1]


def default_positions(token_mask: jax.Array) -> jax.Array:
  """Position ids [B, T] for left-padded rows: 0 at each row's first token."""
  return jnp.maximum(jnp.cumsum(token_mask.astype(jnp.int32), axis=-1) - 1, 0)


def _gather(x: jax.Array, positions: jax.Array | None) -> jax.Array:
  """x [B, T, ...] at positions [B, P] -> [B, P, ...] (all when None)."""
  if positions is None:
    return x
  return gather_slots(x, positions)


def _no_visit(site, layer, h):
  del site, layer
  return h


def apply_block(blk: Block, layer: int, x: jax.Array, cos: jax.Array,
                sin: jax.Array, token_mask: jax.Array, *, visit=_no_visit,
                cache_kv=None, cache_valid=None, cache_index=None,
                query_index: jax.Array | None = None, window=None):
  """Runs one decoder block; returns (x [B, T', D], updated (k, v) or None).

  Args:
    blk: the block.
    layer: its index (passed to `visit`).
    x: [B, T, D] resid_pre of the block.
    cos: [B, T, H] RoPE table; sin likewise.
    token_mask: [B, T] real tokens.
    visit: `visit(site, layer, h) -> h`, called at every residual site (where
      interventions and captures happen); default identity.
    cache_kv, cache_valid, cache_index: the KV cache of every layer (see
      `Attention`; this block's layer is `layer`).
    query_index: optional [B, P] slots: the block's output only at those
      slots (T' = P); keys and values still see every slot.
    window: the attention window, possibly traced; default the block's own
      (see `Attention`).
  """
  x = visit(sites.RESID_PRE, layer, x)
  h, new_kv = blk.self_attn(
      blk.input_layernorm(x), cos, sin, token_mask, cache_kv=cache_kv,
      cache_valid=cache_valid, cache_index=cache_index,
      query_index=query_index, window=window, cache_layer=layer)
  if query_index is not None:
    x = gather_slots(x, query_index)
  if blk.post_norms:
    h = blk.post_attention_layernorm(h)
  x = x + visit(sites.ATTN_OUT, layer, h)
  if blk.post_norms:
    h = blk.post_feedforward_layernorm(blk.mlp(
        blk.pre_feedforward_layernorm(x)))
  else:
    h = blk.mlp(blk.post_attention_layernorm(x))
  x = x + visit(sites.MLP_OUT, layer, h)
  return visit(sites.RESID_POST, layer, x), new_kv


def last_token_positions(token_mask: jax.Array) -> jax.Array:
  """[B, 1] index of the last real token (T - 1 for left padding)."""
  t = token_mask.shape[1]
  idx = jnp.where(token_mask, jnp.arange(t)[None], -1).max(axis=1)
  return idx[:, None]


def embedding_lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
  """table[ids] for table [V, D], ids [...] -> [..., D], in table's dtype.

  A 16-bit float table is gathered as its bit pattern (uint16): XLA's CPU
  backend gathers bfloat16 through a float32 copy of the whole table, and in
  generation's decoding loop that copy is hoisted out of the loop and kept
  (2.4 GB for Gemma-2-2B's 256000 x 2304 table). The bits are the same.
  """
  if table.dtype.itemsize != 2:
    return table[ids]
  bits = jax.lax.bitcast_convert_type(table, jnp.uint16)
  return jax.lax.bitcast_convert_type(bits[ids], table.dtype)


def check_layer_range(config: ModelConfig, start_layer: int,
                      stop_layer: int | None, resid) -> int:
  """The stop layer of [start_layer, stop_layer); raises on a bad range."""
  n_layers = config.num_layers
  stop = n_layers if stop_layer is None else stop_layer
  if not 0 <= start_layer <= stop <= n_layers:
    raise errors.ConfigError(
        f'layer range [{start_layer}, {stop}) is outside [0, {n_layers}]')
  if start_layer > 0 and resid is None:
    raise errors.ConfigError('start_layer > 0 needs the residual `resid`')
  return stop


def embed_input(table: jax.Array, config: ModelConfig, input_ids,
                resid, start_layer: int) -> jax.Array:
  """[B, T, D] resid_pre of block `start_layer`: the (scaled) embedding of
  input_ids at layer 0, else `resid` in the table's dtype."""
  if start_layer > 0:
    return resid.astype(table.dtype)
  if input_ids is None:
    raise errors.ConfigError('the forward pass needs input_ids')
  x = embedding_lookup(table, input_ids)  # [B, T, D]
  if config.embed_scale:
    x = x * jnp.asarray(math.sqrt(config.d_model), dtype=table.dtype)
  return x


def site_context(x: jax.Array, attention_mask, positions, prompt_mask,
                 input_ids) -> iv_base.SiteContext:
  """What interventions see: masks and positions of x [B, T, D], defaults
  filled in (every token real and in the prompt; positions from the mask)."""
  b, t = x.shape[:2]
  token_mask = (jnp.ones((b, t), bool) if attention_mask is None
                else attention_mask.astype(bool))
  if positions is None:
    positions = default_positions(token_mask)
  if prompt_mask is None:
    prompt_mask = jnp.ones((b, t), bool)
  return iv_base.SiteContext(token_mask=token_mask, prompt_mask=prompt_mask,
                             positions=positions, input_ids=input_ids)


def unembed(x: jax.Array, config: ModelConfig, norm, table: jax.Array,
            lm_head: jax.Array | None, logits_at,
            token_mask: jax.Array) -> jax.Array | None:
  """[B, P, V] float32 logits of the rows `logits_at` selects of x
  [B, T, D] ('all', 'last', an int array [B, P]), or None for 'none'."""
  if isinstance(logits_at, str):
    if logits_at == 'none':
      return None
    if logits_at == 'last':
      x = _gather(x, last_token_positions(token_mask))
    elif logits_at != 'all':
      raise errors.ConfigError(
          f"logits_at={logits_at!r}: expected 'all', 'last', 'none' or an "
          'array of positions')
  else:
    x = _gather(x, logits_at)
  x = norm(x)
  head = table.T if config.tie_embeddings else lm_head  # [D, V]
  logits = jnp.einsum('BTD,DV->BTV', x, head,
                      preferred_element_type=jnp.float32)
  if config.final_softcap is not None:
    logits = layers.softcap(logits, config.final_softcap)
  return logits


def forward(
    params: Params,
    config: ModelConfig,
    input_ids: jax.Array | None = None,
    *,
    attention_mask: jax.Array | None = None,
    positions: jax.Array | None = None,
    interventions: Any = None,
    capture: Sequence[tuple[str, int]] | None = None,
    capture_positions: jax.Array | None = None,
    start_layer: int = 0,
    stop_layer: int | None = None,
    resid: jax.Array | None = None,
    logits_at: str | jax.Array = 'all',
    cache: KVCache | None = None,
    prompt_mask: jax.Array | None = None,
) -> Output:
  """Runs the decoder as a pure function.

  Args:
    params: parameter pytree (nnx.State) of a Transformer for `config`.
    config: the architecture (static under jit).
    input_ids: [B, T] token ids; when resuming from `resid` they are not
      embedded, only passed to interventions that read them (SAEEdit's
      `skip_ids`).
    attention_mask: [B, T] 1 at real tokens, 0 at (left) padding; default all 1.
    positions: [B, T] position ids; default from the mask (left padding aware).
    interventions: None, one intervention, or a sequence of them (see
      models/intervention.py).
    capture: (site, layer) pairs to return activations for.
    capture_positions: [B, P] token indices to capture at; default all.
    start_layer: first block to run; when > 0, `resid` is the residual entering
      it (resid_pre[start_layer]) and the embedding is skipped.
    stop_layer: run blocks [start_layer, stop_layer) and return the residual
      (resid_pre[stop_layer]; after the last block when stop_layer ==
      num_layers) in `Output.resid` instead of logits. None = run to the end
      and compute logits.
    resid: [B, T, D] residual to resume from (with start_layer).
    logits_at: 'all' (every position), 'last' (each row's last real token,
      [B, 1, V]), 'none', or an int array [B, P] of positions. Only the
      requested rows go through the final norm and unembedding.
    cache: KV cache for generation; this chunk is written at cache.index.
    prompt_mask: [B, T] True at prompt tokens (for interventions restricted to
      the prompt); default all True.

  Returns:
    Output.

  Raises:
    errors.ConfigError: on an inconsistent layer range or missing input.
  """
  n_layers = config.num_layers
  stop = check_layer_range(config, start_layer, stop_layer, resid)
  if start_layer > 0 and cache is not None:
    raise errors.ConfigError('resuming from a residual does not use a cache')
  model = nnx.merge(graphdef(config), params)
  x = embed_input(model.embed_tokens[...], config, input_ids, resid,
                  start_layer)
  dtype = x.dtype
  t = x.shape[1]
  ctx = site_context(x, attention_mask, positions, prompt_mask, input_ids)
  token_mask, positions = ctx.token_mask, ctx.positions
  ivs = iv_base.as_tuple(interventions)
  wanted = set(capture or ())
  for site, layer in wanted:
    if site not in sites.SITES or not 0 <= layer < n_layers:
      raise errors.ConfigError(f'cannot capture ({site!r}, {layer}): '
                               f'sites {sites.SITES}, layers [0, {n_layers})')
  captured = {}

  def visit(site, layer, h):
    h = iv_base.apply_all(ivs, site, layer, h, ctx)
    if (site, layer) in wanted:
      captured[(site, layer)] = _gather(h, capture_positions)
    return h

  cos, sin = layers.rope_cos_sin(positions, config, dtype)
  if cache is not None:
    valid = jax.lax.dynamic_update_slice(cache.valid, token_mask,
                                         (0, cache.index))
  kv = None if cache is None else (cache.k, cache.v)
  for i in range(start_layer, stop):
    x, kv = apply_block(
        model.layers[i], i, x, cos, sin, token_mask, visit=visit,
        cache_kv=kv, cache_valid=None if cache is None else valid,
        cache_index=None if cache is None else cache.index)

  new_cache = None
  if cache is not None:
    new_cache = KVCache(k=kv[0], v=kv[1], valid=valid, index=cache.index + t)
  if stop_layer is not None:
    return Output(logits=None, resid=x, captured=captured, cache=new_cache)
  logits = unembed(x, config, model.norm, model.embed_tokens[...],
                   None if config.tie_embeddings else model.lm_head[...],
                   logits_at, token_mask)
  return Output(logits=logits, resid=None, captured=captured, cache=new_cache)
