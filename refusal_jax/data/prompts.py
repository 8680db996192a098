"""Loading prompt lists from .txt, .json, .jsonl and .csv files.

Formats:
  .txt    one prompt per line; blank lines are skipped.
  .json   a list of strings, or a list of objects holding the prompt in a field.
  .jsonl  one JSON string or object per line; blank lines are skipped.
  .csv    a header row and one prompt per row in a column (AdvBench's
          `harmful_behaviors.csv` uses 'goal', HarmBench 'Behavior').

When no field (column) is named, the first of `DEFAULT_FIELDS`
(`DEFAULT_COLUMNS`) present is used. Every problem is raised as
`errors.PromptError` with a one-line message.
"""

import csv
import io
import json
import os
from typing import Sequence

from refusal_jax import errors

DEFAULT_FIELDS = ('instruction', 'prompt', 'goal', 'behavior', 'Behavior')
DEFAULT_COLUMNS = ('goal', 'Behavior', 'prompt', 'instruction')
SUPPORTED_EXTENSIONS = ('.txt', '.json', '.jsonl', '.csv')


def _fail(message):
  """Raises PromptError with message folded onto one line."""
  raise errors.PromptError(' '.join(str(message).split()))


def _read_text(path):
  try:
    with open(path, encoding='utf-8-sig', newline='') as f:
      return f.read()
  except UnicodeDecodeError as e:
    _fail(f'cannot decode prompt file {path} as UTF-8 ({e.reason} at byte '
          f'{e.start}); re-save it as UTF-8 text')
  except OSError as e:
    _fail(f'cannot read prompt file {path} ({e.strerror or e}); check that it '
          'is a readable file')


def _lines(text):
  """Splits text at line feeds and carriage returns only."""
  return text.replace('\r\n', '\n').replace('\r', '\n').split('\n')


def _names(keys):
  return ', '.join(repr(k) for k in keys) or '(none)'


def _pick_field(obj, where, path):
  """Returns the first of DEFAULT_FIELDS in a JSON object."""
  for candidate in DEFAULT_FIELDS:
    if candidate in obj:
      return candidate
  _fail(f'no prompt field in {where} of {path}; available fields: '
        f'{_names(obj)}; pass field= one of them')


def _from_items(items, field, path, where):
  """Extracts prompts from JSON values; where(i) names item i for messages."""
  prompts = []
  key = field
  for i, item in enumerate(items):
    if isinstance(item, dict):
      if key is None:
        key = _pick_field(item, where(i), path)
      if key not in item:
        _fail(f'field {key!r} not found in {where(i)} of {path}; available '
              f'fields: {_names(item)}; pass field= one of them')
      item = item[key]
      if not isinstance(item, str):
        _fail(f'{where(i)} of {path} has a {type(item).__name__} in field '
              f'{key!r}, not a string; make every prompt a string')
    elif not isinstance(item, str):
      _fail(f'{where(i)} of {path} is a {type(item).__name__}, not a string or '
            'object; make every entry a prompt string or an object with a '
            'prompt field')
    prompts.append(item)
  return prompts


def _load_json(text, path, field):
  try:
    items = json.loads(text)
  except json.JSONDecodeError as e:
    _fail(f'malformed JSON in {path} at line {e.lineno} column {e.colno}: '
          f'{e.msg}; fix the file or convert it to .txt')
  if not isinstance(items, list):
    _fail(f'{path} holds a JSON {type(items).__name__}, not a list; make the '
          'top level a list of strings or objects')
  return _from_items(items, field, path, lambda i: f'entry {i}')


def _load_jsonl(text, path, field):
  items, lines = [], []
  for lineno, line in enumerate(_lines(text), start=1):
    if not line.strip():
      continue
    try:
      items.append(json.loads(line))
    except json.JSONDecodeError as e:
      _fail(f'malformed JSON in {path} at line {lineno} column {e.colno}: '
            f'{e.msg}; put exactly one JSON value on each line')
    lines.append(lineno)
  return _from_items(items, field, path, lambda i: f'line {lines[i]}')


