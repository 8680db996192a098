"""The package's layering holds: no library module imports upwards.

The library, low to high (a package may import its own level and lower
ones; the three packages of level 0 import none of each other):

  0  models, parallel, fm
  1  checkpoints, data
  2  sae
  3  interventions
  4  sweeps
  5  pipeline

Above the library sit the recipes, which build or measure particular
models (`RECIPES`); the library never imports one. The top-level helper
modules (`HELPERS`: refusal_jax/errors.py, axes.py, ...) sit below
everything and import only each other. `refusal_jax/__init__.py`, the
public facade, re-exports library names: it may import the library but no
recipe, and a module that imports the facade itself (`import refusal_jax`,
or `from refusal_jax import load_model`) counts as importing the highest
library package the facade imports.

Every import statement of every module is checked, those inside functions
included, absolute and relative. A new top-level package or helper module
must be classified here before the test passes.
"""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, 'refusal_jax')

LIBRARY = {
    'models': 0, 'parallel': 0, 'fm': 0,
    'checkpoints': 1, 'data': 1,
    'sae': 2,
    'interventions': 3,
    'sweeps': 4,
    'pipeline': 5,
}
# Levels whose packages may not import each other.
SEPARATE_LEVELS = (0,)
RECIPES = ('organisms', 'tuning', 'rehearsal', 'bench', 'sae_recipes')
HELPERS = ('errors', 'axes', 'atomic', 'package_files', 'asset_paths')
FACADE = '__init__'


def _modules():
  """(dotted name, path, is a package __init__) of every module."""
  for directory, dirs, files in os.walk(PACKAGE):
    dirs[:] = sorted(d for d in dirs if d != '__pycache__')
    for f in sorted(files):
      if not f.endswith('.py'):
        continue
      path = os.path.join(directory, f)
      parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
      is_init = parts[-1] == '__init__'
      if is_init:
        parts = parts[:-1]
      yield '.'.join(parts), path, is_init


def _is_module(dotted: str) -> bool:
  """Whether refusal_jax module or package `dotted` exists."""
  base = os.path.join(REPO, *dotted.split('.'))
  return os.path.isfile(base + '.py') or os.path.isfile(
      os.path.join(base, '__init__.py'))


def imported_modules(name: str, path: str, is_init: bool):
  """(line, dotted module) of every refusal_jax import in one module.

  `from refusal_jax import x` names refusal_jax.x when x is a module, else
  the facade, 'refusal_jax'.
  """
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read(), path)
  package = name.split('.') if is_init else name.split('.')[:-1]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package[:len(package) - node.level + 1]
        module = '.'.join(base + ([node.module] if node.module else []))
      else:
        module = node.module or ''
      for alias in node.names:
        sub = f'{module}.{alias.name}'
        yield node.lineno, (sub if module.startswith('refusal_jax')
                            and _is_module(sub) else module)


def unit_of(dotted: str) -> str | None:
  """The top-level package or helper module of a refusal_jax module, FACADE
  for refusal_jax itself, None outside the package."""
  parts = dotted.split('.')
  if parts[0] != 'refusal_jax':
    return None
  return parts[1] if len(parts) > 1 else FACADE


def _facade_level() -> int:
  """The highest library level the facade imports."""
  path = os.path.join(PACKAGE, '__init__.py')
  units = {unit_of(m) for _, m in imported_modules('refusal_jax', path, True)}
  return max(LIBRARY[u] for u in units if u in LIBRARY)


def _unit_problem(source: str, target: str) -> str | None:
  """Why `source` may not import `target` (top-level units), or None."""
  if target == source:
    return None
  if target not in LIBRARY and target not in RECIPES and target not in (
      *HELPERS, FACADE):
    return f'{target} is not classified in tests/test_layers.py'
  if source in HELPERS:
    return None if target in HELPERS else (
        f'helper module {source} imports {target}; helpers import only '
        'each other')
  if source == FACADE:
    return (f'the facade imports recipe {target}' if target in RECIPES
            else None)
  if source in RECIPES:
    return None
  if target in HELPERS:
    return None
  if target in RECIPES:
    return f'library package {source} imports recipe {target}'
  if target == FACADE:
    level, what = _facade_level(), 'the refusal_jax facade'
  else:
    level, what = LIBRARY[target], target
  mine = LIBRARY[source]
  if level > mine:
    return f'{source} (level {mine}) imports {what} (level {level})'
  if level == mine and target != FACADE and mine in SEPARATE_LEVELS:
    return f'{source} imports {target} of its own level {mine}'
  return None


def violations() -> list[str]:
  """'path:line: module -> imported: why' for each offending import."""
  out = []
  for name, path, is_init in _modules():
    source = unit_of(name)
    if source not in LIBRARY and source not in RECIPES and source not in (
        *HELPERS, FACADE):
      out.append(f'{os.path.relpath(path, REPO)}: {source} is not classified '
                 'in tests/test_layers.py (LIBRARY, RECIPES or HELPERS)')
      continue
    for line, module in imported_modules(name, path, is_init):
      target = unit_of(module)
      if target is None:
        continue
      why = _unit_problem(source, target)
      if why:
        out.append(f'{os.path.relpath(path, REPO)}:{line}: {name} imports '
                   f'{module}: {why}')
  return out


def test_every_module_is_found():
  names = {name for name, _, _ in _modules()}
  assert {'refusal_jax', 'refusal_jax.models.transformer',
          'refusal_jax.pipeline.context'} <= names


def test_every_classified_name_exists():
  for package in (*LIBRARY, *RECIPES):
    assert os.path.isfile(os.path.join(PACKAGE, package, '__init__.py')), (
        package)
  for helper in HELPERS:
    assert os.path.isfile(os.path.join(PACKAGE, f'{helper}.py')), helper


def test_the_facade_is_library_only():
  assert 0 <= _facade_level() <= max(LIBRARY.values())


def test_the_checker_sees_every_import_form(tmp_path):
  source = tmp_path / 'x.py'
  source.write_text(
      'import refusal_jax.organisms.data\n'
      'from refusal_jax import pipeline\n'
      'from refusal_jax import load_model\n'
      'def f():\n'
      '  from ..organisms import assets\n'
      '  from . import engine\n')
  got = [m for _, m in imported_modules('refusal_jax.sweeps.x', str(source),
                                        False)]
  assert got == ['refusal_jax.organisms.data', 'refusal_jax.pipeline',
                 'refusal_jax', 'refusal_jax.organisms.assets',
                 'refusal_jax.sweeps.engine']
  assert [_unit_problem('sweeps', unit_of(m)) is not None for m in got] == [
      True, True, False, True, False]
  assert _unit_problem('sae', FACADE) is not None


def test_no_library_module_imports_upwards():
  found = violations()
  assert not found, (
      f'{len(found)} imports break the layering (tests/test_layers.py):\n'
      + '\n'.join(found))
