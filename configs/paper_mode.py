"""The paper's procedure at every stage, as config fields.

`add_paper_fields(config)` adds `mode` and a `paper` section to a pipeline
config (configs/dissect_base.py's `base_config()`); the current procedures
keep their own fields. Defaults are the paper's values as the note extracted
from its arXiv HTML gives them (shared reference paper.md, section 2.8b,
marked [S+]); values the note does not give are marked [I] with the reason
for the choice. Library code: refusal_jax/pipeline/paper/ and
refusal_jax/fm/classifier.py; `mode = 'paper'` runs stages 2 and 3 with
them (refusal_jax/pipeline/paper/stages.py), on P('I') whatever
`metric.name` is.
"""

import ml_collections

from refusal_jax import errors


def add_paper_fields(c: ml_collections.ConfigDict
                     ) -> ml_collections.ConfigDict:
  """Adds `mode` and `paper.*` to config `c` in place; returns c."""
  # 'current': the procedures of greedy.*, fm.* and hydra.* (the default, so
  # existing runs are unchanged); 'paper': the procedures below at every
  # stage.
  c.mode = 'current'
  c.paper = p = ml_collections.ConfigDict()
  # A candidate feature is active where its activation exceeds this (dormant
  # features, O'Brien token counts, knock-on): 0, any firing counts.
  p.active_eps = 0.0

  p.greedy = ml_collections.ConfigDict()
  # Stage 2, block-wise greedy pruning: from all candidates ablated, blocks
  # of block_size candidates in a seeded order are taken out of the ablated
  # set unless that moves P('I') by at least tau
  # (pipeline/paper/block_greedy.py; besides the fields marked as not, the
  # fields are the keyword arguments of `intersect_over_seeds`). [S+] block
  # size 5.
  p.greedy.block_size = 5
  # (Not a keyword argument.) 'per_prompt' (default): one search per
  # search prompt, on that prompt's P('I') alone, all prompts batched
  # (pipeline/paper/per_prompt.py); the stage's set is the union of the
  # prompts' sets. [S+] the note counts dormant features "on the source
  # prompt" and reports sets as unique-feature counts. 'pooled': one search
  # on P('I') averaged over the prompts (the earlier reading).
  p.greedy.search = 'per_prompt'
  # (Not a keyword argument.) How tau is read with search = 'per_prompt':
  # 'absolute' (default): a change of P('I') of at least tau, as the note
  # words it ("moves P('I') by at least a threshold tau", tau 0.1-0.8 read
  # as probabilities); 'relative': at least tau times the prompt's clean
  # P('I') (nothing ablated), so that a prompt refused with P('I') = 0.3 can
  # keep blocks at tau = 0.5 at all. The pooled search is absolute.
  p.greedy.tau_rule = 'absolute'
  # (Not keyword arguments.) Per-prompt search: each prompt's jailbreak is
  # judged by the graded judge on a generation under its own set, at
  # judge_new_tokens new tokens [I] (>= 128: refusals can come after an
  # opening that complies); the ASR at every length of judge_tokens is also
  # reported (one generation at the longest, its prefixes judged).
  p.greedy.judge_new_tokens = 128
  p.greedy.judge_tokens = (64, 128, 256)
  # [S+] swept 0.1-0.8; the single-run default is the lowest value of the
  # sweep [I], which keeps the most features.
  p.greedy.tau = 0.1
  # Run the search at every tau of `taus` (a tau sweep) instead of at `tau`.
  # Per-prompt search: the sets stay those at `tau` and `tau_rule`; the
  # sweep reports the set sizes at every tau under both rules
  # (stage2.tau_sweep).
  p.greedy.sweep_tau = False
  p.greedy.taus = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
  # [S+] 3 seeds of the candidate order, kept sets intersected.
  p.greedy.seeds = (0, 1, 2)
  # The note's "moves P('I') by at least tau" read as |change| >= tau;
  # False: only a rise of P('I') when the block is restored keeps it.
  p.greedy.absolute = True
  # Blocks scored per call of the sweep engine (a speculative batch: the
  # result is the one-at-a-time pass's; see block_greedy.py). Per-prompt
  # search: at most this many per search and step, and at most
  # chunks.masks divided by the searches of a prompt (seeds x thresholds),
  # at least 1 (per_prompt.py); as searches finish, the live ones propose
  # more, so that every step fills the first step's number of rows.
  p.greedy.max_masks = 16
  # Masks per compiled call of the per-prompt search (0: chunks.masks): a
  # call scores chunk_masks x chunks.prompts (prompt, mask) rows whatever
  # the step needs. Large calls suit an accelerator (a step's latency is
  # what costs, speculation is free); on a CPU every row costs, and
  # speculative rows past a search's first wrong guess are wasted
  # (BUILD.md, "Dissecting SmolLM2 in paper mode").
  p.greedy.chunk_masks = 0

  p.classifier = ml_collections.ConfigDict()
  # Stage 3, an FM classifying harmful vs benign prompts by the pool's SAE
  # activations (fm/classifier.py; the fields are the keyword arguments of
  # pipeline/paper/rankings.py's `rank_pool`). [S+] 2-way FM, embedding 20,
  # Adam learning rate 1e-3, 20 epochs.
  p.classifier.embedding_dim = 20
  p.classifier.lr = 1e-3
  p.classifier.epochs = 20
  # [I] rows per Adam step: not given; 8, so that 20 epochs converge (at
  # 256 prompts a class the Llama organism's FM reaches test accuracy 0.97;
  # at 128 a class and batch 32 it stopped at 0.81, its loss still falling:
  # docs/paper_mode_stage2.md).
  p.classifier.batch_size = 8
  # [I] L2 on the FM's w and V: none given; 0.
  p.classifier.fm_l2 = 0.0
  # [I] L2 of the logistic-regression probe (ranked by |w|): a light 1e-4
  # so that weights of features that never fire stay at 0.
  p.classifier.probe_l2 = 1e-4
  # [I] share of each class held out for the test accuracy (the note gives
  # only "98% test accuracy").
  p.classifier.test_fraction = 0.2
  # Seed of the split, initialisation and minibatch order.
  p.classifier.seed = 0
  # Per-prompt input of a feature: 'max' (peak over the prompt's tokens) or
  # 'mean' over its real tokens [I].
  p.classifier.token_reduce = 'max'

  p.classifier_prompts = ml_collections.ConfigDict()
  # The prompts the FM and the probe are fitted on (not keyword arguments
  # of `rank_pool`): n_per_class harmful and as many benign train prompts
  # (count-matched; past data.n_train, the first of each train split in the
  # run's seeded order, unfiltered: pipeline/paper/stages.py
  # `classifier_prompts`). [S+] harmful vs benign prompts, 98% test
  # accuracy; [I] how many is not given (the paper's harmful set has 521
  # prompts): 256 a class, so the test split holds 51 of each. At 128 a
  # class (the pipeline's harmful train split) the Llama organism's FM did
  # not converge in 20 epochs (test accuracy 0.81). Controls and knock-on
  # stay on the first fm.n_prompts harmful prompts.
  p.classifier_prompts.n_per_class = 256
  # The benign prompts: '' = the run's harmless train prompts
  # (data.harmless_source); a built-in harmless set's name
  # (refusal_jax/data/datasets.py) = its train split, e.g. 'alpaca' (the
  # paper's benign prompts are Alpaca's).
  p.classifier_prompts.benign_source = ''

  p.top_k = ml_collections.ConfigDict()
  # Top-K ablation of the FM's and the probe's rankings, K on a geometric
  # grid scaled to the pool (the keyword arguments of pipeline/paper/
  # top_k.py's `k_grid`). [S+] K 100-2000 on
  # pools of ~1,600 (LLaMA) to ~5,700 (Gemma) features, i.e. from a few
  # percent of the pool up to about all of it.
  p.top_k.n_points = 8
  p.top_k.min_fraction = 0.05
  p.top_k.max_fraction = 1.0

  p.controls = ml_collections.ConfigDict()
  # Controls (pipeline/paper/controls.py; the fields are the keyword
  # arguments of `control_asr`). Random sets of the controlled set's size
  # drawn from the candidate pool: n_draws of them, seeded [I]: the note
  # gives no number of draws.
  p.controls.n_draws = 5
  p.controls.seed = 0
  # O'Brien et al.-style sets: every feature active on at least k tokens of
  # the prompts, k swept over min_tokens; the best ASR is reported ([S+]
  # "max ASR").
  p.controls.min_tokens = (1, 2, 4, 8, 16, 32)
  # Cap of the O'Brien-style set, most frequent first (0 = no cap, as the
  # note describes it).
  p.controls.obrien_size = 0
  return c


def organism_variant(c: ml_collections.ConfigDict, arg: str
                     ) -> ml_collections.ConfigDict:
  """An organism's pipeline config `c` for config argument `arg`.

  'current' returns c; 'paper' switches it to paper mode over the
  organism's shipped SAEs of layers 0-3 (in place; returns c).

  Raises:
    errors.ConfigError: another argument.
  """
  if arg == 'current':
    return c
  if arg != 'paper':
    raise errors.ConfigError(
        f"config argument {arg!r}: expected 'current' or 'paper'")
  c.mode = 'paper'
  # Every layer up to the refusal layer, as the paper (Gemma Scope 0-15 of
  # Gemma-2-2B's 26 layers): the organisms' refusal direction is read at
  # layers 1-2 of 6, and their refusal is carried by the layers around it,
  # so layers 0-3; layers 4-5 stay downstream for the hydra stage.
  c.sae_layers = (0, 1, 2, 3)
  # [S+] top K per layer by decoder cosine with the direction.
  c.features.ranking = 'cosine'
  c.features.k_per_layer = 32
  return c
