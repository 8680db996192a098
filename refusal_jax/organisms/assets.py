"""Paths of the organisms and SAEs shipped inside the package.

`organism_path('gemma2')` is a transformers checkpoint directory (with its
tokenizer, `refusal_direction.json` and CARD.md) that `refusal_jax.load_model`
and `transformers.AutoModelForCausalLM` both load; `sae_path('gemma2')` is a
SAELens folder that `refusal_jax.sae.load_sae` loads.
"""

import importlib.resources

from refusal_jax import errors

ORGANISMS = ('gemma2', 'llama')


def _asset(kind: str, name: str) -> str:
  if name not in ORGANISMS:
    raise errors.ConfigError(
        f'unknown organism {name!r}; expected one of {", ".join(ORGANISMS)}')
  path = importlib.resources.files('refusal_jax').joinpath(
      'assets', f'{kind}_{name}')
  if not path.is_dir():
    raise errors.CheckpointError(
        f'the packaged {kind} {name!r} is missing at {path}; reinstall '
        'refusal_jax')
  return str(path)


def organism_path(name: str) -> str:
  """Directory of the shipped organism `name` ('gemma2' or 'llama').

  Raises:
    errors.ConfigError: unknown name.
    errors.CheckpointError: the packaged files are missing.
  """
  return _asset('organism', name)


def sae_path(name: str) -> str:
  """SAELens folder of the SAE shipped for organism `name`.

  Raises:
    errors.ConfigError: unknown name.
    errors.CheckpointError: the packaged files are missing.
  """
  return _asset('sae_organism', name)
