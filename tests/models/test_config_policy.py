"""The config policy: real hub configs load, unimplemented math is refused.

The dicts below are the config.json files of the hub repositories they are
named after, as published (SmolLM2 also as re-saved by transformers 5).
"""

import dataclasses
import json
import math

import pytest
import transformers

import hf_tiny
from refusal_jax import errors
from refusal_jax.checkpoints import load as load_lib
from refusal_jax.models import config as config_lib
from refusal_jax.rehearsal.hub_configs import GEMMA2_2B_IT
from refusal_jax.rehearsal.hub_configs import LLAMA31_8B_INSTRUCT


GEMMA2_9B_IT = {
    'architectures': ['Gemma2ForCausalLM'],
    'attention_bias': False,
    'attention_dropout': 0.0,
    'attn_logit_softcapping': 50.0,
    'bos_token_id': 2,
    'cache_implementation': 'hybrid',
    'eos_token_id': 1,
    'final_logit_softcapping': 30.0,
    'head_dim': 256,
    'hidden_act': 'gelu_pytorch_tanh',
    'hidden_activation': 'gelu_pytorch_tanh',
    'hidden_size': 3584,
    'initializer_range': 0.02,
    'intermediate_size': 14336,
    'max_position_embeddings': 8192,
    'model_type': 'gemma2',
    'num_attention_heads': 16,
    'num_hidden_layers': 42,
    'num_key_value_heads': 8,
    'pad_token_id': 0,
    'query_pre_attn_scalar': 256,
    'rms_norm_eps': 1e-06,
    'rope_theta': 10000.0,
    'sliding_window': 4096,
    'sliding_window_size': 4096,
    'torch_dtype': 'bfloat16',
    'transformers_version': '4.42.0.dev0',
    'use_cache': True,
    'vocab_size': 256000,
}


LLAMA32_1B_INSTRUCT = {
    'architectures': ['LlamaForCausalLM'],
    'attention_bias': False,
    'attention_dropout': 0.0,
    'bos_token_id': 128000,
    'eos_token_id': [128001, 128008, 128009],
    'head_dim': 64,
    'hidden_act': 'silu',
    'hidden_size': 2048,
    'initializer_range': 0.02,
    'intermediate_size': 8192,
    'max_position_embeddings': 131072,
    'mlp_bias': False,
    'model_type': 'llama',
    'num_attention_heads': 32,
    'num_hidden_layers': 16,
    'num_key_value_heads': 8,
    'pretraining_tp': 1,
    'rms_norm_eps': 1e-05,
    'rope_scaling': {
        'factor': 32.0,
        'high_freq_factor': 4.0,
        'low_freq_factor': 1.0,
        'original_max_position_embeddings': 8192,
        'rope_type': 'llama3',
    },
    'rope_theta': 500000.0,
    'tie_word_embeddings': True,
    'torch_dtype': 'bfloat16',
    'transformers_version': '4.45.0.dev0',
    'use_cache': True,
    'vocab_size': 128256,
}

# As published (written by transformers 4.42).
SMOLLM2_135M_INSTRUCT = {
    'architectures': ['LlamaForCausalLM'],
    'attention_bias': False,
    'attention_dropout': 0.0,
    'bos_token_id': 1,
    'eos_token_id': 2,
    'head_dim': 64,
    'hidden_act': 'silu',
    'hidden_size': 576,
    'initializer_range': 0.041666666666666664,
    'intermediate_size': 1536,
    'is_llama_config': True,
    'max_position_embeddings': 8192,
    'mlp_bias': False,
    'model_type': 'llama',
    'num_attention_heads': 9,
    'num_hidden_layers': 30,
    'num_key_value_heads': 3,
    'pad_token_id': 2,
    'pretraining_tp': 1,
    'rms_norm_eps': 1e-05,
    'rope_interleaved': False,
    'rope_scaling': None,
    'rope_theta': 100000,
    'tie_word_embeddings': True,
    'torch_dtype': 'bfloat16',
    'transformers_version': '4.42.3',
    'transformers.js_config': {
        'kv_cache_dtype': {'q4f16': 'float16', 'fp16': 'float16'}},
    'use_cache': True,
    'vocab_size': 49152,
}

