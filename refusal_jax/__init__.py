"""refusal_jax: dissecting refusal in instruction-tuned LLMs with SAEs, in JAX.

Public API (everything a notebook needs, from this one import):
  load_model(path, dtype=...)   -> Model (.config, .tokenizer, .forward, .generate)
  ModelConfig                   the Gemma-2 / Llama-3.x decoder family config
  forward(params, config, ...)  the pure forward pass
  load_sae(path), save_sae(sae, path), check_sae_fits(sae, d_model, n_layers)
  SAE                           the sparse autoencoder pytree
  DirectionalAblation, ActAdd, SAEEdit, orthogonalize_params,
  latent_attribution            interventions (pass as `interventions=`)
  encode_chat(tokenizer, prompts, ...)  chat-formatted, left-padded prompts
  errors                        the project's error types
"""

from refusal_jax import errors
from refusal_jax.checkpoints.load import load_model
from refusal_jax.data.chat import encode_chat
from refusal_jax.interventions import ActAdd
from refusal_jax.interventions import DirectionalAblation
from refusal_jax.interventions import SAEEdit
from refusal_jax.interventions import latent_attribution
from refusal_jax.interventions import orthogonalize_params
from refusal_jax.models.config import ModelConfig
from refusal_jax.models.model import Model
from refusal_jax.models.transformer import forward
from refusal_jax.sae.loaders import check_sae_fits
from refusal_jax.sae.loaders import load_sae
from refusal_jax.sae.loaders import save_sae
from refusal_jax.sae.model import SAE

__version__ = '0.1.0'

__all__ = [
    'ActAdd', 'DirectionalAblation', 'Model', 'ModelConfig', 'SAE', 'SAEEdit',
    'check_sae_fits', 'encode_chat', 'errors', 'forward', 'latent_attribution',
    'load_model', 'load_sae', 'orthogonalize_params', 'save_sae',
]
