"""Sparse autoencoders: the `SAE` pytree, published-format loaders, training.

The recipes that train the shipped SAEs of particular models (an
organism's, `train_organism_sae`, and any chat checkpoint's,
`train_chat_saes`) are in refusal_jax/sae_recipes/, above the library.
"""

from refusal_jax.sae.evaluate import evaluate_sae
from refusal_jax.sae.loaders import check_sae_fits
from refusal_jax.sae.loaders import load_sae
from refusal_jax.sae.loaders import save_sae
from refusal_jax.sae.model import SAE
from refusal_jax.sae.train import SAETrainConfig
from refusal_jax.sae.train import train_sae

__all__ = [
    'SAE', 'SAETrainConfig', 'check_sae_fits', 'evaluate_sae', 'load_sae',
    'save_sae', 'train_sae',
]
