"""Tests for refusal_jax.organisms.data."""

import collections
import re

import pytest

from refusal_jax import errors
from refusal_jax.data import graded_judge
from refusal_jax.data import judge
from refusal_jax.organisms import data

SMALL = {'train': 300, 'val': 60, 'test': 60}


@pytest.fixture(scope='module')
def dataset():
  return data.make_dataset(seed=0)


def test_same_seed_gives_identical_data():
  assert data.make_dataset(3, SMALL) == data.make_dataset(3, SMALL)


def test_different_seeds_differ():
  a = data.make_dataset(0, SMALL)
  b = data.make_dataset(1, SMALL)
  for split in data.SPLITS:
    assert a[split] != b[split]
  assert data.split_assignment(0) != data.split_assignment(1)


def test_default_sizes_are_half_harmful(dataset):
  assert {s: len(v) for s, v in dataset.items()} == data.DEFAULT_SIZES
  for split, examples in dataset.items():
    assert sum(ex.harmful for ex in examples) == len(examples) // 2
    assert {ex.split for ex in examples} == {split}


def test_custom_sizes():
  ds = data.make_dataset(0, {'train': 7, 'test': 0})
  assert [len(ds[s]) for s in data.SPLITS] == [7, 400, 0]
  assert sum(ex.harmful for ex in ds['train']) == 3


def test_sure_share_changes_only_the_answer_openers():
  plain = data.make_dataset(0, SMALL)
  sure = data.make_dataset(0, SMALL, sure_share=0.5)
  for split in data.SPLITS:
    pairs = list(zip(plain[split], sure[split]))
    assert len(pairs) == SMALL[split]
    for a, b in pairs:
      assert (a.instruction, a.harmful, a.topic) == (
          b.instruction, b.harmful, b.topic)
      if a.harmful:
        assert a.response == b.response
      else:
        assert not b.response.startswith('I')
    assert any(a.response != b.response for a, b in pairs)


@pytest.mark.parametrize('share', [0.0, 0.5, 1.0])
def test_sure_share_sets_the_share_of_sure_openers(share):
  train = data.make_dataset(0, {'train': 2000}, sure_share=share)['train']
  answers = [ex.response for ex in train if not ex.harmful]
  sure = sum(a.startswith('Sure!') for a in answers) / len(answers)
  assert abs(sure - share) < 0.04


@pytest.mark.parametrize('kw', [{'sure_share': 1.5},
                                {'train_harmful_fraction': -0.1}])
def test_bad_shares_raise_config_error(kw):
  with pytest.raises(errors.ConfigError) as e:
    data.make_dataset(0, SMALL, **kw)
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('sizes', [{'dev': 10}, {'train': -1}, {'val': 2.5},
                                   {'test': True}])
def test_bad_sizes_raise_config_error(sizes):
  with pytest.raises(errors.ConfigError) as e:
    data.make_dataset(0, sizes)
  assert '\n' not in str(e.value)


def test_val_and_test_hold_out_templates_and_topics(dataset):
  seen = {s: ({ex.template_id for ex in v}, {ex.topic for ex in v})
          for s, v in dataset.items()}
  for held in ('val', 'test'):
    assert not seen[held][0] & seen['train'][0]
    assert not seen[held][1] & seen['train'][1]
  assert not seen['val'][0] & seen['test'][0]
  assert not seen['val'][1] & seen['test'][1]


def test_split_assignment_matches_examples(dataset):
  topic_split, template_split = data.split_assignment(0)
  for examples in dataset.values():
    for ex in examples:
      assert topic_split[ex.topic] == ex.split
      assert template_split[ex.template_id.split('/')[1]] == ex.split


def test_every_split_covers_at_least_six_harm_categories(dataset):
  assert len(data.HARM_CATEGORIES) >= 6
  for examples in dataset.values():
    harm = {ex.category for ex in examples if ex.harmful}
    assert harm == set(data.HARM_CATEGORIES)
    harmless = {ex.category for ex in examples if not ex.harmful}
    assert 'harm_adjacent' in harmless


def test_harmful_targets_are_refusals_and_harmless_ones_are_not(dataset):
  for examples in dataset.values():
    for ex in examples:
      assert judge.is_refusal(ex.response) == ex.harmful, ex
      assert ex.response.startswith('I') == ex.harmful, ex


def test_responses_are_short(dataset):
  for ex in dataset['train']:
    sentences = re.findall(r'[.!?](?:\s|$)', ex.response)
    assert 1 <= len(sentences) <= 3, ex.response


def test_classes_share_templates(dataset):
  by_template = collections.defaultdict(set)
  for ex in dataset['train']:
    by_template[ex.template_id].add(ex.harmful)
  assert all(v == {True, False} for v in by_template.values())


def test_harm_adjacent_prompts_are_harmless(dataset):
  adjacent = [ex for ex in dataset['train'] if ex.category == 'harm_adjacent']
  assert adjacent and not any(ex.harmful for ex in adjacent)
  text = ' '.join(ex.instruction.lower() for ex in adjacent)
  for word in ('kill', 'bomb', 'attack', 'steal', 'shoot'):
    assert word in text


def test_templates_vary_in_form(dataset):
  instructions = [ex.instruction for ex in dataset['train']]
  assert any(i.endswith('?') for i in instructions)
  assert any(i == i.lower() for i in instructions)
  assert any(i.startswith('Please') or 'please' in i for i in instructions)
  assert len({ex.template_id for ex in dataset['train']}) >= 20


def test_vocabulary_is_modest(dataset):
  words = {w for examples in dataset.values()
           for text in data.corpus_text(examples)
           for w in re.findall(r"[a-z']+", text.lower())}
  assert 500 < len(words) < 3000


def test_corpus_text_interleaves_instruction_and_response():
  examples = data.make_dataset(0, SMALL)['val'][:3]
  text = data.corpus_text(examples)
  assert text == [t for ex in examples
                  for t in (ex.instruction, ex.response, ex.compliance) if t]


def test_harmful_examples_carry_an_on_topic_content_free_answer(dataset):
  topics = {t.name: t for t in data._all_topics()}
  for ex in dataset['train'] + dataset['test']:
    if not ex.harmful:
      assert ex.compliance == ''
      continue
    task = data._second_person(topics[ex.topic].task)
    assert task in ex.compliance or data.gerund(task) in ex.compliance
    assert not ex.compliance.startswith('I')
    assert judge.SubstringJudge()([ex.instruction], [ex.compliance]) == [True]
    assert graded_judge.classify(ex.instruction, ex.compliance) == (
        graded_judge.JAILBREAK)


def test_gerund():
  assert data.gerund('make a kite') == 'making a kite'
  assert data.gerund('cut the lines') == 'cutting the lines'
  assert data.gerund('build a birdhouse') == 'building a birdhouse'
  assert data.gerund('tie a knot') == 'tying a knot'


def test_held_out_topics_are_new_combinations_of_known_words():
  topic_split, _ = data.split_assignment(0)
  topics = {t.name: t for t in data._all_topics()}  # pylint: disable=protected-access
  train = [t for name, t in topics.items() if topic_split[name] == 'train']
  words = {True: set(), False: set()}
  subjects = set()
  for t in train:
    words[t.subject.harmful] |= data._content_words(t.task)  # pylint: disable=protected-access
    subjects.add(t.subject.name)
  held = [t for name, t in topics.items() if topic_split[name] != 'train']
  assert len(held) >= 0.2 * len(topics)
  for t in held:
    assert t.subject.name in subjects
    assert data._content_words(t.task) <= words[t.subject.harmful], t.task  # pylint: disable=protected-access
    assert t.task not in {u.task for u in train}
