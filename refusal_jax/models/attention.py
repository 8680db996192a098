"""Grouped-query attention with RoPE, softcapping, sliding windows and a KV cache.

Axis letters: see refusal_jax/axes.py. Queries are grouped as [B, T, K, G, H]
so MHA (K == N), GQA and MQA (K == 1) share one einsum.

Masks are built from *slot* indices (the index of a token in the padded
sequence or in the KV cache), as transformers does: query slot i sees key slot
j when j <= i, j holds a real token, and, on sliding layers, i - j < window.
"""

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from refusal_jax import errors
from refusal_jax.models import layers
from refusal_jax.models.config import ModelConfig


@flax.struct.dataclass
class KVCache:
  """Keys and values of every layer for generation.

  Attributes:
    k: [L, B, S, K, H] keys (RoPE applied).
    v: [L, B, S, K, H] values.
    valid: [B, S] bool, True at slots holding a real token.
    index: int32 scalar, number of slots written so far.
  """
  k: jax.Array
  v: jax.Array
  valid: jax.Array
  index: jax.Array

  @classmethod
  def init(cls, config: ModelConfig, batch: int, size: int,
           dtype) -> 'KVCache':
    shape = (config.num_layers, batch, size, config.num_kv_heads,
             config.head_dim)
    return cls(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype),
               valid=jnp.zeros((batch, size), bool),
               index=jnp.zeros((), jnp.int32))


def attention_mask(q_slots: jax.Array, k_slots: jax.Array,
                   key_valid: jax.Array, window: int | None) -> jax.Array:
  """Boolean mask [B, T, S] from query slots [T] or [B, T], key slots [S] and
  valid [B, S]."""
  q = q_slots[..., :, None]  # [T, 1] or [B, T, 1]
  causal = k_slots <= q
  if window is not None:
    causal &= q - k_slots < window
  if causal.ndim == 2:
    causal = causal[None]
  return causal & key_valid[:, None, :]


def gather_slots(x: jax.Array, index: jax.Array) -> jax.Array:
  """x [B, T, ...] at slots index [B, P] -> [B, P, ...]."""
  return jnp.take_along_axis(
      x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


class Attention(nnx.Module):
  """Self-attention block: q/k/v/o projections named as in transformers."""

  def __init__(self, config: ModelConfig, layer: int, *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    d, n, k, h = (config.d_model, config.num_heads, config.num_kv_heads,
                  config.head_dim)
    init = nnx.initializers.normal(0.02)
    self.config = config
    self.window = (config.sliding_window
                   if config.layer_types[layer] == 'sliding' else None)
    self.q_proj = nnx.Param(init(rngs.params(), (d, n, h), dtype))  # [D, N, H]
    self.k_proj = nnx.Param(init(rngs.params(), (d, k, h), dtype))  # [D, K, H]
    self.v_proj = nnx.Param(init(rngs.params(), (d, k, h), dtype))  # [D, K, H]
    self.o_proj = nnx.Param(nnx.initializers.normal(
        0.02 / (2 * config.num_layers) ** 0.5)(rngs.params(), (n, h, d),
                                               dtype))  # [N, H, D]

  def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array,
               token_mask: jax.Array, cache_kv=None, cache_valid=None,
               cache_index=None, query_index=None, window=None,
               cache_layer: int = 0):
    """Attends x [B, T, D]; returns ([B, T', D], updated (k, v) or None).

    Args:
      x: [B, T, D] normalised input.
      cos: [B, T, H] RoPE table; sin likewise.
      token_mask: [B, T] real tokens of this chunk (used without a cache).
      cache_kv: optional (k, v) [L, B, S, K, H] of every layer; this
        chunk's keys and values are written at [cache_layer, :,
        cache_index:] of them and the updated pair is returned. Writing
        into the stacked arrays, rather than into one layer's [B, S, K, H]
        slice restacked afterwards, lets XLA update the cache in place: the
        restacked form copied all of it at every generated token.
      cache_valid: [B, S] valid slots (already including this chunk).
      cache_index: slot of the first token of this chunk.
      cache_layer: this layer's index in `cache_kv`.
      query_index: optional [B, P] slots to compute queries (and outputs) at,
        without a cache; keys and values still cover every slot. Default: all
        T slots.
      window: the sliding window, possibly traced (models/scan.py passes
        each layer's); default this layer's own (None: global).
    """
    cfg = self.config
    b = x.shape[0]
    k = layers.apply_rope(
        layers.project('BTD,DKH->BTKH', x, self.k_proj[...]), cos, sin)
    v = layers.project('BTD,DKH->BTKH', x, self.v_proj[...])
    if query_index is not None:
      if cache_kv is not None:
        raise errors.ConfigError(
            'query_index is not supported with a KV cache')
      x, cos, sin = (gather_slots(a, query_index) for a in (x, cos, sin))
    t = x.shape[1]
    q = layers.apply_rope(
        layers.project('BTD,DNH->BTNH', x, self.q_proj[...]), cos, sin)
    if cache_kv is None:
      keys, values, key_valid = k, v, token_mask
      q_slots = jnp.arange(t) if query_index is None else query_index
      new_kv = None
    else:
      at = (cache_layer, 0, cache_index, 0, 0)
      new_kv = (jax.lax.dynamic_update_slice(cache_kv[0], k[None], at),
                jax.lax.dynamic_update_slice(cache_kv[1], v[None], at))
      keys, values = new_kv[0][cache_layer], new_kv[1][cache_layer]
      key_valid = cache_valid
      q_slots = cache_index + jnp.arange(t)
    k_slots = jnp.arange(keys.shape[1])
    window = self.window if window is None else window
    mask = attention_mask(q_slots, k_slots, key_valid, window)  # [B,T,S]

    q = q.reshape(b, t, cfg.num_kv_heads, cfg.group_size, cfg.head_dim)
    scores = jnp.einsum('BTKGH,BSKH->BKGTS', q, keys) * cfg.query_scale
    scores = layers.softcap(scores.astype(jnp.float32), cfg.attn_softcap)
    scores = jnp.where(mask[:, None, None], scores,
                       jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(x.dtype)
    out = jnp.einsum('BKGTS,BSKH->BTKGH', probs, values)
    # One contracting axis N*H: over (N, H) as two axes, jnp.einsum lists
    # them as (H, N) and XLA transposes o_proj, a copy, on every call.
    nh = cfg.num_heads * cfg.head_dim
    out = out.reshape(b, t, nh)  # [B, T, N*H]
    o_proj = self.o_proj[...].reshape(nh, -1)  # [N*H, D]
    return layers.project('BTX,XD->BTD', out, o_proj), new_kv
