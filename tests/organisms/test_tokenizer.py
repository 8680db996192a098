"""Tests for refusal_jax.organisms.tokenizer."""

import pytest
import transformers

from refusal_jax import errors
from refusal_jax.organisms import data
from refusal_jax.organisms import tokenizer

VOCAB = 512

GENERATION_PROMPTS = {
    'gemma': ('<bos><start_of_turn>user\n{}<end_of_turn>\n'
              '<start_of_turn>model\n'),
    'llama3': ('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{}'
               '<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n'),
}
TURN_ENDS = {'gemma': '<end_of_turn>\n', 'llama3': '<|eot_id|>'}
SPECIAL_IDS = {
    'gemma': {'<pad>': 0, '<eos>': 1, '<bos>': 2, '<start_of_turn>': 3,
              '<end_of_turn>': 4},
    'llama3': {'<|begin_of_text|>': 0, '<|end_of_text|>': 1,
               '<|start_header_id|>': 2, '<|end_header_id|>': 3,
               '<|eot_id|>': 4, '<|finetune_right_pad_id|>': 5},
}


@pytest.fixture(scope='module')
def examples():
  return data.make_dataset(0, {'train': 200, 'val': 20, 'test': 20})


@pytest.fixture(scope='module', params=tokenizer.STYLES)
def styled(request, examples):
  style = request.param
  texts = data.corpus_text(examples['train'])
  return style, tokenizer.train_tokenizer(texts, style=style, vocab_size=VOCAB)


def _prompt(tok, content):
  return tok.apply_chat_template([{'role': 'user', 'content': content}],
                                 add_generation_prompt=True, tokenize=False)


def test_vocab_and_special_ids(styled):
  style, tok = styled
  assert len(tok) == VOCAB
  assert {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_IDS[style]} == (
      SPECIAL_IDS[style])
  assert tok.padding_side == 'left'


def test_chat_template_text(styled):
  style, tok = styled
  assert _prompt(tok, 'Hello there.') == (
      GENERATION_PROMPTS[style].format('Hello there.'))
  conversation = tok.apply_chat_template(
      [{'role': 'user', 'content': 'Hi'},
       {'role': 'assistant', 'content': 'Sure!'}], tokenize=False)
  assert conversation == (
      GENERATION_PROMPTS[style].format('Hi') + 'Sure!' + TURN_ENDS[style])


def test_exactly_one_bos(styled, examples):
  _, tok = styled
  for ex in examples['test']:
    ids = tok(_prompt(tok, ex.instruction))['input_ids']
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
  ids = tok.apply_chat_template([{'role': 'user', 'content': 'Hi'}],
                                add_generation_prompt=True, tokenize=True,
                                return_dict=True)['input_ids']
  assert ids.count(tok.bos_token_id) == 1


def test_eoi_is_five_tokens_and_a_suffix(styled):
  style, tok = styled
  eoi = tok.encode(tokenizer.eoi_text(style), add_special_tokens=False)
  assert len(eoi) == 5
  prompt = tok(_prompt(tok, 'How do I bake bread?'))['input_ids']
  assert prompt[-5:] == eoi


def test_response_tokenizes_the_same_after_the_prompt(styled, examples):
  _, tok = styled
  for ex in examples['val']:
    prompt = _prompt(tok, ex.instruction)
    joint = tok(prompt + ex.response)['input_ids']
    split = tok(prompt)['input_ids'] + tok.encode(ex.response,
                                                  add_special_tokens=False)
    assert joint == split
    assert tok.decode(joint) == prompt + ex.response


def test_refusal_token_is_i_and_starts_only_refusals(styled, examples):
  _, tok = styled
  ids = tokenizer.refusal_token_ids(tok)
  assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == ['I']
  for ex in examples['train']:
    first = tok.encode(ex.response, add_special_tokens=False)[0]
    assert (first in ids) == ex.harmful


def test_stop_tokens(styled):
  style, tok = styled
  stops = tokenizer.stop_token_ids(tok)
  assert stops[0] == tok.eos_token_id
  assert tok.convert_tokens_to_ids(tokenizer.end_of_turn_token(style)) in stops


def test_round_trip_through_auto_tokenizer(styled, examples, tmp_path):
  style, tok = styled
  tokenizer.save_tokenizer(tok, tmp_path / style)
  loaded = transformers.AutoTokenizer.from_pretrained(tmp_path / style)
  assert loaded.chat_template == tok.chat_template
  assert loaded.get_vocab() == tok.get_vocab()
  for attr in ('bos_token_id', 'eos_token_id', 'pad_token_id', 'padding_side'):
    assert getattr(loaded, attr) == getattr(tok, attr)
  for ex in examples['test']:
    prompt = _prompt(loaded, ex.instruction)
    assert prompt == _prompt(tok, ex.instruction)
    assert loaded(prompt)['input_ids'] == tok(prompt)['input_ids']


def test_unknown_style_raises():
  with pytest.raises(errors.ConfigError, match='unknown tokenizer style'):
    tokenizer.train_tokenizer(['hi'], style='mistral')
  with pytest.raises(errors.ConfigError):
    tokenizer.eoi_text('gpt2')


def test_too_small_vocab_raises():
  with pytest.raises(errors.ConfigError, match='vocab_size'):
    tokenizer.train_tokenizer(['hi'], style='gemma', vocab_size=100)


def test_gemma_rejects_system_turns():
  tok = tokenizer.train_tokenizer(['hello'], style='gemma', vocab_size=300)
  with pytest.raises(Exception, match='System role'):
    tok.apply_chat_template([{'role': 'system', 'content': 'x'}],
                            tokenize=False)