def _csv_rows(text, path):
  """Yields (line number, fields) for each non-empty CSV record."""
  reader = csv.reader(io.StringIO(text, newline=''), strict=True)
  while True:
    try:
      row = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      _fail(f'malformed CSV in {path} at line {reader.line_num}: {e}; fix the '
            'quoting on that line')
    if row:
      yield reader.line_num, row


def _load_csv(text, path, column):
  rows = _csv_rows(text, path)
  header = next(rows, (0, None))[1]
  if not header:
    return []
  if column is None:
    column = next((c for c in DEFAULT_COLUMNS if c in header), None)
    if column is None:
      _fail(f'no prompt column in {path}; available columns: {_names(header)}; '
            'pass column= one of them')
  elif column not in header:
    _fail(f'column {column!r} not found in {path}; available columns: '
          f'{_names(header)}; pass column= one of them')
  index = header.index(column)
  prompts = []
  for lineno, row in rows:
    if len(row) > len(header) or len(row) <= index:
      more = 'more' if len(row) > len(header) else 'fewer'
      _fail(f'malformed CSV in {path} at line {lineno}: the row has {more} '
            'fields than the header; quote fields that contain commas')
    prompts.append(row[index])
  return prompts


def load_prompts(path: str | os.PathLike[str], *, field: str | None = None,
                 column: str | None = None,
                 limit: int | None = None) -> list[str]:
  """Reads a list of prompts from a file.

  Args:
    path: A .txt, .json, .jsonl or .csv file.
    field: For .json / .jsonl objects, the key holding the prompt; default: the
      first of `DEFAULT_FIELDS` present.
    column: For .csv, the column holding the prompt; default: the first of
      `DEFAULT_COLUMNS` present.
    limit: Keep only the first `limit` prompts.

  Returns:
    The prompts, in file order, with surrounding whitespace stripped and blank
    prompts dropped.

  Raises:
    errors.PromptError: The file is missing, unreadable, of an unsupported
      type, malformed, has no prompt field/column, holds non-string entries,
      or yields no prompts; or limit is not a positive int.
  """
  path = os.fspath(path)
  bad_limit = isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
  if limit is not None and bad_limit:
    _fail(f'limit must be a positive int or None, got {limit!r}')
  ext = os.path.splitext(path)[1].lower()
  if ext not in SUPPORTED_EXTENSIONS:
    _fail(f'unsupported prompt file type {ext or "(no extension)"!r} for '
          f'{path}; use one of {", ".join(SUPPORTED_EXTENSIONS)}')
  if not os.path.exists(path):
    _fail(f'prompt file not found: {path}; check the path')
  if os.path.isdir(path):
    _fail(f'prompt path {path} is a directory; pass a '
          f'{"/".join(SUPPORTED_EXTENSIONS)} file')
  text = _read_text(path)
  if ext == '.txt':
    raw = _lines(text)
  elif ext == '.json':
    raw = _load_json(text, path, field)
  elif ext == '.jsonl':
    raw = _load_jsonl(text, path, field)
  else:
    raw = _load_csv(text, path, column)
  prompts = [p.strip() for p in raw if p.strip()]
  if not prompts:
    _fail(f'no prompts found in {path}; add at least one non-blank prompt')
  return prompts[:limit] if limit is not None else prompts


def check_prompt_lengths(token_lengths: Sequence[int], max_len: int) -> None:
  """Checks that every prompt fits in max_len tokens.

  Args:
    token_lengths: Token count of each prompt, in order.
    max_len: The longest allowed prompt, in tokens.

  Raises:
    errors.PromptError: A prompt is longer than max_len (the first one is
      named), or max_len is not positive.
  """
  if max_len < 1:
    _fail(f'max_len must be positive, got {max_len}')
  for i, n in enumerate(token_lengths):
    if n > max_len:
      _fail(f'prompt {i} is {n} tokens long, more than the limit of {max_len}; '
            'shorten or drop it, or raise the maximum prompt length')
