"""Ablation-throughput benchmark on the safety-tuned SmolLM2-135M-Instruct.

Run (the checkpoint assembled by `make demo MODEL=smollm2`, or by
`python -m experiments.assemble_tuned --out=DIR`):

  .venv/bin/python -m experiments.benchmark_ablation \
      --config=configs/benchmark_smollm2.py \
      --config.model.checkpoint=workdir/smollm2_safety --workdir=/tmp/bench

The shipped SAE at resid_post 19 (the one the dissection searches), edited
on AdvBench test prompts in the ChatML template; fields documented in
configs/benchmark_gemma2_2b_shape.py.
"""

from configs import benchmark_gemma2_2b_shape
from refusal_jax.tuning import assemble


def get_config():
  """Returns the benchmark config."""
  config = benchmark_gemma2_2b_shape.get_config()
  config.model.name = 'smollm2_135m_safety'
  config.model.checkpoint = ''  # required: the assembled checkpoint
  config.sae.path = assemble.shipped_sae(19)
  config.prompts.source = 'advbench'
  config.prompts.n_prompts = 32
  # 64 masks over the 64 most active latents: 30-layer forward passes are
  # ~500x an organism's, so the organisms' 256 masks would take minutes per
  # repeat on 2 cores.
  config.sweep.n_masks = 64
  config.sweep.n_candidates = 64
  config.sweep.chunk_masks = 16
  config.sweep.chunk_prompts = 32
  config.sweep.repeats = 2
  # P('I'), the first token of the tuned model's refusals (as the organisms'
  # benchmark: the log-odds lose digits to 1 - P rounding where it refuses
  # confidently).
  config.metric.name = 'refusal_prob'
  config.metric.refusal_ids = ()
  config.torch.n_masks = 8
  config.torch.batch_prompts = 32
  config.plot.n_masks = (1, 4, 16)
  config.plot.layers = ()
  return config
