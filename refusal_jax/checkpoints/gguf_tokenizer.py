"""A transformers tokenizer rebuilt from a GGUF file's metadata.

A GGUF carries no tokenizer.json: the vocabulary (`tokenizer.ggml.tokens`),
the BPE merges (`tokenizer.ggml.merges`), token kinds
(`tokenizer.ggml.token_type`), special token ids and the chat template
(`tokenizer.chat_template`) are metadata under llama.cpp's key names. This
module builds the byte-level BPE they describe with the `tokenizers` library
and wraps it in `transformers.PreTrainedTokenizerFast`, without torch.

Only byte-level BPE vocabularies (`tokenizer.ggml.model == 'gpt2'`, as
SmolLM2 and Llama-3 use) are supported. How text is split before BPE is
given by `tokenizer.ggml.pre`, and follows llama.cpp's reading of it:

* 'smollm' (and the StarCoder family): every digit on its own, then the GPT-2
  split, i.e. the `Digits(individual_digits=True)` + `ByteLevel` pre-tokenizer
  of SmolLM2's own tokenizer.json.
* 'gpt2' (and 'mpt', 'olmo', 'jais'): the GPT-2 split (`ByteLevel`).
* 'llama-bpe' / 'llama3' and kin: Llama-3's split regex.

Any other name is refused, 'default' and a missing key included: llama.cpp
then applies a split of its own that matches no tokenizer.json.

transformers' own GGUF tokenizer conversion knows no 'smollm' entry and splits
SmolLM2 text the GPT-2 way; the two differ only where whitespace precedes a
digit (e.g. "\\n\\n1."), see tests/checkpoints/test_gguf_parity.py.
"""

from typing import Any, Mapping

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models
from tokenizers import pre_tokenizers, processors

from refusal_jax import errors

# llama.cpp's token types (llama_token_type).
CONTROL = 3
USER_DEFINED = 4

_DIGITS_THEN_GPT2 = ('smollm', 'starcoder', 'refact', 'command-r',
                     'codeshell', 'exaone', 'minerva')
_GPT2 = ('gpt2', 'mpt', 'olmo', 'jais')
_LLAMA3 = ('llama-bpe', 'llama3', 'llama-v3', 'smaug-bpe', 'dbrx', 'falcon3',
           'pixtral')
# Llama-3's pre-tokenizer regex (its tokenizer.json).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def bytes_to_unicode() -> dict[int, str]:
  """GPT-2's map from each byte to the printable character spelling it."""
  printable = (list(range(ord('!'), ord('~') + 1)) +
               list(range(ord('\xa1'), ord('\xac') + 1)) +
               list(range(ord('\xae'), ord('\xff') + 1)))
  chars = list(printable)
  n = 0
  for b in range(256):
    if b not in printable:
      printable.append(b)
      chars.append(256 + n)
      n += 1
  return dict(zip(printable, map(chr, chars)))


def pre_tokenizer(pre: str | None):
  """The `tokenizers` pre-tokenizer for llama.cpp pre-tokenizer name `pre`.

  Raises:
    errors.CheckpointError: for a name outside the supported families.
  """
  if pre in _GPT2:
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  if pre in _DIGITS_THEN_GPT2:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
  if pre in _LLAMA3:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior='isolated'),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  known = sorted(_DIGITS_THEN_GPT2 + _GPT2 + _LLAMA3)
  raise errors.CheckpointError(
      f'GGUF tokenizer.ggml.pre {pre!r} is not supported; supported: '
      f'{", ".join(known)}')


def build_backend(meta: Mapping[str, Any]) -> Tokenizer:
  """The `tokenizers.Tokenizer` described by GGUF metadata `meta`.

  Args:
    meta: GGUF metadata, `tokenizer.ggml.*` keys to Python values.

  Raises:
    errors.CheckpointError: not a byte-level BPE, or malformed merges.
  """
  kind = meta.get('tokenizer.ggml.model')
  if kind != 'gpt2':
    raise errors.CheckpointError(
        f'GGUF tokenizer.ggml.model {kind!r} is not supported; only '
        "byte-level BPE ('gpt2', as SmolLM2 and Llama-3) converts")
  tokens = list(meta['tokenizer.ggml.tokens'])
  alphabet = set(bytes_to_unicode().values())
  spelling = bytes_to_unicode()
  vocab = {}
  for i, t in enumerate(tokens):
    # As transformers' GGUF conversion: a token written outside the byte
    # alphabet is respelled byte by byte.
    t = t if set(t) <= alphabet else ''.join(
        spelling[b] for b in t.encode('utf-8'))
    vocab.setdefault(t, i)
  merges = []
  for m in meta.get('tokenizer.ggml.merges') or ():
    pair = m.split(' ')
    if len(pair) != 2:
      raise errors.CheckpointError(
          f'GGUF merge {m!r} is not two tokens separated by one space')
    merges.append(tuple(pair))
  bpe = models.BPE(vocab=vocab, merges=merges, dropout=None,
                   continuing_subword_prefix='', end_of_word_suffix='',
                   fuse_unk=False)
  tok = Tokenizer(bpe)
  tok.pre_tokenizer = pre_tokenizer(meta.get('tokenizer.ggml.pre'))
  tok.decoder = decoders.ByteLevel()
  tok.post_processor = processors.ByteLevel(trim_offsets=False)
  kinds = list(meta.get('tokenizer.ggml.token_type') or ())
  control = [AddedToken(t, special=True, normalized=False)
             for t, k in zip(tokens, kinds)
             if k == CONTROL and set(t) <= alphabet]
  if control:
    tok.add_special_tokens(control)
  user = [AddedToken(t, special=False, normalized=False)
          for t, k in zip(tokens, kinds) if k == USER_DEFINED and t in vocab]
  if user:
    tok.add_tokens(user)
  return tok


def build_tokenizer(meta: Mapping[str, Any], *, model_max_length: int):
  """A `transformers.PreTrainedTokenizerFast` from GGUF metadata `meta`.

  BOS/EOS/PAD/UNK come from `tokenizer.ggml.*_token_id`, the chat template
  from `tokenizer.chat_template`, and whether BOS/EOS are added from
  `tokenizer.ggml.add_bos_token` / `add_eos_token` (default: not added).

  Raises:
    errors.CheckpointError: on an unsupported tokenizer or a special token
      id outside the vocabulary.
  """
  import transformers  # pylint: disable=g-import-not-at-top
  backend = build_backend(meta)
  tokens = meta['tokenizer.ggml.tokens']
  special = {}
  for name, key in (('bos_token', 'bos'), ('eos_token', 'eos'),
                    ('unk_token', 'unknown'), ('pad_token', 'padding')):
    i = meta.get(f'tokenizer.ggml.{key}_token_id')
    if i is None:
      continue
    if not 0 <= i < len(tokens):
      raise errors.CheckpointError(
          f'GGUF tokenizer.ggml.{key}_token_id {i} is outside the '
          f'vocabulary of {len(tokens)} tokens')
    special[name] = tokens[i]
  return transformers.PreTrainedTokenizerFast(
      tokenizer_object=backend,
      chat_template=meta.get('tokenizer.chat_template'),
      add_bos_token=bool(meta.get('tokenizer.ggml.add_bos_token', False)),
      add_eos_token=bool(meta.get('tokenizer.ggml.add_eos_token', False)),
      clean_up_tokenization_spaces=False,
      model_max_length=model_max_length, **special)