# The same checkpoint re-saved by transformers 5.23 (LlamaConfig.to_dict, which
# writes dtype and rope_parameters), plus the two fields a fine-tuning tool
# added in the report that prompted this policy.
SMOLLM2_135M_INSTRUCT_TF5 = {
    '_model_name_or_path': 'HuggingFaceTB/SmolLM2-135M-Instruct',
    'architectures': ['LlamaForCausalLM'],
    'attention_bias': False,
    'attention_dropout': 0.0,
    'bos_token_id': 1,
    'dtype': 'bfloat16',
    'eos_token_id': 2,
    'head_dim': 64,
    'hidden_act': 'silu',
    'hidden_size': 576,
    'initializer_range': 0.041666666666666664,
    'intermediate_size': 1536,
    'is_llama_config': True,
    'max_position_embeddings': 8192,
    'mlp_bias': False,
    'model_type': 'llama',
    'num_attention_heads': 9,
    'num_hidden_layers': 30,
    'num_key_value_heads': 3,
    'pad_token_id': 2,
    'pretraining_tp': 1,
    'rms_norm_eps': 1e-05,
    'rope_interleaved': False,
    'rope_parameters': {'rope_theta': 100000, 'rope_type': 'default'},
    'tie_word_embeddings': True,
    'transformers.js_config': {
        'kv_cache_dtype': {'fp16': 'float16', 'q4f16': 'float16'}},
    'transformers_version': '5.23.0',
    'unk_token_id': 0,
    'use_cache': True,
    'vocab_size': 49152,
}

GEMMA3_1B_IT = {
    'architectures': ['Gemma3ForCausalLM'],
    'attention_bias': False,
    'attention_dropout': 0.0,
    'attn_logit_softcapping': None,
    'bos_token_id': 2,
    'cache_implementation': 'hybrid',
    'eos_token_id': [1, 106],
    'final_logit_softcapping': None,
    'head_dim': 256,
    'hidden_activation': 'gelu_pytorch_tanh',
    'hidden_size': 1152,
    'initializer_range': 0.02,
    'intermediate_size': 6912,
    'max_position_embeddings': 32768,
    'model_type': 'gemma3_text',
    'num_attention_heads': 4,
    'num_hidden_layers': 26,
    'num_key_value_heads': 1,
    'pad_token_id': 0,
    'query_pre_attn_scalar': 256,
    'rms_norm_eps': 1e-06,
    'rope_local_base_freq': 10000,
    'rope_scaling': None,
    'rope_theta': 1000000,
    'sliding_window': 512,
    'sliding_window_pattern': 6,
    'torch_dtype': 'bfloat16',
    'transformers_version': '4.50.0.dev0',
    'use_cache': True,
    'vocab_size': 262144,
}

GEMMA3_4B_IT = {
    'architectures': ['Gemma3ForConditionalGeneration'],
    'boi_token_index': 255999,
    'eoi_token_index': 256000,
    'eos_token_id': [1, 106],
    'image_token_index': 262144,
    'initializer_range': 0.02,
    'mm_tokens_per_image': 256,
    'model_type': 'gemma3',
    'text_config': {
        'hidden_size': 2560,
        'intermediate_size': 10240,
        'model_type': 'gemma3_text',
        'num_hidden_layers': 34,
        'rope_scaling': {'factor': 8.0, 'rope_type': 'linear'},
        'sliding_window': 1024,
    },
    'torch_dtype': 'bfloat16',
    'transformers_version': '4.50.0.dev0',
    'vision_config': {
        'hidden_size': 1152,
        'image_size': 896,
        'intermediate_size': 4304,
        'model_type': 'siglip_vision_model',
        'num_attention_heads': 16,
        'num_hidden_layers': 27,
        'patch_size': 14,
        'vision_use_head': False,
    },
}

REAL = {
    'gemma-2-2b-it': GEMMA2_2B_IT,
    'gemma-2-9b-it': GEMMA2_9B_IT,
    'Llama-3.1-8B-Instruct': LLAMA31_8B_INSTRUCT,
    'Llama-3.2-1B-Instruct': LLAMA32_1B_INSTRUCT,
    'SmolLM2-135M-Instruct': SMOLLM2_135M_INSTRUCT,
    'SmolLM2-135M-Instruct (transformers 5)': SMOLLM2_135M_INSTRUCT_TF5,
}

