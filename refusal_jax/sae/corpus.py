"""A chat corpus for SAE training: prompts and the model's own greedy answers.

Each prompt is rendered with the model's chat template
(`refusal_jax.data.chat.format_chat`, generation prompt included), and the
model answers it greedily with the project's generation code
(`Model.generate`). A sequence is the rendered prompt's tokens followed by
the answer's tokens, up to and including the first end-of-turn token; an
answer that never ends stops at `max_new_tokens`, or earlier where it starts
to loop (before the first run of `repeat_window` tokens that already occurred
together earlier in the answer: greedy decoding of a small model repeats a
phrase until the budget runs out, and those copies would teach an SAE little
and inflate its measured FVE).

Generating is the slow part, so answers are cached in a JSON file (written
atomically after every batch, so a killed run resumes), keyed by the model's
contents, the generation settings and the template-rendered prompt. Prompts
are grouped by rendered length so that batches carry little padding.
"""

import dataclasses
import hashlib
import json
import os
from typing import Sequence

from absl import logging
import numpy as np

from refusal_jax import atomic
from refusal_jax import errors
from refusal_jax.data import chat
from refusal_jax.data import datasets

# Prompts are left-padded to a multiple of this many tokens, so that
# generation compiles once per bucket, not once per prompt length.
PROMPT_BUCKET = 32

@dataclasses.dataclass(frozen=True)
class ChatSequence:
  """One prompt and the model's answer, as token ids.

  Attributes:
    source: the prompt set the prompt comes from.
    harmful: whether that set is harmful.
    variant: '' for the model's own answer, or the name of the intervention
      it answered under (e.g. 'ablated': with its refusal direction
      ablated).
    prompt: the user message.
    prompt_ids: the chat-formatted prompt, BOS included, generation prompt
      last.
    response_ids: the model's greedy answer (end-of-turn token included when
      it ended).
  """

  source: str
  harmful: bool
  prompt: str
  prompt_ids: tuple[int, ...]
  response_ids: tuple[int, ...]
  variant: str = ''

  @property
  def ids(self) -> tuple[int, ...]:
    """The whole sequence: prompt then answer."""
    return self.prompt_ids + self.response_ids


def builtin_prompts(harmful: Sequence[str], harmless: Sequence[str],
                    split: str = 'train') -> list[tuple[str, bool, str]]:
  """(source, harmful, prompt) of the built-in prompt sets' `split`.

  Args:
    harmful: harmful set names (`refusal_jax.data.datasets.HARMFUL`).
    harmless: harmless set names (`refusal_jax.data.datasets.HARMLESS`).
    split: 'train', 'val' or 'test'.

  Raises:
    errors.ConfigError: a set listed under the wrong kind, or none at all.
    errors.PromptError: an unknown set or split, or a test-only set asked
      for another split.
  """
  if not harmful and not harmless:
    raise errors.ConfigError('no prompt sets: list harmful or harmless sets')
  items = []
  for names, is_harmful in ((harmful, True), (harmless, False)):
    for name in names:
      if name in datasets.NAMES and datasets.is_harmful(name) != is_harmful:
        raise errors.ConfigError(
            f'prompt set {name!r} is {"" if is_harmful else "not "}listed as '
            f'harmful, but it is {"not " if is_harmful else ""}harmful')
      items.extend((name, is_harmful, p)
                   for p in datasets.load_prompts(name, split))
  return items


def truncate_loop(response: Sequence[int], window: int) -> list[int]:
  """Cuts an answer where it starts repeating itself.

  Args:
    response: answer token ids.
    window: loop length in tokens; 0 keeps the whole answer.

  Returns:
    The answer up to (excluding) the first run of `window` tokens that
    already occurred together earlier in the answer.
  """
  response = list(response)
  if window < 1:
    return response
  seen = set()
  for i in range(window, len(response) + 1):
    gram = tuple(response[i - window:i])
    if gram in seen:
      return response[:i - window]
    seen.add(gram)
  return response


def _end_answer(row: np.ndarray, eos_ids: Sequence[int]) -> list[int]:
  """Generated ids up to and including the first end-of-turn id."""
  ends = np.flatnonzero(np.isin(row, np.asarray(eos_ids, np.int64)))
  return row[:ends[0] + 1].tolist() if ends.size else row.tolist()


