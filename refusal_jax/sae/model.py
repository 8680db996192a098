"""Sparse autoencoder (SAE) pytree and its encode/decode maths.

One `SAE` class covers the three inference architectures this project loads:

  jumprelu  f = relu(pre) * (pre > threshold)           (Gemma Scope, Llama
                                                         Scope, SAELens)
  topk      f = scatter(relu(top_k(pre', k)))           (SAELens 'topk')
            with pre' = pre * ||W_dec_i|| when `rescale_acts_by_decoder_norm`
  relu      f = relu(pre)                               (SAELens 'standard')

where `pre = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc` and the
reconstruction is `x_hat = f @ W_dec + b_dec` (for topk with
`rescale_acts_by_decoder_norm`, `f` is divided by ||W_dec_i|| first).

Input normalisation is never applied at run time: a loader folds a known
dataset-wide scaling factor `s` into the weights (see `fold_input_scaling`),
so every `SAE` takes raw model activations and reconstructs them in the same
raw space.

Matrix products take their operands in the weight dtype and accumulate in
float32 (`preferred_element_type`); biases, thresholds and every returned
array are float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

ARCHITECTURES = ('jumprelu', 'topk', 'relu')


@struct.dataclass
class SAE:
  """An inference SAE over one residual-stream site of one layer.

  Attributes:
    W_enc: encoder weights [D, A].
    b_enc: encoder bias [A].
    W_dec: decoder weights [A, D].
    b_dec: decoder bias [D].
    threshold: JumpReLU thresholds [A], always float32; None unless
      `architecture == 'jumprelu'`.
    architecture: one of `ARCHITECTURES`.
    k: number of latents kept per token (topk only, else None).
    apply_b_dec_to_input: subtract `b_dec` from the input before encoding.
    rescale_acts_by_decoder_norm: topk only; rank (and report) latents by
      `hidden_pre * ||W_dec_i||` and divide by the norm again when decoding,
      as SAELens does.
    site: one of `refusal_jax.models.sites.SITES`.
    layer: decoder layer index the SAE reads.
    hook_name: TransformerLens hook name, e.g. 'blocks.12.hook_resid_post'.
    model_name: name of the model the SAE was trained on.
    neuronpedia_id: Neuronpedia id, or None when unknown.
    dtype: name of the weights' dtype ('float32', 'bfloat16', ...).
  """

  W_enc: jax.Array
  b_enc: jax.Array
  W_dec: jax.Array
  b_dec: jax.Array
  threshold: jax.Array | None
  architecture: str = struct.field(pytree_node=False)
  k: int | None = struct.field(pytree_node=False)
  apply_b_dec_to_input: bool = struct.field(pytree_node=False)
  rescale_acts_by_decoder_norm: bool = struct.field(pytree_node=False)
  site: str = struct.field(pytree_node=False)
  layer: int = struct.field(pytree_node=False)
  hook_name: str = struct.field(pytree_node=False)
  model_name: str = struct.field(pytree_node=False)
  neuronpedia_id: str | None = struct.field(pytree_node=False)
  dtype: str = struct.field(pytree_node=False)

  @property
  def d_in(self) -> int:
    """Input width D."""
    return self.W_enc.shape[0]

  @property
  def d_sae(self) -> int:
    """Number of latents A."""
    return self.W_enc.shape[1]

  def decoder_norms(self) -> jax.Array:
    """Row norms of the decoder, ||W_dec_i||, float32 [A]."""
    w = self.W_dec.astype(jnp.float32)
    return jnp.sqrt(jnp.einsum('AD,AD->A', w, w))

  def encode_pre(self, x: jax.Array) -> jax.Array:
    """Pre-activations (SAELens `hook_sae_acts_pre`).

    Args:
      x: activations [..., D], any float dtype.

    Returns:
      hidden_pre [..., A], float32.
    """
    x = x.astype(jnp.float32)
    if self.apply_b_dec_to_input:
      x = x - self.b_dec.astype(jnp.float32)
    pre = jnp.einsum('...D,DA->...A', x.astype(self.W_enc.dtype), self.W_enc,
                     preferred_element_type=jnp.float32)
    return pre + self.b_enc.astype(jnp.float32)

  def activate(self, hidden_pre: jax.Array) -> jax.Array:
    """Applies the architecture's activation to pre-activations.

    Args:
      hidden_pre: [..., A] float32, as returned by `encode_pre`.

    Returns:
      latents [..., A], float32.
    """
    if self.architecture == 'jumprelu':
      keep = hidden_pre > self.threshold
      return jnp.where(keep, jax.nn.relu(hidden_pre), 0.0)
    if self.architecture == 'relu':
      return jax.nn.relu(hidden_pre)
    if self.rescale_acts_by_decoder_norm:
      hidden_pre = hidden_pre * self.decoder_norms()
    return _topk_relu(hidden_pre, self.k)

  def encode(self, x: jax.Array) -> jax.Array:
    """Latent activations.

    Args:
      x: activations [..., D].

    Returns:
      latents [..., A], float32.
    """
    return self.activate(self.encode_pre(x))

  def decode(self, f: jax.Array) -> jax.Array:
    """Reconstruction from latents.

    Args:
      f: latents [..., A].

    Returns:
      x_hat [..., D], float32.
    """
    f = f.astype(jnp.float32)
    if self.architecture == 'topk' and self.rescale_acts_by_decoder_norm:
      f = f / self.decoder_norms()
    out = jnp.einsum('...A,AD->...D', f.astype(self.W_dec.dtype), self.W_dec,
                     preferred_element_type=jnp.float32)
    return out + self.b_dec.astype(jnp.float32)

  def reconstruct(self, x: jax.Array) -> jax.Array:
    """`decode(encode(x))`: [..., D] -> [..., D] float32."""
    return self.decode(self.encode(x))


def _topk_relu(hidden_pre: jax.Array, k: int) -> jax.Array:
  """Keeps the k largest entries of the last axis, applies relu, zeros the rest.

  Args:
    hidden_pre: [..., A].
    k: number of entries kept per row.

  Returns:
    [..., A] with at most k non-zero entries per row.
  """
  lead = hidden_pre.shape[:-1]
  flat = hidden_pre.reshape(-1, hidden_pre.shape[-1])
  values, idx = jax.lax.top_k(flat, k)
  rows = jnp.arange(flat.shape[0])[:, None]
  out = jnp.zeros_like(flat).at[rows, idx].set(jax.nn.relu(values))
  return out.reshape(*lead, hidden_pre.shape[-1])


def fold_input_scaling(W_enc: np.ndarray, W_dec: np.ndarray, b_dec: np.ndarray,
                       s_in: float, s_out: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Folds dataset-wide input/output scaling into SAE weights.

  An SAE trained on scaled inputs `x_n = s_in * x` whose reconstruction is
  mapped back to raw space by `x_hat = x_hat_n / s_out` computes

    pre   = (s_in * x - b_dec * a) @ W_enc + b_enc
          = (x - (b_dec / s_in) * a) @ (s_in * W_enc) + b_enc
    x_hat = (f @ W_dec + b_dec) / s_out = f @ (W_dec / s_out) + b_dec / s_out

  with `a = apply_b_dec_to_input`. Hence `W_enc' = s_in * W_enc`,
  `W_dec' = W_dec / s_out`, `b_dec' = b_dec / s_out`; the latents `f`, the
  pre-activations and any threshold are unchanged. When `a` is set the fold is
  exact only for `s_in == s_out` (callers check this). With `s_in = s_out = s`
  this is SAELens's `W_enc *= s; W_dec /= s; b_dec /= s`.

  Args:
    W_enc: [D, A] float32.
    W_dec: [A, D] float32.
    b_dec: [D] float32.
    s_in: input scaling factor.
    s_out: output scaling factor.

  Returns:
    (W_enc', W_dec', b_dec'), float32.
  """
  f32 = np.float32
  return (W_enc.astype(f32) * f32(s_in), W_dec.astype(f32) / f32(s_out),
          b_dec.astype(f32) / f32(s_out))