# name: (family, layers, d_model, heads, kv heads, head_dim, mlp, vocab,
#        rope_theta, llama3 factor, attn softcap, final softcap,
#        query_pre_attn_scalar, tied, eos ids, sliding window)
EXPECTED = {
    'gemma-2-2b-it': ('gemma2', 26, 2304, 8, 4, 256, 9216, 256000, 1e4, None,
                      50.0, 30.0, 256, True, (1, 107), 4096),
    'gemma-2-9b-it': ('gemma2', 42, 3584, 16, 8, 256, 14336, 256000, 1e4, None,
                      50.0, 30.0, 256, True, (1,), 4096),
    'Llama-3.1-8B-Instruct': ('llama', 32, 4096, 32, 8, 128, 14336, 128256,
                              5e5, 8.0, None, None, 128, False,
                              (128001, 128008, 128009), None),
    'Llama-3.2-1B-Instruct': ('llama', 16, 2048, 32, 8, 64, 8192, 128256, 5e5,
                              32.0, None, None, 64, True,
                              (128001, 128008, 128009), None),
    'SmolLM2-135M-Instruct': ('llama', 30, 576, 9, 3, 64, 1536, 49152, 1e5,
                              None, None, None, 64, True, (2,), None),
    'SmolLM2-135M-Instruct (transformers 5)': (
        'llama', 30, 576, 9, 3, 64, 1536, 49152, 1e5, None, None, None, 64,
        True, (2,), None),
}


def _numbers(cfg: config_lib.ModelConfig) -> tuple:
  return (cfg.family, cfg.num_layers, cfg.d_model, cfg.num_heads,
          cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim, cfg.vocab_size,
          cfg.rope_theta, cfg.rope_scaling and cfg.rope_scaling.factor,
          cfg.attn_softcap, cfg.final_softcap, round(cfg.query_scale ** -2),
          cfg.tie_embeddings, cfg.eos_token_ids, cfg.sliding_window)


# ------------------------------------------------------------ real configs


@pytest.mark.parametrize('name', sorted(REAL))
def test_real_hub_configs_load_with_the_right_numbers(name):
  cfg = config_lib.from_hf_config(REAL[name])
  assert _numbers(cfg) == EXPECTED[name]
  assert math.isclose(cfg.query_scale ** -2, EXPECTED[name][12])
  if cfg.family == 'gemma2':
    assert cfg.layer_types[:2] == ('sliding', 'full')
    assert len(cfg.layer_types) == cfg.num_layers
  else:
    assert set(cfg.layer_types) == {'full'}


# The model judges' configs (config.judge.model_path), built from transformers'
# LlamaConfig defaults and the documented sizes rather than copied:
# HarmBench-Llama-2-13b-cls is a Llama-2-13B (40 layers, d 5120, 40 heads
# with as many key/value heads, MLP 13824, vocab 32000, RoPE base 10000 and
# no scaling, context 2048 or 4096, pretraining_tp 1, BOS 1, EOS 2, pad 0);
# Llama-Guard-3-8B has the Llama-3.1-8B architecture (llama3 RoPE scaling)
# and ends its answers with <|eot_id|> (128009).
def _llama2_13b(max_positions: int) -> dict:
  return transformers.LlamaConfig(
      vocab_size=32000, hidden_size=5120, intermediate_size=13824,
      num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40,
      max_position_embeddings=max_positions, rms_norm_eps=1e-5,
      rope_theta=10000.0, bos_token_id=1, eos_token_id=2, pad_token_id=0,
      pretraining_tp=1, tie_word_embeddings=False, use_cache=False,
      architectures=['LlamaForCausalLM'], torch_dtype='bfloat16').to_dict()


def _transformers4(d: dict) -> dict:
  """A transformers 5 dict in the layout transformers 4 wrote."""
  d = dict(d)
  rope = dict(d.pop('rope_parameters'))
  d['rope_theta'] = rope.pop('rope_theta')
  if rope.pop('rope_type') == 'default':
    d['rope_scaling'] = None
  else:
    d['rope_scaling'] = dict(rope, rope_type='llama3')
  d['torch_dtype'] = d.pop('dtype')
  d['transformers_version'] = '4.43.0'
  return d


