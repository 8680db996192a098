"""Recipes that train the shipped SAEs of particular models.

* `organism.train_organism_sae`: an SAE on a refusal organism's residual
  stream, on its own training examples (configs/sae_organism.py,
  experiments/train_sae.py);
* `chat_saes.train_chat_saes`: residual SAEs of any chat checkpoint on its
  own answers, refusals and ablated compliance included
  (configs/sae_smollm2.py, experiments/train_chat_saes.py).

They build their corpora from the organisms' data and behaviour and write
workdir records with the pipeline's artifacts, so they sit above the
library, among the recipes (tests/test_layers.py); the SAE itself, its
training, capture and storage stay in refusal_jax/sae/. Nothing is imported
here.
"""
