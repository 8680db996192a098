"""Residual-stream activations of token sequences, for training SAEs.

`capture_tokens` runs the model over right-padded batches of token
sequences and returns the activations at one site of several layers, all
captured in ONE forward pass per batch (the pass stops after the last layer
asked for), keeping real tokens only: padding, and every token whose id is in
`skip_ids` (BOS, chat-template markers), is left out. Both the organisms'
SAEs (refusal_jax/sae_recipes/organism.py) and the SAEs of any chat
checkpoint (refusal_jax/sae_recipes/chat_saes.py) read their activations
through it.

Axis letters: see refusal_jax/axes.py (B rows, T positions, D d_model,
N kept tokens).
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax import errors
from refusal_jax.models import sites
from refusal_jax.models import transformer


def _capture(params, cfg, ids, mask, *, site, layers):
  """Activations {layer: [B, T, D] float32} at (site, layer) of each layer."""
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1], dtype=jnp.int32),
                               ids.shape)
  out = transformer.forward(params, cfg, ids, attention_mask=mask,
                            positions=positions,
                            capture=[(site, layer) for layer in layers],
                            stop_layer=max(layers) + 1)
  return {layer: out.captured[(site, layer)].astype(jnp.float32)
          for layer in layers}


_capture_jit = jax.jit(_capture, static_argnames=('cfg', 'site', 'layers'))


def capture_tokens(model, sequences: Sequence[Sequence[int]], *, site: str,
                   layers: Sequence[int], batch_size: int,
                   skip_ids: Sequence[int] = (), pad_to: int | None = None,
                   bucket: int = 1) -> dict[int, np.ndarray]:
  """Activations [N, D] at every kept token of the sequences, per layer.

  Each batch holds `batch_size` rows (the last one topped up with padding
  rows), right-padded to `pad_to` tokens, or else to its longest sequence
  rounded up to a multiple of `bucket` (few distinct shapes, few compiles).
  Rows start at position 0, so padding never changes a real token's
  activation. Tokens come out in sequence order, then position order.

  Args:
    model: a loaded `refusal_jax.Model`.
    sequences: token id lists (chat-formatted text, BOS included).
    site: residual-stream site, one of `refusal_jax.models.sites.SITES`.
    layers: layer indices, all captured in the same forward pass.
    batch_size: sequences per forward pass.
    skip_ids: token ids whose activations are left out (BOS, special tokens).
    pad_to: fixed padded length of every batch (at least the longest
      sequence); None pads each batch to its own length.
    bucket: rounding of a batch's padded length when `pad_to` is None.

  Returns:
    {layer: float32 [N, D]}, N = number of kept tokens (the same for every
    layer).

  Raises:
    errors.ConfigError: an unknown site, a layer outside the model, an empty
      or over-long sequence, or a batch size or bucket below 1.
  """
  cfg = model.config
  layers = tuple(sorted(set(int(layer) for layer in layers)))
  if site not in sites.SITES:
    raise errors.ConfigError(
        f'site {site!r}: expected one of {", ".join(sites.SITES)}')
  if not layers or layers[0] < 0 or layers[-1] >= cfg.num_layers:
    raise errors.ConfigError(
        f'layers {list(layers)}: the model has layers 0..{cfg.num_layers - 1}')
  if batch_size < 1 or bucket < 1:
    raise errors.ConfigError(
        f'batch_size {batch_size} and bucket {bucket} must be >= 1')
  if not sequences or min(len(s) for s in sequences) < 1:
    raise errors.ConfigError('no tokens to capture: a sequence is empty')
  longest = max(len(s) for s in sequences)
  if pad_to is not None and pad_to < longest:
    raise errors.ConfigError(
        f'pad_to {pad_to} is shorter than the longest sequence ({longest})')
  skip = np.asarray(sorted(set(skip_ids)), np.int64)
  keeps = [~np.isin(np.asarray(s, np.int64), skip) for s in sequences]
  n = int(sum(k.sum() for k in keeps))
  out = {layer: np.empty((n, cfg.d_model), np.float32) for layer in layers}
  filled = 0
  pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else 0
  for start in range(0, len(sequences), batch_size):
    rows = sequences[start:start + batch_size]
    t = pad_to or -(-max(len(s) for s in rows) // bucket) * bucket
    ids = np.full((batch_size, t), pad_id, np.int32)
    mask = np.zeros((batch_size, t), np.int32)
    keep = np.zeros((batch_size, t), bool)
    for r, seq in enumerate(rows):
      ids[r, :len(seq)] = seq
      mask[r, :len(seq)] = 1
      keep[r, :len(seq)] = keeps[start + r]
    acts = _capture_jit(model.params, cfg, ids, mask, site=site,
                        layers=layers)
    k = int(keep.sum())
    for layer in layers:
      out[layer][filled:filled + k] = np.asarray(acts[layer])[keep]
    filled += k
  return out
