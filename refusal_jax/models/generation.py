"""Jitted batched greedy generation with a KV cache.

Interventions apply to the prompt (prefill) and to every generated token, with
`SiteContext.prompt_mask` False on generated tokens so that an intervention can
restrict itself to the prompt.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from refusal_jax.models import transformer
from refusal_jax.models.attention import KVCache
from refusal_jax.models.config import ModelConfig


@functools.partial(jax.jit, static_argnames=('config', 'max_new_tokens'))
def greedy_generate(params: transformer.Params, config: ModelConfig,
                    input_ids: jax.Array, attention_mask: jax.Array, *,
                    max_new_tokens: int, interventions: Any = None,
                    eos_ids: jax.Array | None = None,
                    pad_id: int | jax.Array = 0) -> jax.Array:
  """Greedy continuation of left-padded prompts.

  Args:
    params: model parameters.
    config: the architecture (static).
    input_ids: [B, T] left-padded prompt ids.
    attention_mask: [B, T] 1 at real tokens.
    max_new_tokens: number of tokens to generate (static).
    interventions: applied at every step (see models/intervention.py).
    eos_ids: [E] ids that end a row; after one, the row continues with pad_id
      (as transformers' generate does).
    pad_id: id emitted after a row has finished.

  Returns:
    [B, max_new_tokens] generated ids.
  """
  b, t = input_ids.shape
  dtype = jax.tree.leaves(params)[0].dtype
  cache = KVCache.init(config, b, t + max_new_tokens, dtype)
  mask = attention_mask.astype(bool)
  positions = transformer.default_positions(mask)
  prefill = transformer.forward(
      params, config, input_ids, attention_mask=mask, positions=positions,
      interventions=interventions, logits_at='last', cache=cache)
  eos_ids = jnp.zeros((0,), jnp.int32) if eos_ids is None else eos_ids
  first = jnp.argmax(prefill.logits[:, -1], axis=-1).astype(jnp.int32)
  done = jnp.isin(first, eos_ids)
  last_pos = positions[:, -1]

  # A while loop rather than a scan of max_new_tokens - 1 steps: it stops
  # once every row has finished (the rest of `tokens` is already pad_id, what
  # the finished rows would emit), so a batch of short answers, e.g.
  # refusals, costs its longest answer, not max_new_tokens. The shapes are
  # those of the scan: one compilation per (batch, prompt length,
  # max_new_tokens).
  def step(carry):
    i, cache, token, done, tokens = carry
    pos = (last_pos + 1 + i)[:, None]
    res = transformer.forward(
        params, config, token[:, None], attention_mask=jnp.ones((b, 1), bool),
        positions=pos, interventions=interventions, logits_at='all',
        cache=cache, prompt_mask=jnp.zeros((b, 1), bool))
    nxt = jnp.argmax(res.logits[:, 0], axis=-1).astype(jnp.int32)
    nxt = jnp.where(done, jnp.asarray(pad_id, jnp.int32), nxt)
    done = done | jnp.isin(nxt, eos_ids)
    tokens = jax.lax.dynamic_update_slice_in_dim(tokens, nxt[:, None], i + 1,
                                                 axis=1)
    return i + 1, res.cache, nxt, done, tokens

  def running(carry):
    i, _, _, done, _ = carry
    return (i < max_new_tokens - 1) & ~jnp.all(done)

  tokens = jnp.full((b, max_new_tokens), pad_id, jnp.int32)
  carry = (jnp.zeros((), jnp.int32), prefill.cache, first, done,
           tokens.at[:, 0].set(first))
  return jax.lax.while_loop(running, step, carry)[-1]
