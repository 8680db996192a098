"""Paths of the organisms and SAEs shipped inside the package.

`organism_path('gemma2')` is a transformers checkpoint directory (with its
tokenizer, `refusal_direction.json` and CARD.md) that `refusal_jax.load_model`
and `transformers.AutoModelForCausalLM` both load; `sae_path('gemma2')` is a
SAELens folder that `refusal_jax.sae.load_sae` loads (the searched SAE, at
layer 2) and `hydra_sae_paths('gemma2')` lists the downstream SAE (layer 4)
that the hydra stage reads. Every layer of each organism has an SAE
(`layer_sae_path(name, layer)`, layers `SAE_LAYERS`), for the paper mode's
search over the SAEs of all layers up to the refusal layer.

The names are defined in refusal_jax/asset_paths.py, the one module that
names shipped assets (the pipeline reads the organisms' defaults there
without importing the organisms); this module re-exports them.
"""

from refusal_jax.asset_paths import DOWNSTREAM_LAYERS
from refusal_jax.asset_paths import ORGANISMS
from refusal_jax.asset_paths import SAE_LAYERS
from refusal_jax.asset_paths import SEARCHED_LAYER
from refusal_jax.asset_paths import hydra_sae_paths
from refusal_jax.asset_paths import layer_sae_path
from refusal_jax.asset_paths import organism_path
from refusal_jax.asset_paths import sae_path

__all__ = [
    'DOWNSTREAM_LAYERS', 'ORGANISMS', 'SAE_LAYERS', 'SEARCHED_LAYER',
    'hydra_sae_paths', 'layer_sae_path', 'organism_path', 'sae_path',
]
