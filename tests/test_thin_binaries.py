"""The binaries in experiments/ stay thin: flags, one library call, printing.

Library code (anything another binary, a test or a notebook would import)
lives in the refusal_jax package; `experiments/common.py` is the binaries'
shared plumbing (distributed and mesh flags, one-line errors).
"""

import ast
import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 80
EXEMPT = ('__init__.py', 'common.py')
BINARIES = sorted(
    p for p in glob.glob(os.path.join(REPO, 'experiments', '*.py'))
    if os.path.basename(p) not in EXEMPT)


def test_binaries_found():
  names = {os.path.basename(p) for p in BINARIES}
  assert {'benchmark_ablation.py', 'dissect.py', 'train_sae.py'} <= names


@pytest.mark.parametrize('path', BINARIES, ids=os.path.basename)
def test_binary_is_thin(path):
  with open(path) as f:
    source = f.read()
  n_lines = len(source.splitlines())
  assert n_lines <= MAX_LINES, (
      f'{path} has {n_lines} lines (at most {MAX_LINES}); move its library '
      'code into refusal_jax')
  defined = [node.name for node in ast.walk(ast.parse(source, path))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                  ast.ClassDef))]
  assert defined == ['main'], (
      f'{path} defines {defined}; a binary defines only main, the rest '
      'belongs in refusal_jax')
