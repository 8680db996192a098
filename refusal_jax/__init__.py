"""refusal_jax: dissecting refusal in instruction-tuned LLMs with SAEs, in JAX.

Public API:
  load_model(path, dtype=...)   -> Model (.config, .tokenizer, .forward, .generate)
  ModelConfig                   the Gemma-2 / Llama-3.x decoder family config
  forward(params, config, ...)  the pure forward pass
  errors                        the project's error types
"""

from refusal_jax import errors
from refusal_jax.models.config import ModelConfig
from refusal_jax.models.model import Model, load_model
from refusal_jax.models.transformer import forward

__version__ = '0.1.0'
