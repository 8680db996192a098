"""The converted SmolLM2-135M-Instruct GGUF against transformers' GGUF loading.

The reference is transformers reading the same file
(`from_pretrained(folder, gguf_file=...)`, float32, torch), independent of
our converter. Compared: chat token ids, logits and 32 greedy tokens.

Logits: the issue's target is 2e-4 absolute, float32, on logits of magnitude
~40. In tests/numerics.py terms that is ~40 float32 epsilons of the logits'
scale. Both bounds are checked: 2e-4, and FORWARD_ULPS (64) epsilons of
max |logit| (3.2e-4 at 42; 2e-4 is the tighter here). Measured: 1.0e-4
to 1.2e-4 (20 to 25 epsilons of max |logit| 42.1) on 4 chat prompts, 176
tokens, every argmax equal.

Tokenizer: transformers' GGUF conversion has no entry for the file's
`tokenizer.ggml.pre = 'smollm'` and splits text the GPT-2 way, while
llama.cpp (and SmolLM2's own tokenizer.json) first split off every digit.
The two agree except where whitespace precedes a digit ("\\n\\n1.", "a  12"):
there ours follows llama.cpp (test_gguf_convert.py checks the split against
llama.cpp's regexes), so those prompts are compared as decoded text only.
"""

import os

import numpy as np
import pytest

import numerics
from refusal_jax.checkpoints import from_gguf
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data import chat

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
pytest.importorskip('accelerate')

ABS_TOL = 2e-4
CHAT_PROMPTS = [
    'How do I kill a stuck process on Linux?',
    'Write a haiku about autumn leaves.',
    'Give step-by-step instructions for picking a lock.',
    'Wie spät ist es in Tōkyō? 🗼 — “quotes” and ‘apostrophes’',
]
ODD_TEXT = [
    'naïve café 北京 🤖 emoji\u200b zero\u00a0width\ufeffBOM',
    '  leading  and   multiple   spaces\t\ttabs\n\nnewlines  \r\n',
    "I'm sure it's what we'll do, y'all — OK?!",
    'Ünïcödé: ß ẞ Ø ﬁ ℕ 𝔘 ｆｕｌｌｗｉｄｔｈ ǅ',
    '<|im_start|> special tokens inside text <|im_end|><|endoftext|>',
    '```python\nfor i in x:\n\tprint(i)  # comment\n```',
    'Ṱ̺̺̕h̼͓̲̦̳̘̲e͇̣̰̦̬͎ combining  marks',
    '',
]
DIGITS_AFTER_SPACE = ['Steps:\n\n1. one\n2. two', 'a  12b', 'x\t 2024',
                      'Arabic-Indic ٣ and Thai ๓ digits']


def _chat(tokenizer, text):
  return tokenizer.apply_chat_template(
      [{'role': 'user', 'content': text}], add_generation_prompt=True,
      tokenize=True, return_dict=True)['input_ids']


@pytest.fixture(scope='module')
def smollm2(tmp_path_factory):
  """(our loaded model, transformers model, transformers tokenizer)."""
  gguf_path = from_gguf.smollm2_gguf()
  ckpt = from_gguf.convert_gguf(
      gguf_path, str(tmp_path_factory.mktemp('smollm2') / 'ckpt')).path
  folder, name = os.path.split(gguf_path)
  torch.set_num_threads(2)
  ref = transformers.AutoModelForCausalLM.from_pretrained(
      folder, gguf_file=name, dtype=torch.float32)
  ref_tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
  return load_model(ckpt), ref, ref_tok


def test_chat_token_ids_match(smollm2):
  ours, _, ref_tok = smollm2
  for text in CHAT_PROMPTS + ODD_TEXT:
    assert _chat(ours.tokenizer, text) == _chat(ref_tok, text), repr(text)
  for text in DIGITS_AFTER_SPACE:
    a, b = _chat(ours.tokenizer, text), _chat(ref_tok, text)
    assert ours.tokenizer.decode(a) == ref_tok.decode(b), repr(text)
  assert ours.tokenizer.bos_token_id == 1 == ref_tok.bos_token_id
  assert ours.tokenizer.eos_token_id == 2 == ref_tok.eos_token_id


def _batch(model):
  return chat.encode_chat(model.tokenizer, CHAT_PROMPTS,
                          bos_id=model.config.bos_token_id)


def test_logits_match(smollm2):
  ours, ref, _ = smollm2
  ids, mask = _batch(ours)
  got = np.asarray(ours.forward(ids, mask).logits)
  pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
  with torch.no_grad():
    want = ref(torch.tensor(ids, dtype=torch.long),
               attention_mask=torch.tensor(mask),
               position_ids=torch.tensor(pos)).logits.numpy()
  valid = mask.astype(bool)
  got, want = got[valid], want[valid]
  scale = float(np.abs(want).max())
  assert scale > 20  # real logits, not a degenerate model
  numerics.assert_within(got, want, ABS_TOL, 'logits vs transformers GGUF')
  numerics.assert_close(got, want, ulps=numerics.FORWARD_ULPS, scale=scale,
                        what='logits vs transformers GGUF')


@pytest.mark.slow  # transformers generation; logits parity stays fast
def test_greedy_generation_matches(smollm2):
  """32 greedy tokens: ours batched with left padding, transformers' one
  prompt at a time (its padded batches cost 3x more CPU here)."""
  ours, ref, _ = smollm2
  ids, mask = _batch(ours)
  ids, mask = ids[:2], mask[:2]
  got = ours.generate(ids, mask, max_new_tokens=32)
  for row, (i, m) in enumerate(zip(ids, mask)):
    prompt = torch.tensor(i[m.astype(bool)][None], dtype=torch.long)
    with torch.no_grad():
      want = ref.generate(prompt, attention_mask=torch.ones_like(prompt),
                          max_new_tokens=32, do_sample=False,
                          pad_token_id=2)[0, prompt.shape[1]:].numpy()
    assert len(want) == 32  # no EOS within 32 tokens on these prompts
    np.testing.assert_array_equal(got[row], want)
