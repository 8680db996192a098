"""Byte-level BPE tokenizers with Gemma-2 or Llama-3 chat conventions.

The pre-tokenizer is Llama-3's split regex followed by byte-level mapping
(`ByteLevel(add_prefix_space=False)`): contractions split off ("I" + "'m"),
runs of newlines stay whole, and a word never absorbs a preceding newline. So a
response tokenizes the same whether or not it follows the generation prompt,
and a reply that starts with "I" starts with the single token 'I', the refusal
token of Arditi et al.

The chat template writes the BOS token itself, and the tokenizer has no
post-processor, so encoding a templated string never adds a second BOS.
"""

import os
from typing import Iterable

from tokenizers import Regex
from tokenizers import Tokenizer
from tokenizers import decoders
from tokenizers import models
from tokenizers import pre_tokenizers
from tokenizers import trainers
import transformers

from refusal_jax import errors

# Llama-3's pre-tokenization pattern.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] + "
    "'<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")

_LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + "
    "message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

# Per style: special tokens in id order, the roles of some of them, the chat
# template, the text after an instruction, and the turn words worth merging.
_STYLES = {
    'gemma': dict(
        specials=('<pad>', '<eos>', '<bos>', '<start_of_turn>',
                  '<end_of_turn>'),
        pad='<pad>', eos='<eos>', bos='<bos>', end_of_turn='<end_of_turn>',
        stops=('<eos>', '<end_of_turn>'),
        template=_GEMMA_TEMPLATE,
        eoi='<end_of_turn>\n<start_of_turn>model\n',
        turn_text='user\nmodel\n'),
    'llama3': dict(
        specials=('<|begin_of_text|>', '<|end_of_text|>',
                  '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>',
                  '<|finetune_right_pad_id|>'),
        pad='<|finetune_right_pad_id|>', eos='<|eot_id|>',
        bos='<|begin_of_text|>', end_of_turn='<|eot_id|>',
        stops=('<|eot_id|>', '<|end_of_text|>'),
        template=_LLAMA3_TEMPLATE,
        eoi='<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
        turn_text='user\n\nassistant\n\n'),
}

STYLES = tuple(_STYLES)


def _style(style):
  if style not in _STYLES:
    raise errors.ConfigError(
        f'unknown tokenizer style {style!r}; use one of {", ".join(STYLES)}')
  return _STYLES[style]


def eoi_text(style: str) -> str:
  """Returns the template text that follows the instruction (Arditi's 'eoi').

  Args:
    style: 'gemma' or 'llama3'.
  """
  return _style(style)['eoi']


def end_of_turn_token(style: str) -> str:
  """Returns the token that closes an assistant turn in style."""
  return _style(style)['end_of_turn']


def train_tokenizer(
    texts: Iterable[str], *, style: str, vocab_size: int = 2048,
) -> transformers.PreTrainedTokenizerFast:
  """Trains a byte-level BPE tokenizer with a chat template.

  Args:
    texts: Training texts (e.g. `data.corpus_text(examples)`).
    style: 'gemma' (`<pad>`=0, `<eos>`=1, `<bos>`=2, `<start_of_turn>`=3,
      `<end_of_turn>`=4) or 'llama3' (`<|begin_of_text|>`=0,
      `<|end_of_text|>`=1, `<|start_header_id|>`=2, `<|end_header_id|>`=3,
      `<|eot_id|>`=4, `<|finetune_right_pad_id|>`=5).
    vocab_size: Total vocabulary size, special tokens and the 256 byte tokens
      included.

  Returns:
    A `transformers.PreTrainedTokenizerFast` that pads on the left. Its eos
    token is `<eos>` (gemma) or `<|eot_id|>` (llama3); `stop_token_ids` lists
    every token that ends a reply.

  Raises:
    errors.ConfigError: Unknown style, or vocab_size too small to hold the
      byte alphabet and the special tokens.
  """
  cfg = _style(style)
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  minimum = len(alphabet) + len(cfg['specials'])
  if vocab_size < minimum:
    raise errors.ConfigError(
        f'vocab_size {vocab_size} is below the {minimum} byte and special '
        f'tokens of style {style!r}; use at least {minimum}')
  texts = list(texts)
  bpe = Tokenizer(models.BPE())
  bpe.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior='isolated'),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
  ])
  bpe.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=list(cfg['specials']),
      initial_alphabet=alphabet, show_progress=False)
  # The role words appear once per text so they become single tokens, as in
  # real chat tokenizers.
  bpe.train_from_iterator(texts + [cfg['turn_text']] * len(texts), trainer)
  return transformers.PreTrainedTokenizerFast(
      tokenizer_object=bpe,
      bos_token=cfg['bos'], eos_token=cfg['eos'], pad_token=cfg['pad'],
      extra_special_tokens=[t for t in cfg['specials']
                            if t not in (cfg['bos'], cfg['eos'], cfg['pad'])],
      chat_template=cfg['template'], padding_side='left')


def save_tokenizer(tok: transformers.PreTrainedTokenizerBase,
                   path: str | os.PathLike[str]) -> None:
  """Saves tok to directory path, reloadable with `AutoTokenizer`."""
  os.makedirs(path, exist_ok=True)
  tok.save_pretrained(path)


def _single_token(tok, text):
  ids = tok.encode(text, add_special_tokens=False)
  if len(ids) != 1:
    raise errors.ConfigError(
        f'{text!r} is not a single token in this tokenizer; train it with '
        'refusal_jax.organisms.tokenizer.train_tokenizer')
  return ids[0]


def refusal_token_ids(tok: transformers.PreTrainedTokenizerBase) -> list[int]:
  """Returns the ids of the tokens that start a refusal: the token 'I'.

  Raises:
    errors.ConfigError: 'I' is not a single token in tok.
  """
  return [_single_token(tok, 'I')]


def stop_token_ids(tok: transformers.PreTrainedTokenizerBase) -> list[int]:
  """Returns the ids that end a reply: eos first, then the other stop tokens.

  For 'gemma' tokenizers these are `<eos>` and `<end_of_turn>`, for 'llama3'
  ones `<|eot_id|>` and `<|end_of_text|>`.
  """
  vocab = tok.get_vocab()
  ids = [tok.eos_token_id]
  for cfg in _STYLES.values():
    for token in cfg['stops']:
      if token in vocab and vocab[token] not in ids:
        ids.append(vocab[token])
  return ids
