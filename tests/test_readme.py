"""The README's Python blocks run as written, in order, in one namespace."""

import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'README.md')


def _blocks():
  with open(README) as f:
    text = f.read()
  return re.findall(r'^```python\n(.*?)^```', text, flags=re.S | re.M)


def test_readme_starts_with_the_two_commands():
  with open(README) as f:
    text = f.read()
  first = re.search(r'^```\n(.*?)^```', text, flags=re.S | re.M).group(1)
  commands = [line.split('#')[0].strip() for line in first.splitlines()]
  assert commands == ['make demo', 'make test']


def test_every_python_block_runs(tmp_path, monkeypatch, capsys):
  blocks = _blocks()
  assert len(blocks) >= 3
  monkeypatch.chdir(tmp_path)
  namespace = {'__name__': '__readme__'}
  for i, block in enumerate(blocks):
    try:
      exec(compile(block, f'README.md python block {i + 1}', 'exec'),
           namespace)
    except Exception as e:
      raise AssertionError(f'README python block {i + 1} fails: '
                           f'{type(e).__name__}: {e}\n{block}') from e
  printed = capsys.readouterr().out
  assert printed.count('[') >= 2  # the two decoded batches
