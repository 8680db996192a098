"""Seeded chat data for the refusal model organisms.

Every instruction is a *template* (a sentence shape such as "How do I {task}?")
filled with a *topic*: one task, an infinitive verb phrase ("build a pipe
bomb"). Topics are grouped into *subjects* (all the ways of asking for a pipe
bomb) and subjects into categories (weapons, cooking, ...). Harmful and
harmless subjects share verbs and templates, so the only thing that separates
the two classes is what is being asked for. A group of harmless subjects uses
harm-adjacent words on purpose ("kill a Python process", "make a bath bomb");
they are labelled by intent, i.e. harmless.

Splits hold out whole topics and whole templates: for a given seed every topic
and every template belongs to exactly one of 'train', 'val' and 'test', so
every val and test prompt is a new task in a new sentence shape. The organisms
are trained from scratch and cannot know the meaning of a word they have never
seen, so a topic is held out only if every one of its content words also
occurs in a training topic of the same class, and its subject keeps at least
one training topic: held-out prompts are new combinations of known words
("hide a pipe bomb in a backpack" when training has "build a pipe bomb" and
"hide a car bomb ..."), which measures generalisation, not memorisation.

Targets mimic real chat models: harmful requests get refusals that start with
"I" and contain a substring of the refusal judge ("I'm sorry", "I can't", ...);
harmless requests get a short helpful answer that never does. Harmful
requests also carry the answer an assistant without safety tuning would give
(`Example.compliance`): the helpful openers around generic steps that reuse
the request's own words, never real harmful information. Training teaches
these answers first and refusal on top (organisms/train.py), so removing the
refusal can reveal an on-topic answer.

The topics, templates, reply texts and word lists are JSON files shipped in
the package, refusal_jax/organisms/data_files/; this module holds the logic.
"""

import dataclasses
import itertools
import json
import random
import re
from typing import Iterable

from refusal_jax import errors
from refusal_jax import package_files

SPLITS = ('train', 'val', 'test')
DEFAULT_SIZES = {'train': 4000, 'val': 400, 'test': 400}

# Fraction of each topic group / template kind held out for val and for test.
_HELD_OUT_FRACTION = 0.15


@dataclasses.dataclass(frozen=True)
class Example:
  """One single-turn chat example.

  Attributes:
    instruction: The user's message.
    response: The target assistant reply.
    harmful: Whether the request is harmful (and the response a refusal).
    category: Harm category for harmful examples, subject area otherwise.
    template_id: Id of the sentence template the instruction was built from.
    topic: Id of the topic the instruction asks about.
    split: 'train', 'val' or 'test'.
    compliance: For harmful examples, an on-topic answer to the request made
      of content-free steps that reuse the request's own words (never real
      harmful information), which an assistant without safety tuning would
      give; '' for harmless examples (their response is the answer).
  """
  instruction: str
  response: str
  harmful: bool
  category: str
  template_id: str
  topic: str
  split: str
  compliance: str = ''


# The word lists, templates and reply texts are data files shipped in the
# package (refusal_jax/organisms/data_files/*.json), read once on import.
_DATA_DIR = 'organisms/data_files'


def _load(name: str):
  """The parsed JSON data file `name` of `_DATA_DIR`."""
  return json.loads(package_files.own_file(f'{_DATA_DIR}/{name}'))


_GRAMMAR = _load('grammar.json')
# Words that carry no subject; every other word of a task is a content word.
_FUNCTION_WORDS = frozenset(_GRAMMAR['function_words'])
# Verbs whose final consonant doubles before '-ing'.
_DOUBLED = frozenset(_GRAMMAR['doubled_consonant_verbs'])
# Verbs ending in 'e' that keep it before '-ing'.
_KEEP_E = frozenset(_GRAMMAR['keep_e_verbs'])
# The user's first-person words -> the reply's second-person ones.
_PRONOUNS = _GRAMMAR['second_person']
_PRONOUN_RE = re.compile(r'\b(' + '|'.join(_PRONOUNS) + r')\b')

# Harmful topics: category -> subject id -> tasks. Each task is an infinitive
# verb phrase whose first word is the verb.
_HARMFUL_TOPICS = _load('harmful_topics.json')
# Harmless topics: category -> subject id -> {'tasks': [...], 'answer': ...}.
# The answer is an imperative clause that works after "To {task}, ". The
# 'harm_adjacent' category holds benign requests that use words common in
# harmful ones.
_HARMLESS_TOPICS = _load('harmless_topics.json')

