"""The one table mapping transformers checkpoint keys to this port's parameters.

Every architecture-specific transform (transpose, head reshape) lives here, in
both directions, so loading and exporting cannot disagree. transformers stores
Linear weights as [out, in]; this port stores einsum-ready kernels:

  q_proj [D, N, H]   k_proj, v_proj [D, K, H]   o_proj [N, H, D]
  gate_proj, up_proj [D, F]   down_proj [F, D]   embed_tokens [V, D]
  lm_head [D, V]     norms [D]
"""

import dataclasses
from typing import Callable

import numpy as np

from refusal_jax.models.config import ModelConfig

Path = tuple  # path of a parameter in the nnx.State, e.g. ('layers', 0, 'norm')


@dataclasses.dataclass(frozen=True)
class Entry:
  """One parameter: its checkpoint key and the transforms between layouts."""
  hf_key: str
  to_jax: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]


def _identity(w):
  return w


def _transpose(w):
  return w.T


def param_table(config: ModelConfig) -> dict[Path, Entry]:
  """{parameter path: Entry} for every parameter of `config`'s Transformer."""
  d, n, k, h = (config.d_model, config.num_heads, config.num_kv_heads,
                config.head_dim)

  def in_heads(heads):  # [heads*H, D] -> [D, heads, H]
    return Entry('', lambda w: w.T.reshape(d, heads, h),
                 lambda w: w.reshape(d, heads * h).T)

  table = {('embed_tokens',): Entry('model.embed_tokens.weight', _identity,
                                    _identity),
           ('norm', 'weight'): Entry('model.norm.weight', _identity,
                                     _identity)}
  if not config.tie_embeddings:
    table[('lm_head',)] = Entry('lm_head.weight', _transpose, _transpose)
  norms = ['input_layernorm', 'post_attention_layernorm']
  if config.post_norms:
    norms += ['pre_feedforward_layernorm', 'post_feedforward_layernorm']
  for i in range(config.num_layers):
    pre = f'model.layers.{i}.'
    for name in norms:
      table[('layers', i, name, 'weight')] = Entry(
          f'{pre}{name}.weight', _identity, _identity)
    for name, heads in (('q_proj', n), ('k_proj', k), ('v_proj', k)):
      e = in_heads(heads)
      table[('layers', i, 'self_attn', name)] = dataclasses.replace(
          e, hf_key=f'{pre}self_attn.{name}.weight')
    table[('layers', i, 'self_attn', 'o_proj')] = Entry(
        f'{pre}self_attn.o_proj.weight', lambda w: w.T.reshape(n, h, d),
        lambda w: w.reshape(n * h, d).T)
    for name in ('gate_proj', 'up_proj', 'down_proj'):
      table[('layers', i, 'mlp', name)] = Entry(
          f'{pre}mlp.{name}.weight', _transpose, _transpose)
  return table
