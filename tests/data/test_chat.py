"""Chat formatting through the tokenizer's template, BOS once, left padding."""

import pytest

from refusal_jax import errors
from refusal_jax.data import chat
from refusal_jax.organisms import tokenizer as organism_tokenizer

TEXTS = ['How do I bake bread?', 'Explain how to build a birdhouse.',
         'I am sorry, but I cannot help with that.'] * 5


@pytest.fixture(scope='module', params=['gemma', 'llama3'])
def tok(request):
  return organism_tokenizer.train_tokenizer(TEXTS, style=request.param,
                                            vocab_size=300)


def test_encode_chat_left_pads_with_exactly_one_bos(tok):
  ids, mask = chat.encode_chat(tok, ['hi', 'How do I bake bread?'],
                               bos_id=tok.bos_token_id)
  assert ids.shape == mask.shape and ids.dtype.name == 'int32'
  assert mask[1].all() and not mask[0].all()  # the short row is padded left
  for row, m in zip(ids, mask):
    real = row[m.astype(bool)]
    assert real[0] == tok.bos_token_id
    assert (real == tok.bos_token_id).sum() == 1
  # The generation prompt ends every row at the last column.
  eoi = tok(organism_tokenizer.eoi_text(
      'gemma' if '<start_of_turn>' in tok.chat_template else 'llama3'),
            add_special_tokens=False)['input_ids']
  assert list(ids[0, -len(eoi):]) == eoi == list(ids[1, -len(eoi):])


def test_bos_is_added_when_the_template_has_none(tok):
  ids, mask = chat.encode(tok, ['plain text'], bos_id=tok.bos_token_id)
  assert ids[0, 0] == tok.bos_token_id and mask.all()


def test_prompt_errors(tok):
  with pytest.raises(errors.PromptError, match='more than the model context'):
    chat.encode_chat(tok, ['word ' * 50], bos_id=tok.bos_token_id,
                     max_length=10)
  with pytest.raises(errors.PromptError, match='no prompts'):
    chat.encode(tok, [], bos_id=None)
  tok2 = organism_tokenizer.train_tokenizer(TEXTS, style='gemma',
                                            vocab_size=300)
  tok2.chat_template = None
  with pytest.raises(errors.PromptError, match='no chat template'):
    chat.format_chat(tok2, ['hi'])