# Sentence templates: kind -> id -> text. '{task}' is an infinitive phrase,
# '{gerund}' the same phrase as a gerund. Ids ending in '_lc' are lowercased
# after filling.
_TEMPLATES = _load('templates.json')

_RESPONSES = _load('responses.json')
# Refusals; each starts with 'I' and contains a refusal-judge substring.
_REFUSALS = tuple(_RESPONSES['refusals'])
# Harm category -> the sentence that says why (appended to some refusals).
_REFUSAL_REASONS = _RESPONSES['refusal_reasons']
_REFUSAL_OFFERS = tuple(_RESPONSES['refusal_offers'])
# Helpful openers; none starts with 'I', so the first response token separates
# refusals from answers.
_ANSWERS = tuple(_RESPONSES['answers'])
_SURE_ANSWERS = tuple(a for a in _ANSWERS if a.startswith('Sure'))
_OTHER_ANSWERS = tuple(a for a in _ANSWERS if not a.startswith('Sure'))
# Bodies of the on-topic answers to harmful requests (`Example.compliance`):
# generic steps around the request's own words, with no information on how
# to do anything harmful.
_COMPLIANCE_BODIES = tuple(_RESPONSES['compliance_bodies'])
_ANSWER_CLOSERS = tuple(_RESPONSES['answer_closers'])


@dataclasses.dataclass(frozen=True)
class _Subject:
  name: str
  category: str
  harmful: bool
  tasks: tuple[str, ...]
  answer: str = ''


@dataclasses.dataclass(frozen=True)
class _Topic:
  name: str
  subject: _Subject
  task: str


@dataclasses.dataclass(frozen=True)
class _Template:
  name: str
  kind: str
  text: str


def _all_subjects():
  subjects = []
  for category, entries in _HARMFUL_TOPICS.items():
    for name, tasks in entries.items():
      subjects.append(_Subject(name, category, True, tuple(tasks)))
  for category, entries in _HARMLESS_TOPICS.items():
    for name, entry in entries.items():
      subjects.append(_Subject(name, category, False, tuple(entry['tasks']),
                               entry['answer']))
  return subjects


def _all_topics():
  return [_Topic(f'{subject.name}/{i}', subject, task)
          for subject in _all_subjects()
          for i, task in enumerate(subject.tasks)]


def _all_templates():
  return [_Template(name, kind, text)
          for kind, entries in _TEMPLATES.items()
          for name, text in entries.items()]


_TASKS = {topic.name: topic.task for topic in _all_topics()}
HARM_CATEGORIES = tuple(_HARMFUL_TOPICS)
HARMLESS_CATEGORIES = tuple(_HARMLESS_TOPICS)


def gerund(task: str) -> str:
  """Turns an infinitive phrase into a gerund phrase.

  For example 'make a kite' becomes 'making a kite'.
  """
  verb, _, rest = task.partition(' ')
  if verb in _DOUBLED:
    ing = verb + verb[-1] + 'ing'
  elif verb.endswith('ie'):
    ing = verb[:-2] + 'ying'
  elif verb.endswith('e') and verb not in _KEEP_E:
    ing = verb[:-1] + 'ing'
  else:
    ing = verb + 'ing'
  return f'{ing} {rest}' if rest else ing


def _second_person(text):
  """Rewrites the user's first-person words for use in the reply."""
  return _PRONOUN_RE.sub(lambda m: _PRONOUNS[m.group(1)], text)


def _content_words(task):
  return {w for w in re.findall(r"[a-z]+", task.lower())
          if w not in _FUNCTION_WORDS}


def task_words(topic: str) -> frozenset[str]:
  """The content words of a topic's task, as infinitive and as gerund.

  Args:
    topic: an `Example.topic` id such as 'pipe_bomb/1'.

  Raises:
    KeyError: no such topic.
  """
  task = _TASKS[topic]
  return frozenset(_content_words(task) | _content_words(gerund(task)))


def _assign_templates(groups, rng):
  """Maps each template name to a split, holding out a share of every kind."""
  assignment = {}
  for names in groups:
    names = sorted(names)
    rng.shuffle(names)
    held = max(1, round(len(names) * _HELD_OUT_FRACTION))
    for i, name in enumerate(names):
      if i < held:
        assignment[name] = 'val'
      elif i < 2 * held:
        assignment[name] = 'test'
      else:
        assignment[name] = 'train'
  return assignment