def _cache_key(model_digest: str, max_new_tokens: int, text: str,
               variant: str) -> str:
  salt = f'{variant}\0' if variant else ''  # '' keeps the older caches' keys
  h = hashlib.sha256(
      f'{salt}{model_digest}\0{max_new_tokens}\0{text}'.encode())
  return h.hexdigest()[:24]


def _read_cache(path: str) -> dict[str, list[int]]:
  if not path or not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise errors.ConfigError(
        f'answer cache {path} is unreadable ({type(e).__name__}); delete it '
        'to generate the answers again') from None


def _write_cache(path: str, cache: dict[str, list[int]]) -> None:
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    json.dump(cache, f)
  atomic.as_new_file(tmp)
  os.replace(tmp, path)


def build_corpus(model, items: Sequence[tuple[str, bool, str]], *,
                 model_digest: str, max_new_tokens: int, batch_size: int,
                 repeat_window: int, cache_path: str = '',
                 interventions=None, variant: str = ''
                 ) -> list[ChatSequence]:
  """Chat-formats the prompts and has the model answer each one greedily.

  Args:
    model: a loaded chat `refusal_jax.Model` with its tokenizer.
    items: (source, harmful, prompt) triples, e.g. from `builtin_prompts`.
    model_digest: a digest of the model's files (the cache key: answers of
      another model are never reused).
    max_new_tokens: the longest answer.
    batch_size: prompts per generation call.
    repeat_window: see `truncate_loop` (0 keeps loops).
    cache_path: JSON file of cached answers ('' caches nothing).
    interventions: applied while the model answers (None: the model as is).
    variant: names `interventions` (part of the cache key and of each
      sequence); required with them.

  Returns:
    One `ChatSequence` per item, in the order of `items`.

  Raises:
    errors.ConfigError: bad sizes or an unreadable cache.
    errors.PromptError: no prompts, no chat template, or a prompt longer
      than the model's context.
  """
  if max_new_tokens < 1 or batch_size < 1 or repeat_window < 0:
    raise errors.ConfigError(
        f'max_new_tokens {max_new_tokens} and batch_size {batch_size} must be '
        f'>= 1, repeat_window {repeat_window} >= 0')
  if not items:
    raise errors.PromptError('no prompts for the chat corpus')
  if (interventions is None) != (not variant):
    raise errors.ConfigError(
        'build_corpus: name the interventions with a variant, and give a '
        'variant only with interventions')
  cfg = model.config
  tok = model.tokenizer
  texts = chat.format_chat(tok, [prompt for _, _, prompt in items])
  encoded = [chat.encode(tok, [text], bos_id=cfg.bos_token_id,
                         max_length=cfg.max_position_embeddings - max_new_tokens
                         )[0][0].tolist() for text in texts]
  keys = [_cache_key(model_digest, max_new_tokens, text, variant)
          for text in texts]
  cache = _read_cache(cache_path)
  todo = sorted({k: i for i, k in enumerate(keys) if k not in cache}.values(),
                key=lambda i: len(encoded[i]))
  eos = tuple(cfg.eos_token_ids or ())
  for start in range(0, len(todo), batch_size):
    rows = todo[start:start + batch_size]
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    longest = max(len(encoded[i]) for i in rows)
    ids, mask = chat.pad_left([encoded[i] for i in rows], pad,
                              -(-longest // PROMPT_BUCKET) * PROMPT_BUCKET)
    if len(rows) < batch_size:  # one compiled shape per padded length
      ids = np.concatenate([ids, np.repeat(ids[-1:], batch_size - len(rows),
                                           0)])
      mask = np.concatenate([mask, np.repeat(mask[-1:],
                                             batch_size - len(rows), 0)])
    out = model.generate(ids, mask, max_new_tokens=max_new_tokens,
                         interventions=interventions)
    for r, i in enumerate(rows):
      cache[keys[i]] = _end_answer(out[r], eos)
    if cache_path:
      _write_cache(cache_path, cache)
    logging.info('answered %d/%d prompts', start + len(rows), len(todo))
  return [ChatSequence(source=src, harmful=harmful, prompt=prompt,
                       prompt_ids=tuple(encoded[i]),
                       response_ids=tuple(truncate_loop(cache[keys[i]],
                                                        repeat_window)),
                       variant=variant)
          for i, (src, harmful, prompt) in enumerate(items)]
