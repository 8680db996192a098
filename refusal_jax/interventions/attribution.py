"""First-order attribution of a scalar metric to every SAE latent at once.

For a metric m of the model output and SAE latents f_a(b, t) at the SAE site,
zero-ablating latent a changes m by approximately

    effect_a = - sum_{b, t} f_a(b, t) * dm / df_a(b, t)      (gradient x activation)

(Syed et al. 2023, "attribution patching"; the predecessor's
`minimize_circuit` uses the same estimate). It is computed with one backward
pass: every latent is scaled by s_a at the site and effect_a = -dm/ds_a at
s = 1. The estimate is exact when m is linear in the edited latents.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sae.model import SAE


def latent_attribution(params, config: ModelConfig, sae: SAE,
                       input_ids: jax.Array, attention_mask: jax.Array,
                       metric: Callable[[transformer.Output], jax.Array], *,
                       positions: str = 'all', capture=None,
                       logits_at='last', skip_ids=None) -> jax.Array:
  """Estimated change of `metric` when each latent is zero-ablated.

  Args:
    params: model parameters.
    config: architecture.
    sae: the SAE whose latents are attributed.
    input_ids: [B, T] prompts.
    attention_mask: [B, T].
    metric: Output -> scalar (e.g. mean refusal score over prompts).
    positions: 'all' or 'prompt' (as in SAEEdit).
    capture: sites the metric reads from the output, if any.
    logits_at: which logits the forward computes for the metric.
    skip_ids: optional token ids whose positions are not attributed (as in
      SAEEdit).

  Returns:
    [A] float32 first-order effect of zero-ablating each latent.
  """

  def scaled_metric(s):
    edit = SAEEdit(sae=sae, latent_mask=jnp.ones_like(s), value=s,
                   mode='scale', positions=positions, skip_ids=skip_ids)
    out = transformer.forward(params, config, input_ids,
                              attention_mask=attention_mask,
                              interventions=edit, capture=capture,
                              logits_at=logits_at)
    return metric(out)

  grad = jax.grad(scaled_metric)(jnp.ones((sae.d_sae,), jnp.float32))
  return -grad