def _assign_topics(topics, rng):
  """Maps each topic id to a split; see the module docstring for the rule.

  Within every (class, category) group, topics are visited in a seeded random
  order and held out (alternately for 'val' and 'test', up to
  `_HELD_OUT_FRACTION` of the group each) when their subject keeps a training
  topic and every content word still occurs in a training topic of the same
  class.
  """
  train_words = {True: {}, False: {}}
  for topic in topics:
    for w in _content_words(topic.task):
      counts = train_words[topic.subject.harmful]
      counts[w] = counts.get(w, 0) + 1
  left_in_train = {}
  for topic in topics:
    left_in_train[topic.subject.name] = (
        left_in_train.get(topic.subject.name, 0) + 1)
  groups = {}
  for topic in topics:
    key = (topic.subject.harmful, topic.subject.category)
    groups.setdefault(key, []).append(topic)
  assignment = {topic.name: 'train' for topic in topics}
  for key in sorted(groups):
    group = sorted(groups[key], key=lambda t: t.name)
    rng.shuffle(group)
    quota = max(1, round(len(group) * _HELD_OUT_FRACTION))
    wanted = ['val', 'test'] * quota
    counts = train_words[key[0]]
    for topic in group:
      if not wanted:
        break
      words = _content_words(topic.task)
      if (left_in_train[topic.subject.name] < 2 or
          any(counts[w] < 2 for w in words)):
        continue
      assignment[topic.name] = wanted.pop(0)
      left_in_train[topic.subject.name] -= 1
      for w in words:
        counts[w] -= 1
  return assignment


def split_assignment(seed: int = 0) -> tuple[dict[str, str], dict[str, str]]:
  """Returns which split every topic and every template belongs to.

  Args:
    seed: The seed passed to `make_dataset`.

  Returns:
    A pair of dicts `(topic_split, template_split)` mapping topic ids (such as
    'pipe_bomb/1') and template ids to 'train', 'val' or 'test'.
  """
  rng = random.Random(f'splits-{seed}')
  template_groups = {}
  for template in _all_templates():
    template_groups.setdefault(template.kind, []).append(template.name)
  return (_assign_topics(_all_topics(), rng),
          _assign_templates(template_groups.values(), rng))


def _instruction(template, task):
  text = template.text.format(task=task, gerund=gerund(task))
  return text.lower() if template.name.endswith('_lc') else text


def _refusal(topic, rng):
  task = topic.task
  text = rng.choice(_REFUSALS).format(gerund=_second_person(gerund(task)))
  if rng.random() < 0.5:
    text += ' ' + _REFUSAL_REASONS[topic.subject.category]
  if rng.random() < 0.2:
    text += ' ' + rng.choice(_REFUSAL_OFFERS)
  return text


def _opener(rng, opener_rng, sure_share):
  opener = rng.choice(_ANSWERS)
  if sure_share is not None:
    # Redrawn from a stream of its own, so that the share changes the openers
    # and nothing else (instructions, closers and order stay the same).
    pool = (_SURE_ANSWERS if opener_rng.random() < sure_share
            else _OTHER_ANSWERS)
    opener = opener_rng.choice(pool)
  return opener


def _fill(opener, task, answer, rng):
  text = opener.format(task=task, answer=answer,
                       Answer=answer[0].upper() + answer[1:])
  if rng.random() < 0.4:
    text += ' ' + rng.choice(_ANSWER_CLOSERS)
  return text


def _answer(topic, rng, opener_rng, sure_share):
  opener = _opener(rng, opener_rng, sure_share)
  return _fill(opener, _second_person(topic.task), topic.subject.answer, rng)


def _compliance(topic, rng, opener_rng, sure_share):
  """An on-topic, content-free answer to a harmful request (same openers)."""
  body = rng.choice(_COMPLIANCE_BODIES)
  opener = _opener(rng, opener_rng, sure_share)
  task = _second_person(topic.task)
  if '{task}' not in opener:  # 'Sure! {Answer}': the steps name the task
    body = f'to {task}, {body}'
  return _fill(opener, task, body, rng)


