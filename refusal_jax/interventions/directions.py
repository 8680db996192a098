"""Direction interventions of Arditi et al. (2024): ablation and addition.

* `DirectionalAblation`: x <- x - (x . r^) r^ with r^ = r / (|r| + 1e-8), by
  default at every layer's resid_pre, attn_out and mlp_out, all positions
  (prompt and generated), exactly as refusal_direction's hooks do;
  optionally not at the positions of given token ids.
* `ActAdd`: x <- x + c r at one (site, layer), all positions.
* `orthogonalize_params`: the weight-space equivalent of the default
  `DirectionalAblation` (embedding, attention o_proj and MLP down_proj made
  orthogonal to r^), for models without post-sublayer norms.

Axis letters: see refusal_jax/axes.py.
"""

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from refusal_jax import errors
from refusal_jax.models import sites
from refusal_jax.models.config import ModelConfig

ABLATION_SITES = (sites.RESID_PRE, sites.ATTN_OUT, sites.MLP_OUT)


def unit(r: jax.Array, eps: float = 1e-8) -> jax.Array:
  """r / (|r| + eps) over the last axis, in float32."""
  r = r.astype(jnp.float32)
  return r / (jnp.linalg.norm(r, axis=-1, keepdims=True) + eps)


def project_out(x: jax.Array, direction: jax.Array) -> jax.Array:
  """x [..., D] minus its component along unit(direction) [D]."""
  r = unit(direction)
  x32 = x.astype(jnp.float32)
  coef = jnp.einsum('...D,D->...', x32, r)
  return (x32 - coef[..., None] * r).astype(x.dtype)


@flax.struct.dataclass
class DirectionalAblation:
  """Removes a direction from the residual stream at the chosen sites.

  Attributes:
    direction: [D] direction (normalised inside); give it a leading [M] axis
      and vmap to sweep candidates.
    sites: sites to ablate at (static).
    layers: layers to ablate at (static); None = every layer.
    skip_ids: optional [S] token ids whose positions are left unchanged
      (e.g. BOS and the chat template's special tokens, where small models
      keep massive activations: ablating there can break every reply);
      needs the forward pass's input_ids. None = every position.
  """
  direction: jax.Array
  sites: tuple[str, ...] = flax.struct.field(pytree_node=False,
                                             default=ABLATION_SITES)
  layers: tuple[int, ...] | None = flax.struct.field(pytree_node=False,
                                                     default=None)
  skip_ids: jax.Array | None = None

  def apply(self, site, layer, x, ctx):
    if site not in self.sites or (self.layers is not None and
                                  layer not in self.layers):
      return x
    out = project_out(x, self.direction)
    if self.skip_ids is None:
      return out
    if ctx.input_ids is None:
      raise errors.ConfigError(
          'DirectionalAblation.skip_ids needs the token ids: pass input_ids '
          'to the forward pass')
    keep = ~jnp.isin(ctx.input_ids, jnp.asarray(self.skip_ids))  # [B, T]
    return jnp.where(keep[..., None], out, x)


@flax.struct.dataclass
class ActAdd:
  """Adds coeff * vector at a site of one layer, at every position.

  Attributes:
    vector: [D] the (unnormalised) direction.
    coeff: scalar coefficient (+1 induces refusal, -1 bypasses it).
    layer: the block index (static).
    site: the site (static), default resid_pre as in refusal_direction.
    layer_weights: optional [L] weights; when given, the addition happens at
      `site` of every layer l scaled by layer_weights[l] and `layer` is
      ignored. A one-hot row makes the layer a traced value, so candidates at
      different layers can be vmapped in one call.
  """
  vector: jax.Array
  coeff: jax.Array | float
  layer: int = flax.struct.field(pytree_node=False, default=0)
  site: str = flax.struct.field(pytree_node=False, default=sites.RESID_PRE)
  layer_weights: jax.Array | None = None

  def apply(self, site, layer, x, ctx):
    del ctx
    if site != self.site:
      return x
    coeff = jnp.asarray(self.coeff, jnp.float32)
    if self.layer_weights is not None:
      coeff = coeff * self.layer_weights[layer].astype(jnp.float32)
    elif layer != self.layer:
      return x
    add = coeff * self.vector.astype(jnp.float32)
    return (x.astype(jnp.float32) + add).astype(x.dtype)


def orthogonalize_params(params, config: ModelConfig, direction: jax.Array):
  """Weight-space directional ablation: params -> params.

  Every matrix that writes into the residual stream (the embedding, each
  attention o_proj and each MLP down_proj) is made orthogonal to unit(r) along
  its D axis, which equals `DirectionalAblation(r)` at resid_pre, attn_out and
  mlp_out of every layer.

  Args:
    params: model parameters.
    config: the architecture.
    direction: [D].

  Returns:
    New parameters; the input is not modified.

  Raises:
    errors.ConfigError: for models with post-sublayer norms (Gemma-2): their
      attn_out / mlp_out pass through an RMSNorm after the write matrices, so
      no weight edit equals the activation ablation there.
  """
  if config.post_norms:
    raise errors.ConfigError(
        'weight orthogonalization is not equivalent to directional ablation '
        'for models with post-attention/feedforward norms (Gemma-2); use '
        'DirectionalAblation instead')
  flat = nnx.to_flat_state(params)
  out = []
  for path, var in flat:
    name = path[-1]
    if name in ('embed_tokens', 'o_proj', 'down_proj'):
      w = var[...]
      out.append((path, var.replace(project_out(w, direction).astype(w.dtype))))
    else:
      out.append((path, var))
  return nnx.from_flat_state(out)
