"""Ablation throughput with SAEs at four layers of an embedded organism.

Run:
  .venv/bin/python -m experiments.benchmark_ablation \
      --config=configs/benchmark_organism_layers.py:llama \
      --workdir=/tmp/bench_llama_layers

The shipped organism checkpoint (configs/benchmark_organism.py) with one
random JumpReLU SAE of the shipped SAEs' width (1024) at resid_post of each
of layers 0-3, calibrated on the prompts (only speed and agreement are
measured, so trained SAEs are not needed). Every mask draws from the
candidates of all four SAEs: the engine edits each at its own site in one
pass (`engine.feature_sweep`), the PyTorch baseline runs one forward hook per
SAE.
"""

from configs import benchmark_organism


def get_config(organism: str = 'llama'):
  """Returns the benchmark config (fields documented in the shape config)."""
  config = benchmark_organism.get_config(organism)
  config.model.name = f'organism_{organism}, 4 SAEs'
  config.sae.path = ''
  config.sae.d_sae = 1024
  config.sae.site = 'resid_post'
  config.sae.layers = (0, 1, 2, 3)
  # About what the shipped organism SAEs fire per token.
  config.sae.target_l0 = 32.0
  # 16 per SAE: the 64 candidates of the one-SAE organism rows.
  config.sweep.n_candidates = 16
  config.profile = False
  config.plot.layers = ()
  return config
