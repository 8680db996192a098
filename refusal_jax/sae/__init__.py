"""Sparse autoencoders: the `SAE` pytree, published-format loaders, training."""

from refusal_jax.sae.loaders import check_sae_fits
from refusal_jax.sae.loaders import load_sae
from refusal_jax.sae.loaders import save_sae
from refusal_jax.sae.model import SAE
from refusal_jax.sae.train import SAETrainConfig
from refusal_jax.sae.train import train_sae

__all__ = [
    'SAE', 'SAETrainConfig', 'check_sae_fits', 'load_sae', 'save_sae',
    'train_sae',
]
