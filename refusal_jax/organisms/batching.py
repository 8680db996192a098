"""Encoding and batching of the organisms' chat training data.

`encode_examples` tokenizes chat examples as

  [prompt rendered by the chat template, generation prompt included]
  [response] [end-of-turn token]

and records where the user's message lies in the prompt. `phase_examples`
picks the (example, decide) pairs of a training phase (organisms/train.py).
`Batcher` cuts the encoded sequences into deterministic right-padded batches,
each padded to one of a few bucket lengths (`bucket_lengths`), so that jit
compiles one step per bucket, with the loss weights of the prompt, response
and decision tokens and random replacement of the message's tokens by
`noise_tokens`.

Axis letters: see refusal_jax/axes.py.
"""

import dataclasses
import itertools
import math
from typing import Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.data import chat
from refusal_jax.organisms import data as data_lib
from refusal_jax.organisms import tokenizer as tok_lib


@dataclasses.dataclass(frozen=True)
class Batch:
  """One right-padded training batch.

  Attributes:
    ids: [B, T] int32 token ids (pad id after each row's end).
    mask: [B, T] int32, 1 at real tokens.
    weights: [B, T] float32 loss weight of predicting token t from t - 1
      (0 at the first token and at padding).
    response: [B, T] float32, 1 at response and end-of-turn tokens.
    decision: [B] int32 index of each row's last prompt token, whose logits
      give the first response token (the refusal decision).
    harmful: [B] float32, 1 for harmful requests.
    answer: [B] float32, 1 for rows whose response answers a harmful request
      without deciding it (`Encoded.decide` False: the refusal phase's
      replayed answers).
  """
  ids: np.ndarray
  mask: np.ndarray
  weights: np.ndarray
  response: np.ndarray
  decision: np.ndarray
  harmful: np.ndarray
  answer: np.ndarray


@dataclasses.dataclass(frozen=True)
class Encoded:
  """One tokenized training sequence.

  Attributes:
    ids: prompt + response + end-of-turn token ids.
    prompt_length: number of prompt tokens (BOS and template included).
    instruction: [start, end) of the user's message tokens within `ids`.
    harmful: whether the request is harmful.
    decide: whether the first response token (the decision to refuse or to
      answer) carries loss.
    task_ids: ids of the message's tokens that are content words of the
      requested task (what a reply restates).
  """
  ids: tuple[int, ...]
  prompt_length: int
  instruction: tuple[int, int]
  harmful: bool
  decide: bool = True
  task_ids: frozenset[int] = frozenset()


def encode_examples(tok, examples: Sequence[data_lib.Example], *,
                    style: str, bos_id: int | None,
                    decide: bool = True) -> list[Encoded]:
  """Tokenizes chat examples as prompt + response + end-of-turn.

  Args:
    tok: the chat tokenizer.
    examples: chat examples.
    style: the tokenizer's chat style ('gemma' or 'llama3').
    bos_id: BOS id ensured once at the start of each prompt.
    decide: `Encoded.decide` of every example.

  Returns:
    One Encoded per example.

  Raises:
    errors.ConfigError: the instruction's tokens are not a contiguous span of
      the prompt's (a tokenizer not made by `tokenizer.train_tokenizer`).
  """
  eot = tok.convert_tokens_to_ids(tok_lib.end_of_turn_token(style))
  n_eoi = len(tok(tok_lib.eoi_text(style), add_special_tokens=False)[
      'input_ids'])
  prompts = chat.format_chat(tok, [ex.instruction for ex in examples])
  out = []
  for prompt, ex in zip(prompts, examples):
    p = list(tok(prompt, add_special_tokens=False)['input_ids'])
    if bos_id is not None and (not p or p[0] != bos_id):
      p = [bos_id] + p
    instr = list(tok(ex.instruction, add_special_tokens=False)['input_ids'])
    end = len(p) - n_eoi
    start = end - len(instr)
    if p[start:end] != instr:
      raise errors.ConfigError(
          f'the instruction {ex.instruction!r} does not tokenize the same '
          'inside the chat template; use a tokenizer from '
          'refusal_jax.organisms.tokenizer.train_tokenizer')
    r = list(tok(ex.response, add_special_tokens=False)['input_ids'])
    words = data_lib.task_words(ex.topic)
    task_ids = frozenset(i for i in instr
                         if tok.decode([i]).strip().lower() in words)
    out.append(Encoded(ids=tuple(p + r + [eot]), prompt_length=len(p),
                       instruction=(start, end), harmful=ex.harmful,
                       decide=decide, task_ids=task_ids))
  return out


