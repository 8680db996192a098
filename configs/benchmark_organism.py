"""Ablation-throughput benchmark on an embedded organism ('llama' or 'gemma2').

Run:
  .venv/bin/python -m experiments.benchmark_ablation \
      --config=configs/benchmark_organism.py:llama --workdir=/tmp/bench_llama

Benchmarks the shipped checkpoint refusal_jax/assets/organism_<name>/ (a
transformers directory with its tokenizer) and its SAE
refusal_jax/assets/sae_organism_<name>/ (a SAELens folder; its site and layer
come from its cfg.json), on the organisms' harmful test prompts. When an asset
is missing the benchmark stops with a one-line error naming its path.
"""

import os

from configs import benchmark_gemma2_2b_shape
from refusal_jax import asset_paths


def asset(name: str) -> str:
  """Path of refusal_jax/assets/<name> in the installed package (unchecked
  here: the benchmark names a missing one)."""
  return os.path.join(asset_paths.assets_dir(), name)


def get_config(organism: str = 'llama'):
  """Returns the benchmark config (fields documented in the shape config)."""
  config = benchmark_gemma2_2b_shape.get_config()
  config.model.name = f'organism_{organism}'
  config.model.checkpoint = asset(f'organism_{organism}')
  config.sae.path = asset(f'sae_organism_{organism}')
  config.prompts.source = 'harmful'
  config.prompts.n_prompts = 32
  config.sweep.n_masks = 256
  config.sweep.n_candidates = 64
  config.sweep.chunk_masks = 64
  config.sweep.chunk_prompts = 32
  config.sweep.repeats = 3
  # P(refusal token 'I'), the token read from the organism's tokenizer. The
  # organisms refuse confidently (1 - P down to ~1e-4), where the log-odds
  # refusal_score loses 3-4 digits to f32 rounding of 1 - P in any
  # implementation, so the PyTorch/JAX agreement check uses the probability.
  config.metric.name = 'refusal_prob'
  config.metric.refusal_ids = ()
  config.torch.n_masks = 32
  config.torch.batch_prompts = 32
  config.plot.n_masks = (1, 4, 16, 64, 256)
  config.plot.layers = (0, 1, 2, 3, 4, 5)
  return config
