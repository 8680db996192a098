"""The contract between the decoder and interventions.

The forward pass (models/transformer.py) owns this contract, so it lives
with it; the interventions themselves (refusal_jax/interventions/) sit
above the models and implement it. `refusal_jax.interventions.base`
re-exports every name here, for code that imports it from there.

An intervention is any pytree object with a method

    apply(site: str, layer: int, x: [B, T, D], ctx: SiteContext) -> [B, T, D]

The decoder calls `apply_all` at every named site (see models/sites.py). Each
intervention decides from its *static* fields (Python values, not arrays)
whether it acts at (site, layer), so a site it does not touch costs nothing
after tracing, and `interventions=None` is an exact no-op. Array fields (a
direction, a latent mask, a coefficient) are ordinary pytree leaves, so a sweep
is `jax.vmap` over a stacked leading axis of those leaves.
"""

from typing import Any, Protocol, Sequence

import flax.struct
import jax


@flax.struct.dataclass
class SiteContext:
  """What an intervention may need besides the activation itself.

  Attributes:
    token_mask: [B, T] bool, True at real (non-padding) tokens.
    prompt_mask: [B, T] bool, True at tokens of the prompt (the prefill pass),
      False at generated tokens.
    positions: [B, T] int32 position ids.
    input_ids: [B, T] token ids, or None when a pass resumes from a residual
      without them.
  """
  token_mask: jax.Array
  prompt_mask: jax.Array
  positions: jax.Array
  input_ids: jax.Array | None = None


class Intervention(Protocol):
  """Anything with an `apply(site, layer, x, ctx)` method."""

  def apply(self, site: str, layer: int, x: jax.Array,
            ctx: SiteContext) -> jax.Array:
    ...


Interventions = Intervention | Sequence[Intervention] | None


def as_tuple(interventions: Any) -> tuple[Any, ...]:
  """Normalises None / one intervention / a sequence to a tuple."""
  if interventions is None:
    return ()
  if isinstance(interventions, (list, tuple)):
    return tuple(interventions)
  return (interventions,)


def apply_all(interventions: tuple[Any, ...], site: str, layer: int,
              x: jax.Array, ctx: SiteContext) -> jax.Array:
  """Applies every intervention in order at one site.

  Args:
    interventions: a tuple from `as_tuple`.
    site: one of models.sites.SITES.
    layer: the block index.
    x: [B, T, D] activation at the site.
    ctx: the site context.

  Returns:
    [B, T, D] the edited activation (x itself when nothing acts here).
  """
  for iv in interventions:
    x = iv.apply(site, layer, x, ctx)
  return x
