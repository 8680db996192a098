"""The decoder with its layers scanned: one traced block, `jax.lax.scan`ned.

`transformer.forward` unrolls the layers: XLA sees L copies of the block, and
the compile time of every jitted pass grows with L. Here the per-layer
parameters are stacked along a leading [L] axis once (`stack_layers`), and
`scan_forward` runs one block body under `jax.lax.scan`, so the traced and
compiled graph holds one block whatever L is. It computes what
`transformer.forward` computes (tests/models/test_scan.py checks the logits
to 1e-5 in float32).

What differs per layer becomes scanned-over data rather than a Python
branch:

* the attention window: Gemma-2's alternating sliding / global layers are an
  [L] int32 array of windows (`layer_windows`), a global layer's window
  being larger than any sequence;
* the layer index: a traced int32 scalar. Interventions see it as `layer`;
  the ones of models/intervention.py decide where they act from a static
  layer, so they are wrapped in `AtLayer`, which runs them under
  `jax.lax.cond(layer == at, ...)`. `AtLayer.layer` is a pytree leaf: it
  may itself be traced and vmapped (each row of a sweep at its own layer;
  the cond then becomes a select, computed at every layer).

Not supported here (use `transformer.forward`): the KV cache, capture of
activations, and queries at chosen slots only.

Axis letters: see refusal_jax/axes.py.
"""

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from refusal_jax import errors
from refusal_jax.models import intervention as iv_base
from refusal_jax.models import layers
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig

# The window of a global layer: no query-key distance reaches it.
NO_WINDOW = np.iinfo(np.int32).max


@flax.struct.dataclass
class StackedParams:
  """A Transformer's parameters with the blocks stacked along [L].

  Attributes:
    embed_tokens: [V, D] embedding.
    norm: nnx.State of the final RMSNorm.
    lm_head: [D, V] output head, or None when tied to the embedding.
    layers: nnx.State of one `transformer.Block` whose every leaf has a
      leading [L] axis.
  """
  embed_tokens: jax.Array
  norm: Any
  lm_head: jax.Array | None
  layers: Any


def stack_layers(params: transformer.Params,
                 config: ModelConfig) -> StackedParams:
  """Stacks the blocks of `params` (an nnx.State of a Transformer).

  Done once, outside the jitted pass (inside it, the stack is a copy of
  every weight per call). Works on abstract parameters under
  `jax.eval_shape` too.

  Args:
    params: parameters of a Transformer for `config`.
    config: the architecture.

  Returns:
    StackedParams.

  Raises:
    errors.ConfigError: when `params` has another number of blocks.
  """
  blocks = params['layers']
  if sorted(blocks.keys()) != list(range(config.num_layers)):
    raise errors.ConfigError(
        f'params hold blocks {sorted(blocks.keys())}, the config '
        f'{config.num_layers} layers')
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs),
                         *[blocks[i] for i in range(config.num_layers)])
  return StackedParams(
      embed_tokens=params['embed_tokens'][...], norm=params['norm'],
      lm_head=(None if config.tie_embeddings else params['lm_head'][...]),
      layers=stacked)


def layer_windows(config: ModelConfig) -> np.ndarray:
  """[L] int32 attention window per layer (NO_WINDOW on global layers)."""
  return np.array([config.sliding_window if kind == 'sliding' else NO_WINDOW
                   for kind in config.layer_types], np.int32)


@functools.lru_cache(maxsize=None)
def _graphdefs(config: ModelConfig):
  """(block, final norm) graph definitions, shared by every layer."""

  def build():
    return (transformer.Block(config, 0, rngs=nnx.Rngs(0)),
            layers.RMSNorm(config.d_model, eps=config.norm_eps,
                           unit_offset=config.norm_unit_offset))

  block, norm = nnx.eval_shape(build)
  return nnx.split(block)[0], nnx.split(norm)[0]


