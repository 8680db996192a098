"""Paths of the organisms and SAEs shipped inside the package.

`organism_path('gemma2')` is a transformers checkpoint directory (with its
tokenizer, `refusal_direction.json` and CARD.md) that `refusal_jax.load_model`
and `transformers.AutoModelForCausalLM` both load; `sae_path('gemma2')` is a
SAELens folder that `refusal_jax.sae.load_sae` loads (the searched SAE, at
layer 2) and `hydra_sae_paths('gemma2')` lists the downstream SAE (layer 4)
that the hydra stage reads.
"""

import importlib.resources

from refusal_jax import errors

ORGANISMS = ('gemma2', 'llama')


DOWNSTREAM_LAYERS = (4,)


def _asset(kind: str, name: str, suffix: str = '') -> str:
  if name not in ORGANISMS:
    raise errors.ConfigError(
        f'unknown organism {name!r}; expected one of {", ".join(ORGANISMS)}')
  path = importlib.resources.files('refusal_jax').joinpath(
      'assets', f'{kind}_{name}{suffix}')
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


def hydra_sae_paths(name: str) -> list[str]:
  """SAELens folders of the SAEs downstream of `sae_path(name)`.

  Raises:
    errors.ConfigError: unknown name.
    errors.CheckpointError: the packaged files are missing.
  """
  return [_asset('sae_organism', name, f'_l{layer}')
          for layer in DOWNSTREAM_LAYERS]
