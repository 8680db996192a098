"""The Python blocks of README.md and of the docs/ pages run as written.

README.md's blocks run first, in order, in one namespace (its quickstart:
they load the Gemma-2 organism and its SAE, forward and generate). Then
each docs/*.md page, in sorted file-name order, runs its blocks in order in
a namespace of its own. A docs page continues the README's quickstart, so
its namespace starts as a copy of the namespace the README's blocks left
(`model`, `sae`, `resid`, ...); the README's blocks run once, and one
page's names never reach another page. A docs page with no Python block
passes. Blocks run in a temporary working directory, so files they write
(`sae_exported`, ...) do not land in the checkout.
"""

import contextlib
import io
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, 'README.md')
DOCS = os.path.join(REPO, 'docs')


def _read(path):
  with open(path, encoding='utf-8') as f:
    return f.read()


def _blocks(path):
  return re.findall(r'^```python\n(.*?)^```', _read(path), flags=re.S | re.M)


def _docs_pages():
  """docs/*.md, in sorted order (the order the pages' blocks run in)."""
  if not os.path.isdir(DOCS):
    return []
  return sorted(f for f in os.listdir(DOCS) if f.endswith('.md'))


def _run(path, namespace):
  """Runs every Python block of `path` in order in `namespace`."""
  name = os.path.relpath(path, REPO)
  for i, block in enumerate(_blocks(path)):
    try:
      exec(compile(block, f'{name} python block {i + 1}', 'exec'), namespace)
    except Exception as e:
      raise AssertionError(f'{name} python block {i + 1} fails: '
                           f'{type(e).__name__}: {e}\n{block}') from e


@contextlib.contextmanager
def _in_directory(path):
  before = os.getcwd()
  os.chdir(path)
  try:
    yield
  finally:
    os.chdir(before)


@pytest.fixture(scope='module')
def readme_run(tmp_path_factory):
  """(namespace, printed text) left by running README.md's blocks once."""
  namespace = {'__name__': '__readme__'}
  printed = io.StringIO()
  with _in_directory(tmp_path_factory.mktemp('readme')):
    with contextlib.redirect_stdout(printed):
      _run(README, namespace)
  return namespace, printed.getvalue()


def test_readme_starts_with_the_two_commands():
  first = re.search(r'^```\n(.*?)^```', _read(README),
                    flags=re.S | re.M).group(1)
  commands = [line.split('#')[0].strip() for line in first.splitlines()]
  assert commands == ['make demo', 'make test']


def test_every_readme_python_block_runs(readme_run):
  assert len(_blocks(README)) >= 2
  _, printed = readme_run
  assert printed.count('[') >= 2  # the two decoded batches


@pytest.mark.parametrize('page', _docs_pages())
def test_every_docs_python_block_runs(page, readme_run, tmp_path):
  namespace = dict(readme_run[0])
  namespace['__name__'] = '__docs__'
  with _in_directory(tmp_path):
    _run(os.path.join(DOCS, page), namespace)


def test_the_docs_pages_have_python_blocks():
  assert sum(len(_blocks(os.path.join(DOCS, page)))
             for page in _docs_pages()) >= 1
