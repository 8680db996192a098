"""Sparse autoencoders: the `SAE` pytree, published-format loaders, training.

`organism.train_organism_sae` trains the SAE of a refusal model organism
(configs/sae_organism.py); it is not imported here.
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
