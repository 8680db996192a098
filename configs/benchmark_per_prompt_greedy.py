"""Config of the per-prompt greedy benchmark on an embedded organism.

  .venv/bin/python -m experiments.benchmark_per_prompt_greedy \
      --config=configs/benchmark_per_prompt_greedy.py:llama --n_prompts=32

The organism's paper-mode pipeline config (its SAEs of layers 0-3 as one
feature space, P('I') as the metric) with candidates small enough for a CPU:
the top 16 features per SAE by decoder cosine with the shipped refusal
direction (64 candidates), and calls of 4 x 16 (prompt, mask) rows (the
lookahead is chunks.masks // seeds, at least 1: here 1).
"""

import importlib


def get_config(organism: str = 'llama'):
  """`organism`: 'llama' or 'gemma2'."""
  c = importlib.import_module(
      f'configs.dissect_organism_{organism}').get_config('paper')
  c.features.ranking = 'cosine'
  c.features.k_per_layer = 16
  c.chunks.masks = 4
  c.chunks.prompts = 16
  c.paper.greedy.seeds = (0, 1, 2)
  c.paper.greedy.block_size = 5
  return c
