"""Chat formatting and left-padded batching through the tokenizer's own template.

BOS is handled explicitly: the chat template of Gemma-2 and Llama-3 writes BOS
into the text, so the text is encoded with `add_special_tokens=False` and BOS is
prepended only when the template did not already put it first. Rows are left
padded so that the last prompt token is at index T - 1 in every row.
"""

from typing import Sequence

import numpy as np

from refusal_jax import errors


def format_chat(tokenizer, instructions: Sequence[str], *,
                system: str | None = None) -> list[str]:
  """Renders each instruction as a user turn followed by the generation prompt.

  Args:
    tokenizer: a transformers tokenizer with a chat template.
    instructions: user messages.
    system: optional system message (only for templates that accept one).

  Returns:
    One prompt string per instruction, ending where the reply starts.

  Raises:
    errors.PromptError: when the tokenizer has no chat template.
  """
  if not getattr(tokenizer, 'chat_template', None):
    raise errors.PromptError(
        'the tokenizer has no chat template; use the instruction-tuned '
        "model's tokenizer or set tokenizer.chat_template")
  texts = []
  for instruction in instructions:
    messages = [{'role': 'user', 'content': instruction}]
    if system is not None:
      messages.insert(0, {'role': 'system', 'content': system})
    texts.append(tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False))
  return texts


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int,
             length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads id lists to [B, T] int32 ids and a [B, T] int32 mask."""
  t = max(len(s) for s in sequences) if length is None else length
  ids = np.full((len(sequences), t), pad_id, np.int32)
  mask = np.zeros((len(sequences), t), np.int32)
  for i, s in enumerate(sequences):
    if len(s) > t:
      raise errors.PromptError(
          f'prompt {i} has {len(s)} tokens, more than the length {t}')
    if len(s):
      ids[i, t - len(s):] = s
      mask[i, t - len(s):] = 1
  return ids, mask


def encode(tokenizer, texts: Sequence[str], *, bos_id: int | None,
           pad_id: int | None = None, max_length: int | None = None,
           length_multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Tokenizes already-formatted texts into left-padded [B, T] ids and mask.

  Args:
    tokenizer: a transformers tokenizer.
    texts: prompt strings (e.g. from `format_chat`).
    bos_id: BOS id to ensure exactly once at the start of each row (None: the
      model has no BOS).
    pad_id: padding id; default the tokenizer's pad, else EOS, else 0.
    max_length: the model's context; longer prompts raise.
    length_multiple: T is the longest prompt's length rounded up to a
      multiple of this (at most max_length), so that sets of similar
      lengths share one compiled shape.

  Returns:
    (ids [B, T] int32, mask [B, T] int32).

  Raises:
    errors.PromptError: on an empty list or a prompt longer than max_length.
  """
  if not texts:
    raise errors.PromptError('no prompts to encode')
  seqs = []
  for i, text in enumerate(texts):
    ids = list(tokenizer(text, add_special_tokens=False)['input_ids'])
    if bos_id is not None and (not ids or ids[0] != bos_id):
      ids = [bos_id] + ids
    if max_length is not None and len(ids) > max_length:
      raise errors.PromptError(
          f'prompt {i} has {len(ids)} tokens, more than the model context '
          f'{max_length}; shorten it or drop it')
    seqs.append(ids)
  if pad_id is None:
    pad_id = tokenizer.pad_token_id
  if pad_id is None:
    pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
  longest = max(len(s) for s in seqs)
  t = -(-longest // length_multiple) * length_multiple
  if max_length is not None:
    t = max(min(t, max_length), longest)
  return pad_left(seqs, pad_id, t)


def encode_chat(tokenizer, instructions: Sequence[str], *,
                bos_id: int | None, system: str | None = None,
                max_length: int | None = None):
  """format_chat + encode: instructions -> left-padded (ids, mask)."""
  return encode(tokenizer, format_chat(tokenizer, instructions, system=system),
                bos_id=bos_id, max_length=max_length)


def special_token_ids(tokenizer, bos_id: int | None = None) -> tuple[int, ...]:
  """The ids of the tokenizer's special tokens, BOS included, sorted.

  Special tokens are those the tokenizer names (BOS, EOS, pad,
  `additional_special_tokens`) and every added token marked special: the
  chat-template markers (Gemma's `<start_of_turn>` / `<end_of_turn>`,
  Llama-3's `<|start_header_id|>`, `<|end_header_id|>`, `<|eot_id|>`).
  Ordinary words of a template ('user', 'model', newlines) are not.

  Args:
    tokenizer: a transformers tokenizer.
    bos_id: the model's BOS id, added when the tokenizer does not name it.
  """
  ids = set(getattr(tokenizer, 'all_special_ids', ()) or ())
  added = getattr(tokenizer, 'added_tokens_decoder', None) or {}
  ids.update(i for i, tok in added.items() if getattr(tok, 'special', False))
  if bos_id is not None:
    ids.add(bos_id)
  return tuple(sorted(int(i) for i in ids))
