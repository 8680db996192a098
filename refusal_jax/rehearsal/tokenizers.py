"""Tokenizers with the real models' vocabulary sizes, ids and chat formats.

* Llama-3.1: the real Llama-3 BPE (128,000 tokens), read from the
  `llama-models` wheel (`pip install --no-deps llama-models`) and converted
  with transformers' `TikTokenConverter`, plus the 256 special tokens at
  their real ids (128000-128255) and Llama-3.1's chat format: a system block
  dated "Cutting Knowledge Date" / "Today Date" before every conversation
  (llama_models/llama3_1/prompt_format.md), then header-delimited turns.
* Gemma-2: no Gemma tokenizer is available offline, so a byte-level BPE is
  trained on the organisms' corpus, its special tokens are put at Gemma's ids
  (`<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3, `<start_of_turn>` 106,
  `<end_of_turn>` 107) and its vocabulary is filled to Gemma's 256,000 with
  tokens no text encodes to, so that every id a model can emit decodes.
  Gemma's chat template (user / model turns, no system role).

Both are `transformers.PreTrainedTokenizerFast` objects that pad on the left.
"""

import importlib.resources
import json

from tokenizers import Tokenizer
import transformers

from refusal_jax import errors
from refusal_jax import package_files
from refusal_jax.organisms import data as organism_data
from refusal_jax.organisms import tokenizer as organism_tokenizer

# Llama-3's pre-tokenization pattern (llama_models/llama3/tokenizer.py).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# The 256 special tokens after the 128,000 BPE tokens, in id order.
LLAMA3_SPECIALS = (
    '<|begin_of_text|>', '<|end_of_text|>', '<|reserved_special_token_0|>',
    '<|reserved_special_token_1|>', '<|finetune_right_pad_id|>',
    '<|reserved_special_token_2|>', '<|start_header_id|>',
    '<|end_header_id|>', '<|eom_id|>', '<|eot_id|>', '<|python_tag|>',
) + tuple(f'<|reserved_special_token_{i}|>' for i in range(3, 248))

# Llama-3.1's text chat format: a dated system block, always.
LLAMA31_TEMPLATE = (
    "{{ bos_token }}"
    "{% if not date_string is defined %}{% set date_string = '26 Jul 2024' %}"
    "{% endif %}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_message = messages[0]['content'] | trim %}"
    "{% set messages = messages[1:] %}"
    "{% else %}{% set system_message = '' %}{% endif %}"
    "{{ '<|start_header_id|>system<|end_header_id|>\n\n' }}"
    "{{ 'Cutting Knowledge Date: December 2023\n' }}"
    "{{ 'Today Date: ' + date_string + '\n\n' }}"
    "{{ system_message + '<|eot_id|>' }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + "
    "message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
    "'<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")

GEMMA_VOCAB_SIZE = 256000
# Gemma's special tokens at their ids; the ids between are unused tokens.
_GEMMA_SPECIAL_IDS = {'<pad>': 0, '<eos>': 1, '<bos>': 2, '<unk>': 3,
                      '<start_of_turn>': 106, '<end_of_turn>': 107}


def llama31_tokenizer() -> transformers.PreTrainedTokenizerFast:
  """The real Llama-3 vocabulary with Llama-3.1-Instruct's chat format.

  Raises:
    errors.ConfigError: the `llama-models` wheel is not installed.
  """
  model_file = package_files.package_file(
      'llama_models', 'llama3/tokenizer.model', error=errors.ConfigError)
  from transformers.convert_slow_tokenizer import TikTokenConverter  # pylint: disable=g-import-not-at-top
  with importlib.resources.as_file(model_file) as path:
    backend = TikTokenConverter(
        vocab_file=str(path), pattern=LLAMA3_PATTERN,
        extra_special_tokens=list(LLAMA3_SPECIALS)).converted()
  return transformers.PreTrainedTokenizerFast(
      tokenizer_object=backend, bos_token='<|begin_of_text|>',
      eos_token='<|eot_id|>', pad_token='<|finetune_right_pad_id|>',
      chat_template=LLAMA31_TEMPLATE, padding_side='left')


def gemma2_tokenizer(vocab_size: int = GEMMA_VOCAB_SIZE,
                     bpe_size: int = 4096) -> transformers.PreTrainedTokenizerFast:
  """A byte-level BPE with Gemma-2's special ids, size and chat template.

  Args:
    vocab_size: total ids (Gemma-2: 256,000).
    bpe_size: tokens learnt from the organisms' corpus (the rest are fillers
      that no text encodes to).
  """
  splits = organism_data.make_dataset(0)
  texts = organism_data.corpus_text(splits['train'])
  trained = organism_tokenizer.train_tokenizer(texts, style='gemma',
                                               vocab_size=bpe_size)
  state = json.loads(trained.backend_tokenizer.to_str())
  learnt = sorted(state['model']['vocab'].items(), key=lambda kv: kv[1])
  learnt = [t for t, _ in learnt if t not in _GEMMA_SPECIAL_IDS and
            t not in ('<start_of_turn>', '<end_of_turn>')]
  by_id = {i: t for t, i in _GEMMA_SPECIAL_IDS.items()}
  free = (i for i in range(vocab_size) if i not in by_id)
  for token in learnt:
    by_id[next(free)] = token
  for i in free:
    by_id[i] = f'<unused{i}>'
  state['model']['vocab'] = {t: i for i, t in by_id.items()}
  state['added_tokens'] = [
      dict(id=i, content=t, single_word=False, lstrip=False, rstrip=False,
           normalized=False, special=True)
      for t, i in sorted(_GEMMA_SPECIAL_IDS.items(), key=lambda kv: kv[1])]
  backend = Tokenizer.from_str(json.dumps(state))
  return transformers.PreTrainedTokenizerFast(
      tokenizer_object=backend, bos_token='<bos>', eos_token='<eos>',
      pad_token='<pad>', unk_token='<unk>',
      extra_special_tokens=['<start_of_turn>', '<end_of_turn>'],
      chat_template=GEMMA_TEMPLATE, padding_side='left')
