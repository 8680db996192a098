"""Axis-letter glossary used in every einsum string and shape annotation.

Shapes in docstrings are written as `[B, T, D]`; einsum strings use the same
letters, e.g. `jnp.einsum('BTD,DNH->BTNH', x, w_q)`.

  B  batch of prompts
  T  query positions (sequence)
  S  key/value positions (the KV cache when generating)
  D  d_model (residual stream width)
  N  query heads
  K  key/value heads
  G  query heads per key/value head (N // K)
  H  head dimension
  F  MLP hidden width
  V  vocabulary
  L  layers
  A  SAE latents (d_sae)
  M  interventions / ablation masks (the sweep axis)
  P  prompts in a sweep (flattened batch)
  R  rank of the factorization machine, or of a LoRA adapter
  O  output width of an adapted matrix (transformers [out, in] layout)
  I  input width of an adapted matrix
"""
