"""The `Model` handle users work with: config, parameters, tokenizer.

A `Model` wraps the pure forward pass (transformer.py) and greedy
generation (generation.py) of parameters already in memory. Reading a
checkpoint directory into one, `load_model`, lives with the rest of the
loading code in refusal_jax/checkpoints/load.py (also exported as
`refusal_jax.load_model`): checkpoints sit above models, so a `load_model`
here, even re-exported, would make the models import upwards.
"""

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax.models import generation
from refusal_jax.models import matmul_precision
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig


@functools.lru_cache(maxsize=64)
def _compiled_forward(config, capture, start_layer, stop_layer, logits_mode):
  """One jitted forward per static option set."""

  def run(params, input_ids, attention_mask, positions, interventions,
          capture_positions, resid, logits_positions):
    return transformer.forward(
        params, config, input_ids, attention_mask=attention_mask,
        positions=positions, interventions=interventions, capture=capture,
        capture_positions=capture_positions, start_layer=start_layer,
        stop_layer=stop_layer, resid=resid,
        logits_at=logits_positions if logits_mode == 'array' else logits_mode)

  return jax.jit(run)


@dataclasses.dataclass
class Model:
  """A loaded decoder: config, parameters and (optionally) its tokenizer.

  Attributes:
    config: the architecture.
    params: parameter pytree (nnx.State).
    tokenizer: the transformers tokenizer saved with the checkpoint, or None.
    path: where it was loaded from.
    matmul_precision: the matmul precision policy of `forward` and
      `generate` (models/matmul_precision.py): 'auto' runs float32
      parameters at 'highest' (no TF32 on GPUs) and bfloat16 ones at the
      backend's default.
  """
  config: ModelConfig
  params: Any
  tokenizer: Any = None
  path: str | None = None
  matmul_precision: str = 'auto'

  @property
  def dtype(self):
    return jax.tree.leaves(self.params)[0].dtype

  def forward(self, input_ids, attention_mask=None, *, interventions=None,
              capture: Sequence[tuple[str, int]] | None = None,
              capture_positions=None, positions=None, start_layer: int = 0,
              stop_layer: int | None = None, resid=None,
              logits_at='all') -> transformer.Output:
    """Jitted `transformer.forward` on this model's parameters.

    Args:
      input_ids: [B, T] token ids (None when resuming from `resid`).
      attention_mask: [B, T], 1 at real tokens (left padding); default all 1.
      interventions: see models/intervention.py.
      capture: (site, layer) pairs to capture.
      capture_positions: [B, P] positions to capture at; default all.
      positions: [B, T] position ids; default from the mask.
      start_layer, stop_layer, resid: run a slice of the layers.
      logits_at: 'all', 'last', 'none' or an int array [B, P].

    Returns:
      transformer.Output with `.logits` [B, T', V] float32.
    """
    mode = logits_at if isinstance(logits_at, str) else 'array'
    fn = _compiled_forward(self.config, tuple(capture or ()), start_layer,
                           stop_layer, mode)
    as_array = lambda a: None if a is None else jnp.asarray(a)
    with matmul_precision.scope(self.matmul_precision, self.dtype):
      return fn(self.params, as_array(input_ids), as_array(attention_mask),
                as_array(positions), interventions,
                as_array(capture_positions), as_array(resid),
                None if mode != 'array' else as_array(logits_at))

  def generate(self, input_ids, attention_mask=None, *,
               max_new_tokens: int, interventions=None) -> np.ndarray:
    """Greedy generation; returns [B, max_new_tokens] ids (pad after EOS).

    Args:
      input_ids: [B, T] left-padded prompt ids.
      attention_mask: [B, T], 1 at real tokens; default all 1 (no padding).
      max_new_tokens: tokens to generate.
      interventions: applied to the prompt and every generated token.
    """
    if attention_mask is None:
      attention_mask = jnp.ones(jnp.shape(input_ids), jnp.int32)
    eos, pad = self._stop_ids()
    with matmul_precision.scope(self.matmul_precision, self.dtype):
      return np.asarray(generation.greedy_generate(
          self.params, self.config, jnp.asarray(input_ids),
          jnp.asarray(attention_mask), max_new_tokens=max_new_tokens,
          interventions=interventions, eos_ids=eos, pad_id=pad))

  def prefill(self, input_ids, attention_mask, *, max_new_tokens: int,
              interventions=None) -> generation.Decoding:
    """`generate`'s first half (models/generation.py `prefill`)."""
    eos, pad = self._stop_ids()
    with matmul_precision.scope(self.matmul_precision, self.dtype):
      return generation.prefill(
          self.params, self.config, jnp.asarray(input_ids),
          jnp.asarray(attention_mask), max_new_tokens=max_new_tokens,
          interventions=interventions, eos_ids=eos, pad_id=pad)

  def decode(self, state: generation.Decoding, until: int, *,
             interventions=None) -> generation.Decoding:
    """`generate`'s loop from `state` up to `until` tokens
    (models/generation.py `decode`; `state` is consumed)."""
    eos, pad = self._stop_ids()
    with matmul_precision.scope(self.matmul_precision, self.dtype):
      return generation.decode(
          self.params, self.config, state, jnp.asarray(until, jnp.int32),
          interventions=interventions, eos_ids=eos, pad_id=pad)

  def _stop_ids(self) -> tuple[jax.Array, int]:
    """(stop token ids [E], the id emitted after a stop)."""
    cfg = self.config
    pad = cfg.pad_token_id
    if pad is None:
      pad = cfg.eos_token_ids[0] if cfg.eos_token_ids else 0
    return jnp.asarray(cfg.eos_token_ids or (), jnp.int32), pad