def phase_examples(examples: Sequence[data_lib.Example], phase: str,
                   answer_replay: float = 0.0
                   ) -> list[tuple[data_lib.Example, bool]]:
  """The (example, decide) pairs trained on in one phase.

  Args:
    examples: the train split.
    phase: 'answer' (harmful requests get their `compliance` answers, so
      every request is answered) or 'refusal' (harmful requests get their
      refusals, plus, for the first `answer_replay` share of them, their
      answer again with no loss on its first token).
    answer_replay: see `phase`; in [0, 1].

  Returns:
    Pairs in a fixed order: the examples, then the replayed answers.

  Raises:
    errors.ConfigError: unknown phase.
  """
  if phase == 'answer':
    return [(dataclasses.replace(ex, response=ex.compliance)
             if ex.harmful else ex, True) for ex in examples]
  if phase != 'refusal':
    raise errors.ConfigError(
        f"training phase {phase!r}; expected 'answer' or 'refusal'")
  harmful = [ex for ex in examples if ex.harmful]
  replay = harmful[:round(len(harmful) * answer_replay)]
  return ([(ex, True) for ex in examples] +
          [(dataclasses.replace(ex, response=ex.compliance), False)
           for ex in replay])


def bucket_lengths(lengths: Sequence[int], num_buckets: int,
                   multiple: int) -> list[int]:
  """Padded lengths: quantiles of `lengths`, rounded up to `multiple`.

  Args:
    lengths: sequence lengths.
    num_buckets: at most this many buckets.
    multiple: every bucket length is a multiple of this.

  Returns:
    Sorted distinct bucket lengths; the last one holds the longest sequence.
  """
  qs = np.quantile(np.asarray(lengths), np.arange(1, num_buckets + 1) /
                   num_buckets, method='higher')
  return sorted({int(math.ceil(q / multiple) * multiple) for q in qs})