@flax.struct.dataclass
class AtLayer:
  """An intervention acting only at the layer `layer`, for scanned passes.

  Attributes:
    intervention: any intervention (models/intervention.py).
    layer: int32 scalar, the layer to act at; a pytree leaf, so it may be
      traced and carry a vmapped sweep axis.
    inner_layer: the (static) layer handed to `intervention.apply`, for
      interventions keyed by a static layer (SAEEdit: its SAE's layer);
      None hands over the traced index (for layer-agnostic ones, e.g.
      DirectionalAblation with layers=None).
  """
  intervention: Any
  layer: jax.Array | int
  inner_layer: int | None = flax.struct.field(pytree_node=False, default=None)

  def apply(self, site, layer, x, ctx):
    inner = layer if self.inner_layer is None else self.inner_layer

    def edit(h):
      return self.intervention.apply(site, inner, h, ctx)

    # Trace the edit once without adding it to the pass: where it does not
    # act at this site (returns its input), nothing is emitted.
    acts = []

    def probe(h):
      out = edit(h)
      acts.append(out is not h)
      return out

    jax.eval_shape(probe, x)
    if not acts[0]:
      return x
    return jax.lax.cond(jnp.equal(layer, self.layer), edit, lambda h: h, x)


def _block(blk: transformer.Block, layer: jax.Array, window: jax.Array,
           x: jax.Array, cos: jax.Array, sin: jax.Array,
           token_mask: jax.Array, visit) -> jax.Array:
  """`transformer.apply_block` with a traced layer index and window."""
  return transformer.apply_block(blk, layer, x, cos, sin, token_mask,
                                 visit=visit, window=window)[0]


def scan_forward(
    params: StackedParams,
    config: ModelConfig,
    input_ids: jax.Array | None = None,
    *,
    attention_mask: jax.Array | None = None,
    positions: jax.Array | None = None,
    interventions: Any = None,
    start_layer: int = 0,
    stop_layer: int | None = None,
    resid: jax.Array | None = None,
    logits_at: str | jax.Array = 'all',
    prompt_mask: jax.Array | None = None,
    unroll: int = 1,
) -> transformer.Output:
  """`transformer.forward` with the layers scanned (no cache or capture).

  Args:
    params: `stack_layers` of a Transformer's parameters.
    config: the architecture (static under jit).
    input_ids: [B, T] token ids (see `transformer.forward`).
    attention_mask: [B, T] 1 at real tokens, 0 at (left) padding.
    positions: [B, T] position ids; default from the mask.
    interventions: None, one or a sequence; each is called with a traced
      int32 layer index, so ones keyed by a static layer go in `AtLayer`.
    start_layer: first block to run; when > 0, `resid` is resid_pre of it.
    stop_layer: run blocks [start_layer, stop_layer) and return the residual
      instead of logits; None = to the end, with logits.
    resid: [B, T, D] residual to resume from (with start_layer).
    logits_at: 'all', 'last', 'none', or an int array [B, P] of positions.
    prompt_mask: [B, T] True at prompt tokens; default all True.
    unroll: blocks per scan iteration (`jax.lax.scan`'s unroll).

  Returns:
    transformer.Output with `captured` empty and no cache.

  Raises:
    errors.ConfigError: on an inconsistent layer range, missing input or an
      unknown `logits_at`.
  """
  stop = transformer.check_layer_range(config, start_layer, stop_layer,
                                       resid)
  block_def, norm_def = _graphdefs(config)
  table = params.embed_tokens
  x = transformer.embed_input(table, config, input_ids, resid, start_layer)
  ctx = transformer.site_context(x, attention_mask, positions, prompt_mask,
                                 input_ids)
  token_mask = ctx.token_mask
  ivs = iv_base.as_tuple(interventions)

  def visit(site, layer, h):
    return iv_base.apply_all(ivs, site, layer, h, ctx)

  cos, sin = layers.rope_cos_sin(ctx.positions, config, table.dtype)
  windows = jnp.asarray(layer_windows(config))

  def body(h, layer):
    # The stack is indexed in the loop, not sliced to [start, stop) before
    # it: a slice would be a copy of those layers' weights per call.
    block_params = jax.tree.map(
        lambda a: jax.lax.dynamic_index_in_dim(a, layer, keepdims=False),
        params.layers)
    blk = nnx.merge(block_def, block_params)
    return _block(blk, layer, windows[layer], h, cos, sin,
                  token_mask, visit), None

  if stop > start_layer:
    x, _ = jax.lax.scan(body, x, jnp.arange(start_layer, stop,
                                            dtype=jnp.int32), unroll=unroll)

  if stop_layer is not None:
    return transformer.Output(logits=None, resid=x, captured={}, cache=None)
  logits = transformer.unembed(x, config, nnx.merge(norm_def, params.norm),
                               table, params.lm_head, logits_at, token_mask)
  return transformer.Output(logits=logits, resid=None, captured={},
                            cache=None)
