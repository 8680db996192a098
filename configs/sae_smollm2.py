"""Residual-stream SAEs of SmolLM2-135M-Instruct (or any chat checkpoint).

The config argument is '' (the full run) or 'trial' (a small corpus and
short training, to size steps, learning rate and L0 coefficient):

  python -m experiments.assemble_tuned --out=workdir/smollm2_safety
  python -m experiments.train_chat_saes --config=configs/sae_smollm2.py \
      --config.model_path=workdir/smollm2_safety --workdir=workdir/sae_smollm2

Runs `refusal_jax.sae_recipes.chat_saes.train_chat_saes`: the model answers the
train and val splits of the built-in harmful and harmless prompt sets
greedily (and the harmful ones again with its refusal direction ablated); the
SAEs train on the residual stream of those chat sequences (prompt, template
and answer tokens; special tokens left out) and are measured on a held-out
share of the sequences. `workdir/sae_summary.json` holds FVE, L0, dead
latents, the float32 against stored-dtype comparison and timings.
"""

import ml_collections

from configs import sae_organism


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the config ('' or 'trial'); fields documented inline."""
  trial = arg == 'trial'
  config = ml_collections.ConfigDict()
  # The config argument ('' or 'trial'; another value is reported by
  # refusal_jax.sae_recipes.chat_saes.check_config).
  config.preset = arg
  # Chat checkpoint directory (config.json, safetensors, tokenizer with a
  # chat template), e.g. the safety-tuned SmolLM2 or the converted GGUF.
  config.model_path = ''
  # Name written into each SAE's metadata.
  config.model_name = 'HuggingFaceTB/SmolLM2-135M-Instruct'
  # Site the SAEs read: the residual stream after a block (resid_post of
  # layer L is resid_pre of layer L + 1), the convention of Gemma Scope,
  # Llama Scope and the organisms' SAEs, so the pipeline's hook names match.
  config.site = 'resid_post'
  # The SAEs, 'LAYER:WIDTH,...' (all layers captured in one forward pass per
  # batch). 19: the searched SAE, at resid_post 19 = resid_pre 20, where
  # the safety tuning reads the tuned model's refusal direction; width
  # 4608 = 8 x d_model. 23: the hydra stage's, four blocks downstream, half
  # the width. 4-16: with 19, paper mode's six layers spread below the
  # refusal layer, a quarter of the width (BUILD.md: 1152 costs 0.011 FVE
  # at layer 22), so that all assets stay under 60 MB. All seven ship.
  config.saes = '4:1152,7:1152,10:1152,13:1152,16:1152,19:4608,23:2304'

  config.data = ml_collections.ConfigDict()
  # Built-in prompt sets (refusal_jax.data.datasets) and their split. Never
  # 'harmbench': it is the test set.
  config.data.harmful = ('advbench', 'donotanswer')
  config.data.harmless = ('everyday',)
  # The train and val splits (the val prompts only choose a refusal
  # direction in a dissection; the SAEs read activations, no labels): the
  # train splits alone give 246k training tokens, short of 300k (BUILD.md).
  config.data.splits = ('train', 'val')
  # Prompts taken from each set, in the set's order (0: all).
  config.data.max_prompts_per_set = 24 if trial else 0
  # Longest greedy answer to a harmful and to a harmless prompt. A tuned
  # model's refusals end within about 40 tokens, so harmful answers get a
  # shorter budget (the rare complying answer is cut there); harmless
  # answers carry most of the corpus's tokens.
  config.data.max_new_tokens = ml_collections.ConfigDict()
  config.data.max_new_tokens.harmful = 32 if trial else 96
  # The first recipe's SAEs were trained with 384 / 192 harmless / ablated
  # tokens; the fourth recipe's model answers at length, and a batch of 64
  # harmless prompts at 384 tokens took 7 minutes on the 2 cores, so both
  # are halved (BUILD.md, "SAEs on SmolLM2-135M-Instruct").
  config.data.max_new_tokens.harmless = 64 if trial else 192
  # Longest answer to a harmful prompt with the refusal direction ablated
  # (below): the model complies; at 96 tokens 0.42 of its answers to the
  # train prompts were still going without a loop.
  config.data.max_new_tokens.ablated = 32 if trial else 96
  # Answer every harmful prompt a second time with the model's refusal
  # direction (refusal_direction.json in model_path, as the safety tuning
  # writes it) ablated off the special tokens, and train on both: the SAEs
  # then see the model comply with harmful requests, the state every
  # ablation of the pipeline puts it in. Without them the train splits give
  # 139k tokens (short refusals, harmless answers cut where they loop).
  config.data.ablated_answers = True
  # Prompts per generation call.
  config.data.generate_batch_size = 24 if trial else 64
  # An answer is cut where its last repeat_window tokens already occurred
  # together in it (a greedy loop); 0 keeps loops.
  config.data.repeat_window = 12
  # Share of the sequences held out to measure the SAEs (chosen by a hash
  # of the set name and prompt).
  # 0.05 of about 330k tokens leaves about 15k held-out tokens.
  config.data.eval_fraction = 0.05
  # Leave the tokenizer's special tokens (BOS and the chat-template markers
  # <|im_start|>, <|im_end|>) out of training and evaluation, as the
  # pipeline's `sae_skip_special_tokens` leaves them out of SAE edits; only
  # BOS is left out when False.
  config.data.skip_special_tokens = True
  # Sequences per capture forward pass, and the rounding of a batch's padded
  # length (sequences are sorted by length first).
  config.data.capture_batch_size = 32
  config.data.capture_bucket = 64

  # refusal_jax.sae.SAETrainConfig fields: those of the organisms' SAEs
  # (configs/sae_organism.py: JumpReLU, L0 coefficient 1e-3 in units of
  # activations scaled to unit mean squared norm, Adam at 1e-3, 3000 steps of
  # 1024 rows); d_sae comes from each `saes` entry. On the base model's trial
  # corpus, 600 steps reached L0 28 and FVE 0.95 on the training sample at
  # layer 14 (BUILD.md, "SAEs on SmolLM2-135M-Instruct").
  config.sae = sae_organism.get_config().sae
  del config.sae['d_sae']
  # Half the organisms' L0 coefficient: with 1e-3, the 4608-wide SAE at
  # layer 22 on the 246k-token train-split corpus had, on its training
  # sample, L0 28.3 / 23.6 / 20.6 and FVE 0.82 / 0.86 / 0.87 at steps
  # 500 / 1000 / 1500 of 3000: L0 falling towards the target's lower bound
  # of 20 with FVE near its 0.85.
  config.sae.l0_coefficient = 5e-4
  # Per-layer overrides of sae.l0_coefficient, 'LAYER:COEF,...' ('' for
  # none; layers without an SAE in `saes` are left out). The shallow layers
  # are sparser to reconstruct: at 5e-4 layers 4, 7 and 10 settled at
  # held-out L0 14.6, 17.7 and 21.0 (10: 20.0 on the test chats of
  # tests/tuning/test_safety.py), against the target's lower bound of 20;
  # at 1e-4, 2e-4 and 3e-4 at 24.2, 25.3 and 25.5 (BUILD.md, "SAEs on
  # SmolLM2-135M-Instruct").
  config.sae_l0_coefficients = '4:1e-4,7:2e-4,10:3e-4'
  if trial:
    config.sae.steps = 600
  # Log (and checkpoint) every log_every steps.
  config.log_every = 200 if trial else 500

  # Storage: each SAE is written in store_dtype when, on the held-out
  # tokens, that loses at most store_tolerance.fve of FVE and changes L0 by
  # at most store_tolerance.l0_relative of itself; else in float32.
  config.store_dtype = 'bfloat16'
  config.store_tolerance = ml_collections.ConfigDict()
  config.store_tolerance.fve = 1e-3
  config.store_tolerance.l0_relative = 0.01

  # Targets an SAE must meet on the held-out tokens to be shipped
  # ('meets_targets' in the summary).
  config.targets = ml_collections.ConfigDict()
  config.targets.min_fve = 0.85
  config.targets.max_dead_fraction = 0.1
  config.targets.min_l0 = 20.0
  config.targets.max_l0 = 100.0
  return config