@pytest.mark.parametrize('max_positions', (2048, 4096))
@pytest.mark.parametrize('layout', ('transformers 5', 'transformers 4'))
def test_the_harmbench_classifier_config_loads(max_positions, layout):
  d = _llama2_13b(max_positions)
  if layout == 'transformers 4':
    d = _transformers4(d)
    assert d['rope_scaling'] is None and d['pretraining_tp'] == 1
  cfg = config_lib.from_hf_config(d)
  assert _numbers(cfg) == ('llama', 40, 5120, 40, 40, 128, 13824, 32000,
                           1e4, None, None, None, 128, False, (2,), None)
  assert cfg.rope_scaling is None
  assert cfg.max_position_embeddings == max_positions
  assert (cfg.bos_token_id, cfg.pad_token_id) == (1, 0)


@pytest.mark.parametrize('layout', ('transformers 5', 'transformers 4'))
def test_the_llama_guard_3_config_loads(layout):
  d = transformers.LlamaConfig(
      **{k: v for k, v in LLAMA31_8B_INSTRUCT.items()
         if k not in ('eos_token_id', 'transformers_version')},
      eos_token_id=128009).to_dict()
  if layout == 'transformers 4':
    d = _transformers4(d)
  cfg = config_lib.from_hf_config(d)
  assert cfg == dataclasses.replace(config_lib.ModelConfig.llama31_8b(),
                                    eos_token_ids=(128009,))
  assert cfg.rope_scaling.factor == 8.0


def test_real_configs_match_the_full_size_presets():
  assert (config_lib.from_hf_config(GEMMA2_2B_IT) ==
          config_lib.ModelConfig.gemma2_2b())
  assert (config_lib.from_hf_config(LLAMA31_8B_INSTRUCT) ==
          config_lib.ModelConfig.llama31_8b())
  llama3 = config_lib.from_hf_config(LLAMA31_8B_INSTRUCT).rope_scaling
  assert (llama3.low_freq_factor, llama3.high_freq_factor,
          llama3.original_max_position_embeddings) == (1.0, 4.0, 8192)


def test_smollm2_ids_and_both_generations_agree():
  old = config_lib.from_hf_config(SMOLLM2_135M_INSTRUCT)
  new = config_lib.from_hf_config(SMOLLM2_135M_INSTRUCT_TF5)
  assert old == new
  assert (new.bos_token_id, new.eos_token_ids, new.pad_token_id) == (1, (2,), 2)


def test_smollm2_with_layer_types_loads():
  d = dict(SMOLLM2_135M_INSTRUCT_TF5, layer_types=['full_attention'] * 30)
  assert (config_lib.from_hf_config(d) ==
          config_lib.from_hf_config(SMOLLM2_135M_INSTRUCT_TF5))


def test_load_model_accepts_the_reported_smollm2_fields(tmp_path):
  d = hf_tiny.save(hf_tiny.make('llama', tie_word_embeddings=True), tmp_path)
  path = tmp_path / 'config.json'
  cfg = json.loads(path.read_text())
  extra = {k: SMOLLM2_135M_INSTRUCT_TF5[k] for k in (
      '_model_name_or_path', 'unk_token_id', 'is_llama_config',
      'rope_interleaved', 'transformers.js_config', 'pretraining_tp')}
  path.write_text(json.dumps({**cfg, **extra}))
  model = load_lib.load_model(d, tokenizer=False)
  assert model.config == config_lib.from_hf_config(cfg)
  assert model.config.tie_embeddings and model.config.num_layers == 3


@pytest.mark.parametrize('name', sorted(REAL))
def test_transformers_accepts_the_real_configs_and_its_resave_loads(
    name, tmp_path):
  src, dst = tmp_path / 'src', tmp_path / 'dst'
  src.mkdir()
  (src / 'config.json').write_text(json.dumps(REAL[name]))
  hf = transformers.AutoConfig.from_pretrained(str(src))
  assert type(hf).__name__ == ('Gemma2Config' if EXPECTED[name][0] == 'gemma2'
                               else 'LlamaConfig')
  assert hf.num_hidden_layers == EXPECTED[name][1]
  assert hf.head_dim == EXPECTED[name][5]
  hf.save_pretrained(str(dst))
  resaved = json.loads((dst / 'config.json').read_text())
  assert (config_lib.from_hf_config(resaved) ==
          config_lib.from_hf_config(REAL[name]))


# ------------------------------------------------------------- metadata


