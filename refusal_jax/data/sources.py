"""Prompt sources: one registry from a config's `data.source` to its prompts.

A source turns a config's `data` section into the six prompt lists a run
uses, `{'harmful_train', 'harmful_val', 'harmful_test', 'harmless_train',
'harmless_val', 'harmless_test'}`, and names the files it reads (for the
workdir's input digest). Registered here:

* 'organism': the embedded organisms' generator, `data.seed`
  (refusal_jax/organisms/prompt_source.py). The organisms are a recipe
  above the library, so the entry names its functions by a string,
  'module:function', resolved only when the source is asked for: nothing
  here, nor the pipeline, imports the organisms;
* 'files': prompt files, `data.harmful_train` ... `data.harmless_test`
  (.txt, .json, .jsonl or .csv; refusal_jax/data/prompts.py);
* every built-in harmful set of refusal_jax/data/datasets.py (`SOURCES`:
  'advbench', ...), with `data.harmful_test_source` and
  `data.harmless_source`.

`register(name, instructions, input_files)` adds a source (callables, or
'module:function' strings); `instructions(data)` and `input_files(data)`
look one up.
"""

import dataclasses
import importlib
from typing import Any, Callable

from refusal_jax import errors
from refusal_jax.data import datasets
from refusal_jax.data.prompts import load_prompts

SPLITS = ('train', 'val', 'test')
KEYS = tuple(f'{kind}_{split}' for kind in ('harmful', 'harmless')
             for split in SPLITS)

# data section -> {KEYS: prompt list}; data section -> file paths.
Instructions = Callable[[Any], dict[str, list[str]]]
InputFiles = Callable[[Any], list[str]]


@dataclasses.dataclass(frozen=True)
class Source:
  """A registered prompt source.

  Attributes:
    instructions: the data section -> the six prompt lists, or its
      'module:function' name.
    input_files: the data section -> the files read, or its
      'module:function' name, or None (reads no file).
    built_in: one of the built-in prompt sets of datasets.py.
  """
  instructions: Instructions | str
  input_files: InputFiles | str | None = None
  built_in: bool = False


_SOURCES: dict[str, Source] = {}


def register(name: str, instructions: Instructions | str,
             input_files: InputFiles | str | None = None, *,
             built_in: bool = False) -> None:
  """Registers prompt source `name` (a later registration replaces it).

  Args:
    name: the `data.source` value that selects it.
    instructions: data section -> {KEYS: list of prompts}; or a
      'module:function' string, imported when first used.
    input_files: data section -> paths of the files it reads (or a string
      as above); None when it reads none.
    built_in: a built-in prompt set (named as such in error messages).
  """
  _SOURCES[name] = Source(instructions, input_files, built_in)


def names() -> tuple[str, ...]:
  """Registered source names, in registration order."""
  return tuple(_SOURCES)


def _resolve(fn):
  if not isinstance(fn, str):
    return fn
  module, _, attr = fn.partition(':')
  return getattr(importlib.import_module(module), attr)


def _unknown(name: str) -> errors.ConfigError:
  others = [repr(n) for n, s in _SOURCES.items() if not s.built_in]
  sets = [n for n, s in _SOURCES.items() if s.built_in]
  return errors.ConfigError(
      f'data.source {name!r}: expected {", ".join(others)} or a built-in '
      f'prompt set ({", ".join(sets)})')


def instructions(data) -> dict[str, list[str]]:
  """The six prompt lists of the config's `data` section, from its source.

  Raises:
    errors.ConfigError: an unknown `data.source`.
    errors.RefusalJaxError: the source's own one-line errors.
  """
  source = _SOURCES.get(data.source)
  if source is None:
    raise _unknown(data.source)
  return _resolve(source.instructions)(data)


def input_files(data) -> list[str]:
  """The files the config's prompt source reads ([] for none, or for an
  unknown source: `instructions` reports that)."""
  source = _SOURCES.get(data.source)
  if source is None or source.input_files is None:
    return []
  return list(_resolve(source.input_files)(data))


def file_instructions(data) -> dict[str, list[str]]:
  """The six prompt lists of source 'files': `data.<kind>_<split>` paths.

  Raises:
    errors.ConfigError: a path is not set.
    errors.PromptError: a file cannot be read as prompts.
  """
  out = {}
  for kind in ('harmful', 'harmless'):
    for split in SPLITS:
      path = data.get(f'{kind}_{split}')
      if not path:
        raise errors.ConfigError(
            f'data.source is files but data.{kind}_{split} is not set')
      out[f'{kind}_{split}'] = load_prompts(
          path, field=data.get('field') or None,
          column=data.get('column') or None)
  return out


def file_paths(data) -> list[str]:
  """The six prompt files of source 'files' ('' where one is not set)."""
  return [data.get(f'{kind}_{split}') or ''
          for kind in ('harmful', 'harmless') for split in SPLITS]


register('organism', 'refusal_jax.organisms.prompt_source:instructions')
register('files', file_instructions, file_paths)
for _name in datasets.SOURCES:
  register(_name, datasets.instructions_for, datasets.input_files,
           built_in=True)