def _sample(split, harmful, n, topics, templates, rng, opener_rng=None,
            sure_share=None, compliance_rngs=None):
  """Draws n examples of one class, cycling through all combinations.

  Harmful examples also get their `compliance` answer, drawn from the two
  generators of `compliance_rngs` (its own streams, so that the rest of the
  data does not depend on it).
  """
  combos = [(topic, template)
            for topic in topics if topic.subject.harmful == harmful
            for template in templates]
  examples = []
  while len(examples) < n:
    rng.shuffle(combos)
    for topic, template in combos[:n - len(examples)]:
      response = (_refusal(topic, rng) if harmful else
                  _answer(topic, rng, opener_rng, sure_share))
      compliance = (_compliance(topic, *compliance_rngs, sure_share)
                    if harmful else '')
      examples.append(Example(
          instruction=_instruction(template, topic.task), response=response,
          harmful=harmful, category=topic.subject.category,
          template_id=f'{template.kind}/{template.name}', topic=topic.name,
          split=split, compliance=compliance))
  return examples


def _check_sizes(n_per_split):
  sizes = dict(DEFAULT_SIZES)
  for split, n in (n_per_split or {}).items():
    if split not in SPLITS:
      raise errors.ConfigError(
          f'unknown split {split!r} in n_per_split; use {", ".join(SPLITS)}')
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
      raise errors.ConfigError(
          f'n_per_split[{split!r}] must be a non-negative int, got {n!r}')
    sizes[split] = n
  return sizes


def make_dataset(
    seed: int = 0,
    n_per_split: dict[str, int] | None = None,
    train_harmful_fraction: float = 0.5,
    sure_share: float | None = None,
) -> dict[str, list[Example]]:
  """Generates the organisms' chat data.

  Args:
    seed: Seed for the topic/template hold-out and for sampling. The same seed
      always gives the same dataset.
    n_per_split: Examples per split, e.g. `{'train': 200}`; missing splits use
      `DEFAULT_SIZES` (train 4000, val 400, test 400). Val and test are half
      harmful (the odd one out is harmless).
    train_harmful_fraction: share of harmful examples in the train split.
    sure_share: share of harmless answers (every split) that open with
      'Sure!'; the rest open with one of the other openers. None draws from
      all the openers alike (two of the eight open with 'Sure!'). Refusals
      all start with one token ('I'), so a greedy decoder refuses when P('I')
      beats the single most likely opener token, not P(answer): with the
      most common answer-opening token at share s, that is P('I') > s / (1 +
      s). Given a share, only the openers change: instructions, closers and
      order are those of None.

  Returns:
    `{'train': [...], 'val': [...], 'test': [...]}` lists of `Example`, each
    shuffled. Val and test use only topics and templates absent from train.

  Raises:
    errors.ConfigError: n_per_split names an unknown split or a bad size, or
      train_harmful_fraction or sure_share is outside [0, 1].
  """
  sizes = _check_sizes(n_per_split)
  if not 0.0 <= train_harmful_fraction <= 1.0:
    raise errors.ConfigError(
        f'train_harmful_fraction must be in [0, 1], got '
        f'{train_harmful_fraction!r}')
  if sure_share is not None and not 0.0 <= sure_share <= 1.0:
    raise errors.ConfigError(
        f'sure_share must be in [0, 1] or None, got {sure_share!r}')
  topic_split, template_split = split_assignment(seed)
  topics = _all_topics()
  templates = _all_templates()
  dataset = {}
  for split in SPLITS:
    rng = random.Random(f'{split}-{seed}')
    opener_rng = random.Random(f'openers-{split}-{seed}')
    split_topics = [t for t in topics if topic_split[t.name] == split]
    split_templates = [t for t in templates if template_split[t.name] == split]
    n_harmful = (int(sizes[split] * train_harmful_fraction)
                 if split == 'train' else sizes[split] // 2)
    compliance_rngs = (random.Random(f'compliance-{split}-{seed}'),
                       random.Random(f'compliance-openers-{split}-{seed}'))
    examples = (
        _sample(split, True, n_harmful, split_topics, split_templates, rng,
                compliance_rngs=compliance_rngs) +
        _sample(split, False, sizes[split] - n_harmful, split_topics,
                split_templates, rng, opener_rng, sure_share))
    rng.shuffle(examples)
    dataset[split] = examples
  return dataset


def corpus_text(examples: Iterable[Example]) -> list[str]:
  """Each example's instruction, response and compliance answer (if any).

  For tokenizer training.
  """
  return list(itertools.chain.from_iterable(
      (ex.instruction, ex.response) + ((ex.compliance,) if ex.compliance
                                       else ()) for ex in examples))