@pytest.mark.parametrize('extra', [
    {'_commit_hash': 'abc'}, {'_attn_implementation_autoset': True},
    {'unk_token_id': 0}, {'sep_token_id': 5}, {'decoder_start_token_id': 0},
    {'dtype': 'float16'}, {'torch_dtype': 'float32'}, {'use_cache': False},
    {'cache_implementation': 'static'}, {'max_length': 20},
    {'do_sample': True}, {'temperature': 0.6}, {'top_p': 0.9},
    {'initializer_factor': 1.0}, {'init_std': 0.02}, {'hidden_dropout': 0.1},
    {'attention_dropout': 0.1}, {'pretraining_tp': 2}, {'torchscript': False},
    {'output_hidden_states': True}, {'return_dict': False},
    {'use_return_dict': True}, {'attn_implementation': 'sdpa'},
    {'tokenizer_class': 'PreTrainedTokenizerFast'}, {'num_labels': 2},
    {'id2label': {'0': 'LABEL_0'}}, {'finetuning_task': None},
    {'is_decoder': True}, {'chunk_size_feed_forward': 0},
    {'name_or_path': 'x'}, {'some_future_field': 3},
])
def test_metadata_and_fields_transformers_does_not_read_are_accepted(extra):
  base = config_lib.from_hf_config(LLAMA32_1B_INSTRUCT)
  assert config_lib.from_hf_config({**LLAMA32_1B_INSTRUCT, **extra}) == base


@pytest.mark.parametrize('extra', [
    {'attention_bias': False}, {'mlp_bias': False}, {'is_causal': True},
    {'use_bidirectional_attention': False}, {'partial_rotary_factor': 1.0},
    {'rope_interleaved': False}, {'pruned_heads': {}},
    {'add_cross_attention': False}, {'is_encoder_decoder': False},
    {'quantization_config': None}, {'use_sliding_window': False},
])
def test_fixed_fields_are_accepted_at_the_implemented_value(extra):
  base = config_lib.from_hf_config(LLAMA32_1B_INSTRUCT)
  assert config_lib.from_hf_config({**LLAMA32_1B_INSTRUCT, **extra}) == base


# ------------------------------------------------------------- refusals

YARN = {'rope_type': 'yarn', 'factor': 4.0,
        'original_max_position_embeddings': 32768}


@pytest.mark.parametrize('base,changes,field', [
    (LLAMA31_8B_INSTRUCT, {'attention_bias': True}, 'attention_bias'),
    (LLAMA31_8B_INSTRUCT, {'mlp_bias': True}, 'mlp_bias'),
    (GEMMA2_2B_IT, {'attention_bias': True}, 'attention_bias'),
    (LLAMA31_8B_INSTRUCT, {'rope_scaling': YARN}, 'rope_scaling'),
    (LLAMA31_8B_INSTRUCT, {'rope_scaling': {'type': 'dynamic', 'factor': 2.0}},
     'rope_scaling'),
    (SMOLLM2_135M_INSTRUCT_TF5,
     {'rope_parameters': {**YARN, 'rope_theta': 1e5}}, 'rope_parameters'),
    (SMOLLM2_135M_INSTRUCT_TF5,
     {'rope_parameters': {'rope_type': 'dynamic', 'factor': 2.0,
                          'rope_theta': 1e5}}, 'rope_parameters'),
    (SMOLLM2_135M_INSTRUCT_TF5, {'rope_scaling': YARN}, 'rope_scaling'),
    (LLAMA31_8B_INSTRUCT, {'hidden_act': 'gelu'}, 'hidden_act'),
    (GEMMA2_2B_IT, {'hidden_activation': 'gelu'}, 'hidden_activation'),
    (LLAMA31_8B_INSTRUCT, {'quantization_config': {
        'quant_method': 'bitsandbytes', 'load_in_4bit': True}},
     'quantization_config'),
    (LLAMA31_8B_INSTRUCT, {'is_causal': False}, 'is_causal'),
    (GEMMA2_2B_IT, {'use_bidirectional_attention': True},
     'use_bidirectional_attention'),
    (LLAMA31_8B_INSTRUCT, {'attention_chunk_size': 8192},
     'attention_chunk_size'),
    (SMOLLM2_135M_INSTRUCT, {'rope_interleaved': True}, 'rope_interleaved'),
    (LLAMA31_8B_INSTRUCT, {'partial_rotary_factor': 0.5},
     'partial_rotary_factor'),
    (LLAMA31_8B_INSTRUCT, {'pruned_heads': {'0': [1]}}, 'pruned_heads'),
    (LLAMA31_8B_INSTRUCT, {'per_layer_config': {'0': {'skip': True}}},
     'per_layer_config'),
    (LLAMA31_8B_INSTRUCT, {'sliding_window': 4096}, 'sliding_window'),
    (LLAMA31_8B_INSTRUCT, {'final_logit_softcapping': 30.0},
     'final_logit_softcapping'),
    (LLAMA31_8B_INSTRUCT, {'use_sliding_window': True}, 'use_sliding_window'),
    (LLAMA31_8B_INSTRUCT, {'is_encoder_decoder': True}, 'is_encoder_decoder'),
    (LLAMA31_8B_INSTRUCT, {'tie_word_embeddings': 'yes'},
     'tie_word_embeddings'),
    (GEMMA2_2B_IT, {'tie_word_embeddings': False}, 'tie_word_embeddings'),
    (LLAMA31_8B_INSTRUCT, {'layer_types': ['sliding_attention'] * 32},
     'layer_types'),
    (LLAMA31_8B_INSTRUCT, {'architectures': ['MistralForCausalLM']},
     'architectures'),
    (GEMMA3_1B_IT, {}, 'model_type'),
    (GEMMA3_4B_IT, {}, 'model_type'),
    (GEMMA3_1B_IT, {'model_type': 'gemma2'}, 'architectures'),
])
def test_unimplemented_math_is_refused_in_one_line_naming_the_field(
    base, changes, field):
  with pytest.raises(errors.ConfigError) as e:
    config_lib.from_hf_config({**base, **changes})
  message = str(e.value)
  assert field in message and '\n' not in message, message


