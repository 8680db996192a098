"""Tiny Llama GGUF files written with the gguf package (test helper).

Weights are kept in the transformers layout ([out, in], rotary halves) and
written the way llama.cpp's convert_hf_to_gguf.py writes them: Q and K rows
permuted so each head's rotary halves interleave. The tokenizer is a small
byte-level BPE in GGUF metadata (ChatML control tokens, a few merges).
"""

import gguf
import numpy as np

from refusal_jax.checkpoints import gguf_tokenizer

D_MODEL, N_LAYERS, N_HEADS, N_KV, HEAD_DIM, MLP = 32, 2, 4, 2, 8, 64
SPECIAL = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
MERGES = ['Ġ t', 'h e', 'Ġt he', 'Ċ Ċ', 'Ġ Ġ']
TEMPLATE = ("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + "
            "m['content'] + '<|im_end|>\n'}}{% endfor %}"
            "{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}"
            "{% endif %}")


def tokens() -> list[str]:
  byte_chars = list(gguf_tokenizer.bytes_to_unicode().values())
  return SPECIAL + byte_chars + [m.replace(' ', '') for m in MERGES]


def permute(w: np.ndarray, n_heads: int) -> np.ndarray:
  """llama.cpp's Q/K row permutation (convert_hf_to_gguf.py)."""
  return (w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


def hf_weights(seed: int = 0, tied: bool = True) -> dict[str, np.ndarray]:
  """Random float32 weights under transformers Llama names."""
  rng = np.random.RandomState(seed)
  v = len(tokens())
  r = lambda *s: (rng.randn(*s) * 0.2).astype(np.float32)
  w = {'model.embed_tokens.weight': r(v, D_MODEL),
       'model.norm.weight': 1 + r(D_MODEL)}
  if not tied:
    w['lm_head.weight'] = r(v, D_MODEL)
  for i in range(N_LAYERS):
    p = f'model.layers.{i}.'
    w.update({
        p + 'input_layernorm.weight': 1 + r(D_MODEL),
        p + 'post_attention_layernorm.weight': 1 + r(D_MODEL),
        p + 'self_attn.q_proj.weight': r(N_HEADS * HEAD_DIM, D_MODEL),
        p + 'self_attn.k_proj.weight': r(N_KV * HEAD_DIM, D_MODEL),
        p + 'self_attn.v_proj.weight': r(N_KV * HEAD_DIM, D_MODEL),
        p + 'self_attn.o_proj.weight': r(D_MODEL, N_HEADS * HEAD_DIM),
        p + 'mlp.gate_proj.weight': r(MLP, D_MODEL),
        p + 'mlp.up_proj.weight': r(MLP, D_MODEL),
        p + 'mlp.down_proj.weight': r(D_MODEL, MLP)})
  return w


_GGUF_NAMES = {
    'input_layernorm': 'attn_norm', 'post_attention_layernorm': 'ffn_norm',
    'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k',
    'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
    'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up',
    'mlp.down_proj': 'ffn_down'}


def gguf_name(hf: str) -> str:
  if hf == 'model.embed_tokens.weight':
    return 'token_embd.weight'
  if hf == 'model.norm.weight':
    return 'output_norm.weight'
  if hf == 'lm_head.weight':
    return 'output.weight'
  _, _, i, rest = hf.split('.', 3)
  return f'blk.{i}.{_GGUF_NAMES[rest[:-len(".weight")]]}.weight'


def write(path: str, weights: dict[str, np.ndarray], *, arch: str = 'llama',
          qtype=gguf.GGMLQuantizationType.F32, pre: str = 'smollm',
          extra: dict[str, np.ndarray] | None = None,
          raw: dict[str, tuple[np.ndarray, gguf.GGMLQuantizationType]]
          | None = None) -> str:
  """Writes `weights` (transformers names and layout) as a GGUF file.

  Args:
    path: the file to write.
    weights: from hf_weights().
    arch: general.architecture.
    qtype: storage type of the 2-D weights (F32, F16 or a gguf.quants type).
    pre: tokenizer.ggml.pre.
    extra: more F32 tensors under GGUF names.
    raw: more tensors under GGUF names, as (bytes, storage type).
  """
  w = gguf.GGUFWriter(path, arch=arch)
  w.add_block_count(N_LAYERS)
  w.add_context_length(64)
  w.add_embedding_length(D_MODEL)
  w.add_feed_forward_length(MLP)
  w.add_head_count(N_HEADS)
  w.add_head_count_kv(N_KV)
  w.add_rope_freq_base(10000.0)
  w.add_layer_norm_rms_eps(1e-5)
  w.add_rope_dimension_count(HEAD_DIM)
  toks = tokens()
  w.add_vocab_size(len(toks))
  w.add_tokenizer_model('gpt2')
  w.add_tokenizer_pre(pre)
  w.add_token_list(toks)
  w.add_token_types([3 if t in SPECIAL else 1 for t in toks])
  w.add_token_merges(MERGES)
  w.add_bos_token_id(1)
  w.add_eos_token_id(2)
  w.add_pad_token_id(2)
  w.add_unk_token_id(0)
  w.add_add_bos_token(False)
  w.add_chat_template(TEMPLATE)
  for name, a in weights.items():
    if name.endswith('q_proj.weight'):
      a = permute(a, N_HEADS)
    elif name.endswith('k_proj.weight'):
      a = permute(a, N_KV)
    if a.ndim == 2 and qtype == gguf.GGMLQuantizationType.F16:
      w.add_tensor(gguf_name(name), a.astype(np.float16))
    elif a.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
      w.add_tensor(gguf_name(name), gguf.quants.quantize(a, qtype),
                   raw_dtype=qtype)
    else:
      w.add_tensor(gguf_name(name), a)
  for name, a in (extra or {}).items():
    w.add_tensor(name, a)
  for name, (data, dtype) in (raw or {}).items():
    w.add_tensor(name, data, raw_dtype=dtype)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return path
