"""Paths of the files shipped in refusal_jax/assets/.

One low module names every shipped asset, so that the library (the
pipeline's organism defaults) and the recipes find them without importing
each other:

* `assets_dir()` is the folder of shipped assets in the installed package,
  `asset_path(folder)` one asset folder in it (checked to exist);
* `organism_path('gemma2')` is a transformers checkpoint directory (with its
  tokenizer, `refusal_direction.json` and CARD.md) that
  `refusal_jax.load_model` and `transformers.AutoModelForCausalLM` both
  load; `sae_path('gemma2')` is a SAELens folder that
  `refusal_jax.sae.load_sae` loads (the searched SAE, at layer 2) and
  `hydra_sae_paths('gemma2')` lists the downstream SAE (layer 4) that the
  hydra stage reads. Every layer of each organism has an SAE
  (`layer_sae_path(name, layer)`, layers `SAE_LAYERS`), for the paper
  mode's search over the SAEs of all layers up to the refusal layer.

`refusal_jax.organisms.assets` re-exports the organisms' names.
"""

import importlib.resources
import os

from refusal_jax import errors

ORGANISMS = ('gemma2', 'llama')


SEARCHED_LAYER = 2
DOWNSTREAM_LAYERS = (4,)
# Layers with a shipped SAE (the organisms have 6 decoder layers).
SAE_LAYERS = (0, 1, 2, 3, 4, 5)


def assets_dir() -> str:
  """The folder of shipped assets, refusal_jax/assets, where installed."""
  return str(importlib.resources.files('refusal_jax').joinpath('assets'))


def asset_path(folder: str, *, what: str | None = None) -> str:
  """Asset folder `folder` of refusal_jax/assets (e.g. 'organism_llama').

  Args:
    folder: the folder's name in refusal_jax/assets.
    what: how the error names it (default: the asset `folder`).

  Raises:
    errors.CheckpointError: the packaged folder is missing.
  """
  path = os.path.join(assets_dir(), folder)
  if not os.path.isdir(path):
    raise errors.CheckpointError(
        f'the packaged {what or "asset " + repr(folder)} is missing at '
        f'{path}; reinstall refusal_jax')
  return path


def _asset(kind: str, name: str, suffix: str = '') -> str:
  if name not in ORGANISMS:
    raise errors.ConfigError(
        f'unknown organism {name!r}; expected one of {", ".join(ORGANISMS)}')
  return asset_path(f'{kind}_{name}{suffix}', what=f'{kind} {name!r}')


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


def layer_sae_path(name: str, layer: int) -> str:
  """SAELens folder of organism `name`'s SAE on the residual stream after
  decoder layer `layer` (one of `SAE_LAYERS`).

  Raises:
    errors.ConfigError: unknown name or a layer without a shipped SAE.
    errors.CheckpointError: the packaged files are missing.
  """
  if int(layer) not in SAE_LAYERS:
    raise errors.ConfigError(
        f'organism SAEs exist at layers {", ".join(map(str, SAE_LAYERS))}; '
        f'got layer {layer}')
  if int(layer) == SEARCHED_LAYER:
    return sae_path(name)
  return _asset('sae_organism', name, f'_l{int(layer)}')
