"""Activations of an organism's chat sequences, and an SAE measured on them."""

import numpy as np

import numerics
import refusal_jax
from refusal_jax import sae as sae_lib
from refusal_jax.organisms import assets
from refusal_jax.organisms import data as data_lib
from refusal_jax.organisms import train
from refusal_jax.sae_recipes import organism


def test_capture_and_evaluate_the_shipped_sae():
  model = refusal_jax.load_model(assets.organism_path('llama'))
  sae = sae_lib.load_sae(assets.sae_path('llama'))
  examples = data_lib.make_dataset(0)['test'][:6]
  kw = dict(site=sae.site, layer=sae.layer, exclude_bos=True)
  acts = organism.capture_activations(model, examples, batch_size=4, **kw)
  encoded = train.encode_examples(
      model.tokenizer, examples,
      style=train.tokenizer_style(model.config.family),
      bos_id=model.config.bos_token_id)
  n_bos = sum(int(np.sum(np.asarray(e.ids) == model.config.bos_token_id))
              for e in encoded)
  assert acts.shape == (sum(len(e.ids) for e in encoded) - n_bos,
                        model.config.d_model)
  # The batch size only groups rows (padding is left out).
  numerics.assert_close(
      organism.capture_activations(model, examples, batch_size=6, **kw),
      acts, ulps=numerics.FORWARD_ULPS)
  got = sae_lib.evaluate_sae(sae, acts, batch_size=50)
  assert got['n_tokens'] == acts.shape[0]
  assert 5 < got['l0'] < 200
  assert 0.5 < got['fve'] <= 1.0
  assert 0 <= got['dead_latents'] <= sae.d_sae
