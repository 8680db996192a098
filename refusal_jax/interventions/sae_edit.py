"""Editing SAE latents inside the running model, keeping the SAE's error term.

At the SAE's site the residual x is encoded, f = encode(x); chosen latents are
edited to f'; and the residual becomes

    x + (decode(f') - decode(f)),

i.e. only the edited latents change the output and the reconstruction error
x - decode(f) is kept. Because decode is affine, the delta is computed as the
decoder's linear part applied to (f' - f), which is exactly zero for an empty
edit, so an empty edit reproduces the clean logits bit for bit.

Modes (per latent, where `latent_mask` is set):
  'zero'   f'_a = 0
  'clamp'  f'_a = value
  'scale'  f'_a = value * f_a   (the predecessor's negative clamps are
                                 'scale' with value -3 / -1)

Positions: 'all' real tokens (prompt and generated), 'prompt' tokens only,
optionally intersected with an explicit [B, T] `position_mask`. Tokens whose
id is in `skip_ids` (e.g. BOS and the chat template's special tokens, which
SAEs such as Gemma Scope never saw in training) are left unchanged wherever
they are: in the prompt, in generated tokens and in teacher-forced
completions alike.

Axis letters: see refusal_jax/axes.py (A = SAE latents).
"""

import flax.struct
import jax
import jax.numpy as jnp

from refusal_jax import errors
from refusal_jax.sae.model import SAE

MODES = ('zero', 'clamp', 'scale')
POSITIONS = ('all', 'prompt')


def latent_delta(sae: SAE, f: jax.Array, edited: jax.Array) -> jax.Array:
  """decode(edited) - decode(f) [..., D] float32, exact zero when equal."""
  return sae.decode(edited - f) - sae.b_dec.astype(jnp.float32)


def edit_latents(f: jax.Array, latent_mask: jax.Array, value, mode: str):
  """Applies an edit to latents f [..., A] where latent_mask [A] is set."""
  m = latent_mask.astype(jnp.float32)
  value = jnp.asarray(value, jnp.float32)
  if mode == 'zero':
    return f * (1.0 - m)
  if mode == 'clamp':
    return f + m * (value - f)
  if mode == 'scale':
    return f + m * (value - 1.0) * f
  raise errors.ConfigError(f'unknown SAE edit mode {mode!r}; expected {MODES}')


@flax.struct.dataclass
class SAEEdit:
  """Zero, clamp or scale a set of SAE latents at the SAE's site.

  Attributes:
    sae: the SAE; its `site` and `layer` say where the edit applies.
    latent_mask: [A] 0/1 (or bool) latents to edit. Stack a leading [M] axis
      and vmap to sweep feature sets.
    value: scalar or [A]: the clamp value ('clamp') or factor ('scale');
      ignored for 'zero'.
    position_mask: optional [B, T] bool, further restricting positions.
    mode: 'zero' | 'clamp' | 'scale' (static).
    positions: 'all' | 'prompt' (static).
    skip_ids: optional [S] int token ids whose positions are left unchanged
      (the forward pass must be given input_ids, also when it resumes from a
      residual).
  """
  sae: SAE
  latent_mask: jax.Array
  value: jax.Array | float = 0.0
  position_mask: jax.Array | None = None
  mode: str = flax.struct.field(pytree_node=False, default='zero')
  positions: str = flax.struct.field(pytree_node=False, default='all')
  skip_ids: jax.Array | None = None

  def apply(self, site, layer, x, ctx):
    if site != self.sae.site or layer != self.sae.layer:
      return x
    if self.positions not in POSITIONS:
      raise errors.ConfigError(
          f'unknown positions {self.positions!r}; expected {POSITIONS}')
    f = self.sae.encode(x)  # [B, T, A]
    delta = latent_delta(self.sae, f, edit_latents(
        f, self.latent_mask, self.value, self.mode))
    where = ctx.token_mask
    if self.positions == 'prompt':
      where = where & ctx.prompt_mask
    if self.position_mask is not None:
      where = where & self.position_mask.astype(bool)
    if self.skip_ids is not None:
      if ctx.input_ids is None:
        raise errors.ConfigError(
            'SAEEdit.skip_ids needs the token ids: pass input_ids to the '
            'forward pass, also when it resumes from a residual')
      where = where & ~jnp.isin(ctx.input_ids, jnp.asarray(self.skip_ids))
    delta = jnp.where(where[..., None], delta, 0.0)
    return (x.astype(jnp.float32) + delta).astype(x.dtype)
