"""How well an SAE reconstructs a set of activations.

Axis letters: see refusal_jax/axes.py (N rows of activations, D d_model,
A SAE latents).
"""

import jax.numpy as jnp
import numpy as np


def evaluate_sae(sae, acts: np.ndarray, batch_size: int = 8192
                 ) -> dict[str, float]:
  """L0, FVE and never-firing latents of `sae` on activations [N, D].

  FVE = 1 - sum ||x - x_hat||^2 / sum ||x - mean x||^2 over all rows.
  """
  sse, l0, fired = 0.0, 0.0, np.zeros(sae.d_sae, bool)
  for start in range(0, acts.shape[0], batch_size):
    x = jnp.asarray(acts[start:start + batch_size])
    f = sae.encode(x)
    x_hat = sae.decode(f)
    sse += float(jnp.sum(jnp.square(x - x_hat)))
    l0 += float(jnp.sum(f > 0))
    fired |= np.asarray(jnp.any(f > 0, axis=0))
  sst = float(np.sum(np.square(acts - acts.mean(axis=0))))
  return {'l0': l0 / acts.shape[0], 'fve': 1.0 - sse / sst,
          'dead_latents': int((~fired).sum()), 'n_tokens': int(acts.shape[0])}