def test_gemma3_refusal_says_why():
  for d in (GEMMA3_1B_IT, GEMMA3_4B_IT):
    with pytest.raises(errors.ConfigError, match='Gemma-3 is not Gemma-2'):
      config_lib.from_hf_config(d)


def test_refusals_name_field_and_value():
  with pytest.raises(errors.ConfigError) as e:
    config_lib.from_hf_config({**LLAMA31_8B_INSTRUCT, 'mlp_bias': True})
  assert str(e.value).startswith('config field mlp_bias=True ')
  with pytest.raises(errors.ConfigError) as e:
    config_lib.from_hf_config({**LLAMA31_8B_INSTRUCT, 'quantization_config': {
        'quant_method': 'gptq', 'bits': 4, 'group_size': 128,
        'desc_act': False, 'damp_percent': 0.01, 'sym': True}})
  message = str(e.value)
  assert message.startswith('config field quantization_config=')
  assert 'dequantize' in message and len(message) < 250


def test_agreeing_rope_parameters_and_rope_scaling_load():
  d = dict(LLAMA31_8B_INSTRUCT, rope_parameters={
      **LLAMA31_8B_INSTRUCT['rope_scaling'], 'rope_theta': 500000.0})
  assert config_lib.from_hf_config(d) == config_lib.from_hf_config(
      LLAMA31_8B_INSTRUCT)


# ------------------------------------------- coverage of transformers' fields


@pytest.mark.parametrize('family', ['gemma2', 'llama'])
def test_every_field_transformers_declares_is_classified(family):
  declared = config_lib.transformers_fields(family)
  assert {'hidden_size', 'num_hidden_layers', 'rope_parameters',
          'attention_bias', 'vocab_size'} <= declared
  unclassified = sorted(f for f in declared
                        if config_lib.field_kind(f, family) == 'other')
  assert not unclassified, (
      f'transformers declares {unclassified} for {family}: classify them in '
      'refusal_jax/models/config.py')


def test_generation_settings_are_metadata():
  for name in transformers.GenerationConfig().to_dict():
    assert config_lib.field_kind(name, 'llama') in ('metadata', 'implemented')


def test_declared_but_unclassified_field_is_refused(monkeypatch):
  monkeypatch.setattr(config_lib, 'transformers_fields',
                      lambda family: frozenset({'mystery_scale'}))
  with pytest.raises(errors.ConfigError) as e:
    config_lib.from_hf_config({**LLAMA32_1B_INSTRUCT, 'mystery_scale': 2.0})
  assert 'mystery_scale=2.0' in str(e.value)
  assert 'LlamaConfig' in str(e.value) and '\n' not in str(e.value)
