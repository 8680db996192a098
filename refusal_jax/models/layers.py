"""Building blocks of the decoder: RMSNorm, rotary embeddings, gated MLP, softcap.

Axis letters: see refusal_jax/axes.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from refusal_jax.models.config import ModelConfig, RopeScaling


def softcap(x: jax.Array, cap: float | None) -> jax.Array:
  """cap * tanh(x / cap), or x when cap is None (Gemma-2 softcapping)."""
  if cap is None:
    return x
  return jnp.tanh(x / cap) * cap


class RMSNorm(nnx.Module):
  """RMSNorm computed in float32.

  Gemma stores w and scales by (1 + w), computing the product in f32 before
  casting back; Llama scales the input-dtype normalised value by w. Both
  conventions are implemented exactly as transformers does.
  """

  def __init__(self, dim: int, *, eps: float, unit_offset: bool,
               dtype=jnp.float32):
    self.eps = eps
    self.unit_offset = unit_offset
    init = jnp.zeros if unit_offset else jnp.ones
    self.weight = nnx.Param(init((dim,), dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., D] -> [..., D]."""
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True)
                                 + self.eps)
    w = self.weight[...]
    if self.unit_offset:
      return (normed * (1.0 + w.astype(jnp.float32))).astype(x.dtype)
    return w * normed.astype(x.dtype)


def rope_inv_freq(head_dim: int, theta: float,
                  scaling: RopeScaling | None) -> np.ndarray:
  """Inverse RoPE frequencies [H/2] in float32, with optional llama3 scaling.

  Follows transformers' `_compute_llama3_parameters` step by step in float32.
  """
  exps = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim
  inv_freq = (1.0 / (np.float32(theta) ** exps)).astype(np.float32)
  if scaling is None:
    return inv_freq
  old = scaling.original_max_position_embeddings
  low_wavelen = old / scaling.low_freq_factor
  high_wavelen = old / scaling.high_freq_factor
  wavelen = (2 * math.pi / inv_freq).astype(np.float32)
  scaled = np.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
  smooth = (old / wavelen - scaling.low_freq_factor) / (
      scaling.high_freq_factor - scaling.low_freq_factor)
  smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
  medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
  return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_cos_sin(positions: jax.Array, config: ModelConfig,
                 dtype) -> tuple[jax.Array, jax.Array]:
  """cos, sin tables [B, T, H] for position ids [B, T] (HF half-split layout)."""
  inv_freq = jnp.asarray(
      rope_inv_freq(config.head_dim, config.rope_theta, config.rope_scaling))
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, H/2]
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates x [B, T, heads, H] with cos/sin [B, T, H] (rotate-half form)."""
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


def project(spec: str, x: jax.Array, w: jax.Array) -> jax.Array:
  """`jnp.einsum(spec, x, w)` accumulated in float32, returned in x's dtype.

  With float32 operands this is the plain einsum. With bfloat16 operands it
  asks for the float32 accumulation that XLA's CPU backend adds anyway, in a
  form that backend runs natively: a dot with a bfloat16 result is rewritten
  into a float32 dot over a float32 copy of the weight, made on every call,
  and the scheduler, free to make the copies of all layers before the first
  layer runs, holds a float32 copy of the whole model during a forward pass.

  Args:
    spec: einsum spec, activations first (e.g. 'BTD,DF->BTF').
    x: activations, e.g. [B, T, D].
    w: weight, e.g. [D, F].
  """
  out = jnp.einsum(spec, x, w, preferred_element_type=jnp.float32)
  return out.astype(x.dtype)


class MLP(nnx.Module):
  """Gated MLP: down(act(gate(x)) * up(x)); GeGLU (tanh gelu) or SwiGLU."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs,
               dtype=jnp.float32):
    d, f = config.d_model, config.mlp_dim
    init = nnx.initializers.normal(0.02)
    self.activation = config.mlp_activation
    self.gate_proj = nnx.Param(init(rngs.params(), (d, f), dtype))  # [D, F]
    self.up_proj = nnx.Param(init(rngs.params(), (d, f), dtype))  # [D, F]
    self.down_proj = nnx.Param(
        nnx.initializers.normal(0.02 / math.sqrt(2 * config.num_layers))(
            rngs.params(), (f, d), dtype))  # [F, D]

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, T, D] -> [B, T, D]."""
    gate = project('BTD,DF->BTF', x, self.gate_proj[...])
    up = project('BTD,DF->BTF', x, self.up_proj[...])
    if self.activation == 'gelu_tanh':
      # transformers' gelu_pytorch_tanh; JAX's flag is set explicitly because
      # the defaults of JAX and PyTorch differ.
      act = jax.nn.gelu(gate, approximate=True)
    else:
      act = jax.nn.silu(gate)
    return project('BTF,FD->BTD', act * up, self.down_proj[...])
