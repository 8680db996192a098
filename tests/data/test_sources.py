"""The prompt-source registry: every source in one place, organisms lazily."""

import subprocess
import sys

import ml_collections
import pytest

from refusal_jax import errors
from refusal_jax.data import datasets
from refusal_jax.data import sources


def _data(**fields):
  return ml_collections.ConfigDict(dict(dict(source='organism', seed=0),
                                        **fields))


def test_registered_sources():
  assert sources.names()[:2] == ('organism', 'files')
  assert set(datasets.SOURCES) <= set(sources.names())


def test_unknown_source_names_the_choices():
  with pytest.raises(errors.ConfigError) as e:
    sources.instructions(_data(source='nope'))
  assert str(e.value) == (
      "data.source 'nope': expected 'organism', 'files' or a built-in "
      f"prompt set ({', '.join(datasets.SOURCES)})")
  assert sources.input_files(_data(source='nope')) == []


def test_the_organism_source_is_resolved_when_asked_for():
  raw = sources.instructions(_data())
  assert list(raw) == ['harmful_train', 'harmless_train', 'harmful_val',
                       'harmless_val', 'harmful_test', 'harmless_test']
  assert all(raw.values())
  assert sources.input_files(_data()) == []


def test_the_pipeline_imports_no_recipe():
  code = ('import sys\n'
          'import refusal_jax.pipeline.dissect\n'
          'from refusal_jax.data import sources\n'
          'print(sorted(m for m in sys.modules if m.startswith(('
          '"refusal_jax.organisms", "refusal_jax.tuning", '
          '"refusal_jax.rehearsal", "refusal_jax.bench", '
          '"refusal_jax.sae_recipes"))))\n')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, check=True).stdout
  assert out.strip() == '[]'


def test_files_source(tmp_path):
  fields = {}
  for kind in ('harmful', 'harmless'):
    for split in sources.SPLITS:
      path = tmp_path / f'{kind}_{split}.txt'
      path.write_text(f'{kind} {split} a\n{kind} {split} b\n')
      fields[f'{kind}_{split}'] = str(path)
  data = _data(source='files', field='', column='', **fields)
  raw = sources.instructions(data)
  assert list(raw) == list(sources.KEYS)
  assert raw['harmless_val'] == ['harmless val a', 'harmless val b']
  assert sources.input_files(data) == [fields[k] for k in sources.KEYS]
  data.harmful_test = ''
  with pytest.raises(errors.ConfigError, match='harmful_test is not set'):
    sources.instructions(data)


def test_register_a_source_by_callable_or_name():
  lists = {k: [f'{k} prompt'] for k in sources.KEYS}
  try:
    sources.register('mine', lambda data: lists, lambda data: ['/x'])
    assert sources.instructions(_data(source='mine')) == lists
    assert sources.input_files(_data(source='mine')) == ['/x']
    sources.register('by_name', 'refusal_jax.organisms.prompt_source:'
                     'instructions')
    assert sources.instructions(_data(source='by_name')) == (
        sources.instructions(_data()))
  finally:
    sources._SOURCES.pop('mine', None)  # pylint: disable=protected-access
    sources._SOURCES.pop('by_name', None)  # pylint: disable=protected-access
