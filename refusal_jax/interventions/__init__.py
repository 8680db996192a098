"""Interventions: pytrees the forward pass applies at named residual sites.

See refusal_jax/models/intervention.py for the contract (re-exported by
base.py). Every class here can be stacked along a leading axis and vmapped
over (a sweep).
"""

from refusal_jax.interventions.attribution import latent_attribution
from refusal_jax.interventions.directions import ActAdd
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.interventions.directions import orthogonalize_params
from refusal_jax.interventions.sae_edit import SAEEdit

__all__ = [
    'ActAdd', 'DirectionalAblation', 'SAEEdit', 'latent_attribution',
    'orthogonalize_params',
]
