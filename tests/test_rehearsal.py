"""A tiny rehearsal: hub-layout files, real vocabularies and chat formats,
Gemma Scope / Llama Scope SAE layouts, the real-model configs, every stage."""

import json
import os

import pytest

from refusal_jax import rehearsal
from refusal_jax.checkpoints import load as load_lib
from refusal_jax.rehearsal import tokenizers


def test_tokenizers_have_the_real_sizes_ids_and_chat_formats():
  llama = tokenizers.llama31_tokenizer()
  assert len(llama) == 128256
  text = llama.apply_chat_template([{'role': 'user', 'content': 'Hi'}],
                                   tokenize=False, add_generation_prompt=True)
  assert 'Cutting Knowledge Date: December 2023' in text
  ids = llama(text, add_special_tokens=False).input_ids
  assert ids[:2] == [128000, 128006] and ids[-1] == 271  # BOS, header, \n\n
  assert llama.convert_tokens_to_ids('<|eot_id|>') == 128009
  gemma = tokenizers.gemma2_tokenizer()
  assert len(gemma) == 256000
  assert [gemma.convert_tokens_to_ids(t) for t in (
      '<pad>', '<eos>', '<bos>', '<start_of_turn>', '<end_of_turn>')] == [
          0, 1, 2, 106, 107]
  text = gemma.apply_chat_template([{'role': 'user', 'content': 'Hi'}],
                                   tokenize=False, add_generation_prompt=True)
  assert text == '<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n'
  assert gemma.decode([255999]) == '<unused255999>'  # every id decodes


# Slow (~35 s: a checkpoint and SAE written at a full vocabulary, then every
# stage); the stages themselves are checked in make test by the tiny
# dissections of tests/pipeline.
@pytest.mark.slow
@pytest.mark.parametrize('name', ['llama-3.1-8b-instruct-tiny'])
def test_tiny_rehearsal_runs_every_stage(name, tmp_path):
  p = rehearsal.preset(name)
  config = rehearsal.scale_down(rehearsal.load_config(p), prompts=2,
                                masks=4, new_tokens=2, features=2,
                                positions=1)
  result = rehearsal.rehearse(p, str(tmp_path), config, show_progress=False)
  files = result['files']
  index = os.path.join(files['model_path'], 'model.safetensors.index.json')
  assert os.path.exists(index) or os.path.exists(
      os.path.join(files['model_path'], 'model.safetensors'))
  with open(os.path.join(files['model_path'], 'config.json')) as f:
    assert json.load(f) == p.hub_config  # the hub's config.json, as is
  assert os.path.exists(os.path.join(files['sae_path'], 'hyperparams.json'))
  assert set(result['stages']) == {'direction', 'greedy', 'interactions',
                                   'hydra', 'evaluation'}
  for stats in result['stages'].values():
    assert stats['seconds'] >= 0 and stats['compile_seconds'] >= 0
    assert stats['peak_host_gb'] > 0
  assert os.path.exists(os.path.join(str(tmp_path), name, 'run',
                                     'report.html'))
  model = load_lib.load_model(files['model_path'], tokenizer=False)
  assert model.config.vocab_size == 128256