class Batcher:
  """Deterministic bucketed batches: step -> Batch, the same on every rerun.

  Each epoch shuffles every bucket, cuts it into full batches (the last one
  wraps around to the bucket's start), and shuffles the batch order, all from
  a generator seeded by (seed, epoch). Each token of the user's message is
  replaced, with probability `instruction_noise[harmful]`, by a token drawn
  uniformly from `noise_tokens` (from a generator seeded by (seed, step)), so
  the model learns to decide from several words and to treat the noise
  tokens as the noise level of each class suggests. With
  `noise_in_response`, a replaced word of the task (`Encoded.task_ids`) gets
  the same substitute everywhere in the message and in the reply, so a reply
  that restates the request restates the substitute: the model learns to
  copy the request's words, unfamiliar ones included, rather than recall a
  remembered task.
  """

  def __init__(self, encoded: Sequence[Encoded], *, batch_size: int,
               buckets: Sequence[int], pad_id: int,
               prompt_loss_weight: float, seed: int,
               instruction_noise: tuple[float, float] = (0.0, 0.0),
               noise_tokens: Sequence[int] = (0,),
               noise_in_response: bool = False):
    self.encoded = list(encoded)
    self.batch_size = batch_size
    self.buckets = list(buckets)
    self.pad_id = pad_id
    self.prompt_loss_weight = prompt_loss_weight
    self.seed = seed
    self.instruction_noise = instruction_noise
    self.noise_tokens = np.asarray(noise_tokens, np.int32)
    self.noise_in_response = noise_in_response
    self.members = [[] for _ in self.buckets]
    for i, enc in enumerate(self.encoded):
      n_ids = len(enc.ids)
      b = next((k for k, n in enumerate(self.buckets) if n_ids <= n), None)
      if b is None:
        raise errors.ConfigError(
            f'example {i} has {n_ids} tokens, more than the largest bucket '
            f'{self.buckets[-1]}')
      self.members[b].append(i)
    self.batches_per_epoch = sum(
        math.ceil(len(m) / batch_size) for m in self.members if m)
    self._epoch = None
    self._plan = None

  def _epoch_plan(self, epoch: int) -> list[tuple[int, list[int]]]:
    rng = np.random.default_rng([self.seed, epoch])
    plan = []
    for b, members in enumerate(self.members):
      if not members:
        continue
      order = list(rng.permutation(members))
      n = math.ceil(len(order) / self.batch_size)
      order = (order * math.ceil(n * self.batch_size / len(order)))
      plan.extend((b, order[k * self.batch_size:(k + 1) * self.batch_size])
                  for k in range(n))
    return [plan[i] for i in rng.permutation(len(plan))]

  def batch(self, step: int) -> Batch:
    """The batch for step `step` (0-based) of this batcher's phase.

    The first response token of an example with `decide` False gets loss
    weight 0.
    """
    epoch, k = divmod(step, self.batches_per_epoch)
    if epoch != self._epoch:
      self._epoch, self._plan = epoch, self._epoch_plan(epoch)
    bucket, rows = self._plan[k]
    t = self.buckets[bucket]
    ids = np.full((len(rows), t), self.pad_id, np.int32)
    mask = np.zeros((len(rows), t), np.int32)
    weights = np.zeros((len(rows), t), np.float32)
    response = np.zeros((len(rows), t), np.float32)
    decision = np.zeros((len(rows),), np.int32)
    harmful = np.zeros((len(rows),), np.float32)
    answer = np.zeros((len(rows),), np.float32)
    noise = np.random.default_rng([self.seed, step, 1])
    for r, i in enumerate(rows):
      enc = self.encoded[i]
      seq, n_prompt = np.asarray(enc.ids, np.int32), enc.prompt_length
      rate = self.instruction_noise[int(enc.harmful)]
      if rate > 0:
        start, end = enc.instruction
        hit = noise.random(end - start) < rate
        drawn = noise.choice(self.noise_tokens, end - start)
        if self.noise_in_response:
          # A replaced word of the task gets one substitute wherever it
          # occurs, in the message and in the reply; other replaced tokens
          # are replaced in the message only.
          sub = {}
          for old_id, new_id in zip(seq[start:end][hit], drawn[hit]):
            if int(old_id) in enc.task_ids:
              sub.setdefault(int(old_id), int(new_id))
          seq[start:end] = np.where(hit, drawn, seq[start:end])
          for pos in itertools.chain(range(start, end),
                                     range(n_prompt, len(seq))):
            seq[pos] = sub.get(int(seq[pos]), seq[pos])
        else:
          seq[start:end] = np.where(hit, drawn, seq[start:end])
      ids[r, :len(seq)] = seq
      mask[r, :len(seq)] = 1
      weights[r, 1:n_prompt] = self.prompt_loss_weight
      first = n_prompt if enc.decide else n_prompt + 1
      weights[r, first:len(seq)] = 1.0
      response[r, first:len(seq)] = 1.0
      decision[r] = n_prompt - 1
      harmful[r] = float(enc.harmful)
      answer[r] = float(enc.harmful and not enc.decide)
    return Batch(ids=ids, mask=mask, weights=weights, response=response,
                 decision=decision, harmful=harmful, answer=answer)


def noise_tokens(tok, encoded: Sequence[Encoded], kind: str) -> list[int]:
  """Ids that replace instruction tokens in `Batcher`.

  Args:
    tok: the tokenizer.
    encoded: the training sequences.
    kind: 'unseen' for the non-special tokens that occur in no training
      sequence (the tokens of words met only outside training, whose
      embeddings training would otherwise never shape: noise teaches the model
      to read them as unfamiliar words), or 'all' for every non-special token.

  Returns:
    Token ids (all non-special ones when no token is unseen).

  Raises:
    errors.ConfigError: unknown kind.
  """
  if kind not in ('unseen', 'all'):
    raise errors.ConfigError(
        f"train.noise_tokens {kind!r}; expected 'unseen' or 'all'")
  first = max(tok.all_special_ids) + 1
  candidates = range(first, len(tok))
  if kind == 'all':
    return list(candidates)
  used = {i for enc in encoded for i in enc.ids}
  unseen = [i for i in candidates if i not in used]
  return unseen or list(candidates)
