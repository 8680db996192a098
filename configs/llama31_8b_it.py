"""The paper's setting for Llama-3.1-8B-Instruct with a Llama Scope SAE.

Paths are given by flags, e.g.:

  python -m experiments.dissect --config=configs/llama31_8b_it.py \
    --config.model_path=/ckpt/Llama-3.1-8B-Instruct \
    --config.sae_path=/saes/Llama3_1-8B-Base-LXR-8x/Llama3_1-8B-Base-L13R-8x \
    --config.data.harmful_train=advbench.csv ... --workdir=runs/llama \
    --mesh_data=-1 --mesh_tensor=1

Sources (../shared/reference/paper.md): "LLaMA layer 13" (secondary notes;
the predecessor uses resid_post of layer 11); Llama Scope LXR 8x (32k
latents, SAELens release llama_scope_lxr_8x); 'I' (id 40) as refusal token;
P('I') as the greedy metric; bf16; 256-token judged generations. The chat
template of Llama-3.1 adds a dated system block, whose ~26 leading tokens the
hydra stage counts as template tokens.
"""

from configs import dissect_base


def get_config():
  c = dissect_base.base_config()
  c.dtype = 'bfloat16'
  c.data.source = 'files'
  c.metric.name = 'refusal_prob'
  c.metric.refusal_tokens = ('I',)
  c.features.top_k = 200
  c.greedy.n_prompts = 64
  c.fm.pool_size = 256
  c.fm.n_masks = 4096
  c.fm.n_prompts = 32
  c.eval.max_new_tokens = 256
  c.eval.ce_max_new_tokens = 256
  c.eval.n_ce_prompts = 100
  c.eval.batch_size = 16
  c.chunks.masks = 16
  c.chunks.prompts = 16
  return c
