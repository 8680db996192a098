"""The contract between the decoder and interventions (re-exported).

The forward pass owns the contract, so it is defined in
refusal_jax/models/intervention.py, below the models; see there. This module
keeps the old import path working.
"""

from refusal_jax.models.intervention import Intervention
from refusal_jax.models.intervention import Interventions
from refusal_jax.models.intervention import SiteContext
from refusal_jax.models.intervention import apply_all
from refusal_jax.models.intervention import as_tuple

__all__ = [
    'Intervention', 'Interventions', 'SiteContext', 'apply_all', 'as_tuple',
]
