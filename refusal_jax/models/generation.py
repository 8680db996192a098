"""Jitted batched greedy generation with a KV cache.

Interventions apply to the prompt (prefill) and to every generated token, with
`SiteContext.prompt_mask` False on generated tokens so that an intervention can
restrict itself to the prompt.

`greedy_generate` is one compiled call per batch. `prefill` and `decode` are
its two halves, for callers that stop a batch after some tokens and regroup
the rows still generating (`take_rows`, `concat_rows`; the pipeline's
pipeline/regrouped.py), so that a few long answers do not keep a whole batch
of finished ones running.
"""

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax.models import transformer
from refusal_jax.models.attention import KVCache
from refusal_jax.models.config import ModelConfig


@flax.struct.dataclass
class Decoding:
  """A batch of greedy generations in progress (all rows at one step).

  Attributes:
    step: int32 scalar: tokens[:, :step + 1] are written.
    cache: the KV cache of the prompts and the tokens written.
    token: [B] each row's last token.
    done: [B] bool, the row has emitted a stop token.
    tokens: [B, G] generated ids (pad_id after a stop and where not yet
      written).
    last_pos: [B] position of each prompt's last token.
  """
  step: jax.Array
  cache: KVCache
  token: jax.Array
  done: jax.Array
  tokens: jax.Array
  last_pos: jax.Array


def _eos(eos_ids):
  return jnp.zeros((0,), jnp.int32) if eos_ids is None else eos_ids


def _prefill(params, config, input_ids, attention_mask, max_new_tokens,
             interventions, eos_ids, pad_id) -> Decoding:
  """The prompts' pass and the first generated token."""
  b, t = input_ids.shape
  dtype = jax.tree.leaves(params)[0].dtype
  cache = KVCache.init(config, b, t + max_new_tokens, dtype)
  mask = attention_mask.astype(bool)
  positions = transformer.default_positions(mask)
  prefill = transformer.forward(
      params, config, input_ids, attention_mask=mask, positions=positions,
      interventions=interventions, logits_at='last', cache=cache)
  first = jnp.argmax(prefill.logits[:, -1], axis=-1).astype(jnp.int32)
  tokens = jnp.full((b, max_new_tokens), pad_id, jnp.int32)
  return Decoding(step=jnp.zeros((), jnp.int32), cache=prefill.cache,
                  token=first, done=jnp.isin(first, _eos(eos_ids)),
                  tokens=tokens.at[:, 0].set(first),
                  last_pos=positions[:, -1])


def _decode(params, config, state: Decoding, until, interventions, eos_ids,
            pad_id) -> Decoding:
  """Steps until `until` tokens are written or every row has finished."""
  b = state.token.shape[0]
  eos_ids = _eos(eos_ids)

  # A while loop rather than a scan of max_new_tokens - 1 steps: it stops
  # once every row has finished (the rest of `tokens` is already pad_id, what
  # the finished rows would emit), so a batch of short answers, e.g.
  # refusals, costs its longest answer, not max_new_tokens. The shapes are
  # those of the scan: one compilation per (batch, prompt length,
  # max_new_tokens).
  def step(st: Decoding) -> Decoding:
    i = st.step
    pos = (st.last_pos + 1 + i)[:, None]
    res = transformer.forward(
        params, config, st.token[:, None],
        attention_mask=jnp.ones((b, 1), bool), positions=pos,
        interventions=interventions, logits_at='all', cache=st.cache,
        prompt_mask=jnp.zeros((b, 1), bool))
    nxt = jnp.argmax(res.logits[:, 0], axis=-1).astype(jnp.int32)
    nxt = jnp.where(st.done, jnp.asarray(pad_id, jnp.int32), nxt)
    tokens = jax.lax.dynamic_update_slice_in_dim(st.tokens, nxt[:, None],
                                                 i + 1, axis=1)
    return st.replace(step=i + 1, cache=res.cache, token=nxt,
                      done=st.done | jnp.isin(nxt, eos_ids), tokens=tokens)

  def running(st: Decoding):
    return (st.step < until - 1) & ~jnp.all(st.done)

  return jax.lax.while_loop(running, step, state)


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
  state = _prefill(params, config, input_ids, attention_mask, max_new_tokens,
                   interventions, eos_ids, pad_id)
  return _decode(params, config, state, max_new_tokens, interventions,
                 eos_ids, pad_id).tokens


@functools.partial(jax.jit, static_argnames=('config', 'max_new_tokens'))
def prefill(params: transformer.Params, config: ModelConfig,
            input_ids: jax.Array, attention_mask: jax.Array, *,
            max_new_tokens: int, interventions: Any = None,
            eos_ids: jax.Array | None = None,
            pad_id: int | jax.Array = 0) -> Decoding:
  """`greedy_generate`'s first part: the prompts and the first token.

  Arguments as `greedy_generate`; continue with `decode`.
  """
  return _prefill(params, config, input_ids, attention_mask, max_new_tokens,
                  interventions, eos_ids, pad_id)


@functools.partial(jax.jit, static_argnames=('config',),
                   donate_argnames=('state',))
def decode(params: transformer.Params, config: ModelConfig, state: Decoding,
           until: int | jax.Array, *, interventions: Any = None,
           eos_ids: jax.Array | None = None,
           pad_id: int | jax.Array = 0) -> Decoding:
  """`greedy_generate`'s loop, from `state` until `until` tokens are written
  (traced: one compilation for every `until`) or every row has finished.

  `prefill` then `decode` up to max_new_tokens gives `greedy_generate`'s
  tokens; stopping at an earlier `until`, regrouping rows (`take_rows`,
  `concat_rows`) and decoding on gives each row the same tokens, since no
  row's computation reads another's.

  `state` is donated: its device buffers are reused for the result (the
  cache is not copied at every call), so it must not be used afterwards.
  """
  return _decode(params, config, state, until, interventions, eos_ids,
                 pad_id)


def take_rows(state: Decoding, rows) -> Decoding:
  """The rows `rows` ([R] ints) of a batch in progress, as host (numpy)
  arrays: indexing on the host compiles nothing, whatever R is."""
  rows = np.asarray(rows, np.int64)
  cache = state.cache
  host = lambda x: np.asarray(x)
  # Every leaf is a host array, the scalars too: `decode` donates its state,
  # so no two states may share a device buffer.
  return state.replace(
      step=host(state.step),
      cache=cache.replace(k=host(cache.k)[:, rows], v=host(cache.v)[:, rows],
                          valid=host(cache.valid)[rows],
                          index=host(cache.index)),
      token=host(state.token)[rows], done=host(state.done)[rows],
      tokens=host(state.tokens)[rows], last_pos=host(state.last_pos)[rows])


def concat_rows(states: list[Decoding]) -> Decoding:
  """One batch of the rows of `states`, all at the same step (host arrays,
  as `take_rows`)."""
  first = states[0]
  cat = lambda get, axis=0: np.concatenate(
      [np.asarray(get(s)) for s in states], axis)
  return first.replace(
      cache=first.cache.replace(k=cat(lambda s: s.cache.k, 1),
                                v=cat(lambda s: s.cache.v, 1),
                                valid=cat(lambda s: s.cache.valid)),
      token=cat(lambda s: s.token), done=cat(lambda s: s.done),
      tokens=cat(lambda s: s.tokens), last_pos=cat(lambda s: s.last_pos))
