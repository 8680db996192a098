"""Ablation-throughput benchmark on a random model with Gemma-2-2B's shapes.

Run:
  .venv/bin/python -m experiments.benchmark_ablation \
      --config=configs/benchmark_gemma2_2b_shape.py --workdir=/tmp/bench

The model has Gemma-2-2B's layer shapes and vocabulary (d_model 2304, 8 query
/ 4 key-value heads of dimension 256, MLP 9216, vocabulary 256000) cut to 8
layers, with random weights; it is built in memory and exported to a temporary
transformers checkpoint that both JAX and PyTorch load. The SAE is a random
JumpReLU SAE of width 16384 at resid_post of layer 5, with its threshold set so
that about `sae.target_l0` latents fire per token. Defaults are sized for a
2-core CPU; on an accelerator pass `--config.dtype=bfloat16` and larger
`prompts.n_prompts`, `sweep.n_masks` and chunks.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the benchmark config; every field is documented inline."""
  config = ml_collections.ConfigDict()
  # Seed of the random weights, prompts, SAE and masks.
  config.seed = 0
  # Parameter and activation dtype of both JAX and PyTorch: 'float32' or
  # 'bfloat16'.
  config.dtype = 'float32'
  # Fail when |torch - JAX| of any metric value reaches this (float32 only).
  config.tolerance = 1e-3
  # Matmul precision of the JAX engine (models/matmul_precision.py): 'auto' =
  # 'highest' for float32, the backend's default for bfloat16; or 'default',
  # 'high', 'highest'. The PyTorch baseline matches it (float32 'highest':
  # TF32 off in cuBLAS and cuDNN).
  config.matmul_precision = 'auto'

  config.model = ml_collections.ConfigDict()
  # Name written to benchmark.json.
  config.model.name = 'gemma2-2b-shape-8-layers'
  # A transformers checkpoint directory to benchmark; '' builds a random model
  # of the shape below and exports it to a temporary checkpoint.
  config.model.checkpoint = ''
  # Shape of the random model (ignored with a checkpoint): 'gemma2' or 'llama'.
  config.model.family = 'gemma2'
  config.model.vocab_size = 256000
  config.model.d_model = 2304
  config.model.num_layers = 8
  config.model.num_heads = 8
  config.model.num_kv_heads = 4
  config.model.head_dim = 256
  config.model.mlp_dim = 9216
  # Gemma-2 only: sliding window of the even layers (larger than the prompts
  # here, as in Gemma-2-2B at these lengths).
  config.model.sliding_window = 4096

  config.sae = ml_collections.ConfigDict()
  # A SAE folder (SAELens, Gemma Scope or Llama Scope format); '' builds a
  # random JumpReLU SAE with the fields below.
  config.sae.path = ''
  # Random SAE: width A, site and layer, and the mean number of latents that
  # fire per token (the threshold is set on the benchmark prompts to give it).
  config.sae.d_sae = 16384
  config.sae.site = 'resid_post'
  config.sae.layer = 5
  config.sae.target_l0 = 75.0
  # One SAE per listed layer at `sae.site` (random ones as above, or
  # `sae.path` with '{layer}' in it), their candidates one feature space
  # (engine.feature_sweep; the PyTorch baseline hooks every SAE); () = the
  # one SAE at `sae.layer` (or `sae.path`). Needs profile=False and
  # plot.layers=().
  config.sae.layers = ()

  config.prompts = ml_collections.ConfigDict()
  # 'random' (uniform token ids, no padding), 'harmful' (the organisms'
  # harmful test instructions) or a built-in prompt set's test split
  # ('advbench', 'harmbench', ...; refusal_jax/data/datasets.py), in the
  # checkpoint's chat template (needs its tokenizer).
  config.prompts.source = 'random'
  # Prompts P, and tokens T per prompt ('random' only).
  config.prompts.n_prompts = 8
  config.prompts.n_tokens = 64

  config.sweep = ml_collections.ConfigDict()
  # Masks M; candidate latents C per SAE (the most frequently firing latents
  # on the prompts); each mask edits each candidate with this probability.
  config.sweep.n_masks = 64
  config.sweep.n_candidates = 128
  config.sweep.mask_density = 0.5
  # SAE edit: 'zero', 'clamp' or 'scale', with its value.
  config.sweep.mode = 'zero'
  config.sweep.value = 0.0
  # Engine chunks: masks x prompts per compiled call (Mc * Pc * T rows per
  # matmul of the layers after the site).
  config.sweep.chunk_masks = 16
  config.sweep.chunk_prompts = 8
  # Run the last layer at the last position only (engine.sae_sweep).
  config.sweep.trim_last_layer = True
  # Timed runs of the whole sweep; the fastest is reported.
  config.sweep.repeats = 2

  config.metric = ml_collections.ConfigDict()
  # 'refusal_score', 'refusal_prob' or 'logit_diff', with its token ids; empty
  # refusal_ids take the tokenizer's 'I' token (organism checkpoints).
  config.metric.name = 'refusal_score'
  config.metric.refusal_ids = (235285,)
  config.metric.comply_ids = ()

  config.torch = ml_collections.ConfigDict()
  # The PyTorch baseline evaluates the first n_masks masks (0: all) on all
  # prompts, batch_prompts prompts per forward pass; each mask is a full
  # forward pass, so its throughput does not depend on the number of masks.
  config.torch.n_masks = 8
  config.torch.batch_prompts = 8
  # 'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.
  config.torch.device = 'auto'
  # CPU threads of the PyTorch model (0 = one per core). On a CPU shared with
  # other jobs, one per core oversubscribes it and PyTorch slows down far more
  # than the engine; 1 keeps the comparison closer to a quiet machine's.
  config.torch.threads = 0

  config.peak = ml_collections.ConfigDict()
  # Square matmul side and timed runs of the peak measurement.
  config.peak.size = 2048
  config.peak.repeats = 10

  # Time each stage of one engine chunk separately (benchmark.json 'profile').
  config.profile = True

  config.plot = ml_collections.ConfigDict()
  # Engine throughput against the number of masks (at the configured layer)
  # and against the edited layer (at chunk_masks masks, the SAE's weights
  # moved to each layer's resid_post); () skips a panel.
  config.plot.n_masks = (1, 4, 16, 64)
  config.plot.layers = (1, 3, 5, 6)
  return config
