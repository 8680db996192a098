"""Where woken latents fire: token classes, counts and the system block."""

import numpy as np
import pytest

from refusal_jax import load_model
from refusal_jax.organisms import assets
from refusal_jax.pipeline import context
from refusal_jax.pipeline.paper import woken

SYSTEM, TEMPLATE, INSTRUCTION = (woken.CLASSES.index(c) for c in woken.CLASSES)


def _classes(mask, n_prefix, n_eoi, n_system):
  ps = context.PromptSet(['x'] * len(mask), np.zeros_like(mask), mask)
  return woken.position_classes(
      context.token_classes(ps, n_prefix, n_eoi), mask, n_system)


def test_position_classes_follow_the_left_padded_template():
  mask = np.array([[0, 1, 1, 1, 1, 1, 1, 1],
                   [1, 1, 1, 1, 1, 1, 1, 1]])
  cls, bos = _classes(mask, n_prefix=3, n_eoi=2, n_system=2)
  s, t, i = SYSTEM, TEMPLATE, INSTRUCTION
  assert cls[0].tolist() == [-1, s, s, t, i, i, t, t]
  assert cls[1].tolist() == [s, s, t, i, i, i, t, t]
  assert bos[0].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
  assert bos[1].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]


def test_woken_shares_count_only_latents_silent_on_the_clean_prompt():
  mask = np.ones((1, 5), int)
  cls, bos = _classes(mask, n_prefix=2, n_eoi=1, n_system=1)
  clean = np.zeros((1, 5, 3))
  clean[0, 3, 0] = 1.0  # latent 0 is active clean: never woken
  ablated = np.zeros((1, 5, 3))
  ablated[0, :, 0] = 2.0
  ablated[0, 0, 1] = ablated[0, 2, 1] = 0.5  # BOS and the instruction
  ablated[0, 4, 2] = 0.05  # at eps: not firing
  got = woken.woken_shares(clean, ablated, cls, bos, eps=0.1)
  assert got['woken'] == [[1]] and got['n_woken'] == 1
  assert got['counts'] == {'system': 1, 'template': 0, 'instruction': 1}
  assert got['bos'] == 1
  shares = woken.shares(got['counts'], got['bos'])
  assert shares == {'system': 0.5, 'template': 0.0, 'instruction': 0.5,
                    'bos': 0.5, 'bos_of_system': 1.0}
  assert woken.shares({c: 0 for c in woken.CLASSES}, 0)['bos'] == 0.0


@pytest.fixture(scope='module')
def tokenizer():
  return load_model(assets.organism_path('llama')).tokenizer


def test_system_length_is_bos_alone_without_a_system_block(tokenizer):
  n_prefix, _ = context._template_lengths(  # pylint: disable=protected-access
      tokenizer, tokenizer.bos_token_id)
  assert context.system_length(tokenizer, tokenizer.bos_token_id,
                               n_prefix) == 1


def test_system_length_covers_a_default_system_block(tokenizer):
  # Llama-3.1's layout: a default system turn before the first user turn.
  tokenizer = tokenizer.__class__.from_pretrained(
      assets.organism_path('llama'))
  system = ('<|start_header_id|>system<|end_header_id|>\n\nCutting '
            'knowledge date<|eot_id|>')
  tokenizer.chat_template = (
      "{{ bos_token }}" + system.replace('\n', '{{ "\\n" }}') +
      "{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
      "<|end_header_id|>{{ '\\n\\n' }}{{ m['content'] }}<|eot_id|>"
      "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>"
      "assistant<|end_header_id|>{{ '\\n\\n' }}{% endif %}")
  bos = tokenizer.bos_token_id
  n_prefix, _ = context._template_lengths(  # pylint: disable=protected-access
      tokenizer, bos)
  n_system = context.system_length(tokenizer, bos, n_prefix)
  header = len(tokenizer('<|start_header_id|>user<|end_header_id|>\n\n',
                         add_special_tokens=False)['input_ids'])
  # The system turn's closing <|eot_id|> ends the assistant turn too, so it
  # falls in the common ending: a template token.
  assert 1 < n_system == n_prefix - header - 1
