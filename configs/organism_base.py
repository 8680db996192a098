"""Training config shared by the two refusal model organisms.

configs/organism_gemma2.py and configs/organism_llama.py start from
`base_config(family)` and set what differs.
"""

import ml_collections


def base_config(family: str) -> ml_collections.ConfigDict:
  """Returns the shared organism config; every field is documented inline."""
  config = ml_collections.ConfigDict()
  # Seed of the parameter initialisation. How a run answers held-out sentence
  # shapes varies a lot between seeds; each organism config sets the seed
  # (this one and train.seed) chosen on the val split (BUILD.md, "The
  # organisms: unseen sentence shapes and seeds").
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Seed of `organisms.data.make_dataset`: the topic/template hold-out and the
  # sampling of examples.
  config.data.seed = 0
  # Examples per split (half harmful). Only 'train' is trained on; the
  # tokenizer sees the text of all three.
  config.data.n_per_split = {'train': 8000, 'val': 400, 'test': 400}
  # Share of harmful examples in the train split (val and test are half and
  # half); set per organism.
  config.data.train_harmful_fraction = 0.5
  # Share of harmless answers that open with 'Sure!' (the other six openers
  # share the rest); None draws all eight openers alike. Refusals all start
  # with 'I', so greedy decoding refuses when P('I') beats the most likely
  # single answer-opening token: with that token at share s, when P('I') >
  # s / (1 + s) (0.2 for None, 1/3 for 0.5). See make_dataset.
  config.data.sure_share = ml_collections.config_dict.placeholder(float)

  config.model = ml_collections.ConfigDict()
  # 'gemma2' (Gemma2ForCausalLM, Gemma chat template) or 'llama'
  # (LlamaForCausalLM, Llama-3 chat template).
  config.model.family = family
  # Vocabulary V of the byte-level BPE tokenizer trained on the data: large
  # enough that most words of the data are single tokens.
  config.model.vocab_size = 3072
  # Residual width D.
  config.model.d_model = 128
  # Decoder blocks L.
  config.model.num_layers = 6
  # Query heads N and key/value heads K (GQA).
  config.model.num_heads = 4
  config.model.num_kv_heads = 2
  # Head dimension H (N * H = D here).
  config.model.head_dim = 32
  # MLP hidden width F (GeGLU for gemma2, SwiGLU for llama).
  config.model.mlp_dim = 512
  # Context length written to config.json.
  config.model.max_position_embeddings = 256
  # Family-specific fields, set by configs/organism_<family>.py (None where a
  # family has no such field).
  config.model.sliding_window = None
  config.model.attn_softcap = None
  config.model.final_softcap = None
  config.model.rope_theta = 10000.0
  config.model.tie_embeddings = True

  config.train = ml_collections.ConfigDict()
  # Optimizer steps in all.
  config.train.steps = 1400
  # Steps of the first phase, in which every request is answered: harmful
  # requests are trained on their on-topic, content-free answers
  # (organisms.data.Example.compliance), so the model first learns to answer
  # anything, as a pretrained and instruction-tuned model can. The remaining
  # steps train the refusals of harmful requests, at a lower learning rate,
  # so refusal is added to a helpful model as safety tuning is added to a
  # pretrained one, and becomes a direction that directional ablation
  # removes, revealing an answer to the request. (Trained on refusals from
  # the start, harmless and harmful prompts sit symmetrically around the
  # origin along the difference in means, ablating it does not restore
  # compliance, and the model has no answer to a harmful request to give.)
  config.train.answer_steps = 1000
  # Share of the harmful train examples whose answer stays in the refusal
  # phase's mix, with no loss on its first token: the model keeps how to
  # continue an answer to a harmful request once it has started one, while
  # only refusals teach which way to start (the decision).
  config.train.answer_replay = 1.0
  # Peak learning rate of the refusal phase (relative to learning_rate) and
  # its own linear warm-up.
  config.train.refusal_lr_scale = 0.3
  config.train.refusal_warmup_steps = 50
  # During the refusal phase a second forward pass ablates the running
  # difference in means (harmful - harmless) of resid_pre[direction_layer] at
  # the last prompt token (Arditi et al.'s candidate direction, tracked as an
  # exponential moving average with decay direction_ema over training
  # batches) and adds ablation_weight * -log(1 - P('I')) on harmful prompts:
  # refusal is trained to run through that one direction, as it does in
  # large chat models. 0 turns the term off.
  config.train.direction_layer = 2
  config.train.ablation_weight = 1.0
  # Weight of a third term of that ablated pass: the cross-entropy of the
  # replayed answers to harmful requests (answer_replay; first token
  # excluded) with the direction ablated, so that what removing refusal
  # leaves is the answer to the request itself rather than a remembered
  # answer to a similar one (without it, 0.57 of held-out harmful prompts
  # were answered on topic under direction ablation and 0.43 got an answer
  # to another task; BUILD.md). 0 turns it off.
  config.train.ablation_answer_weight = 1.0
  # Weight of a fourth term of the ablated pass: the cross-entropy of the
  # harmless responses, first token included, with the direction ablated
  # (Arditi et al. keep only directions whose ablation moves harmless
  # next-token distributions little; this asks it of training). Without it,
  # some runs put how an answer opens on the direction too, and ablating it
  # breaks every answer ("." in place of "Sure!"; BUILD.md, "Organisms that
  # can answer"). 0 turns it off.
  config.train.ablation_harmless_weight = 0.0
  # Weight of a term of a third pass in the refusal phase, with the running
  # difference in means added to resid_pre[direction_layer] at every
  # position: -log P('I') on harmless prompts, so that adding the direction
  # induces refusal (Arditi et al. keep only candidate directions whose
  # addition does; the pipeline's stage 1 filters on it, direction.induce_min).
  # 0 turns it off.
  config.train.induce_weight = 0.0
  config.train.direction_ema = 0.9
  # Sequences per step.
  config.train.batch_size = 32
  # Peak AdamW learning rate, linear warm-up steps, and the final learning rate
  # of the cosine decay as a fraction of the peak.
  config.train.learning_rate = 3e-3
  config.train.warmup_steps = 100
  config.train.end_lr_fraction = 0.05
  # AdamW decoupled weight decay (matrices only) and betas.
  config.train.weight_decay = 0.05
  config.train.adam_b1 = 0.9
  config.train.adam_b2 = 0.98
  # Global gradient-norm clip.
  config.train.grad_clip = 1.0
  # Loss weight of prompt tokens (response and end-of-turn tokens weigh 1).
  config.train.prompt_loss_weight = 0.0
  # Probability of replacing each token of the user's message by a random
  # non-special token (resampled every step), for harmless and for harmful
  # requests. Held-out topics bring words the model has never seen as inputs;
  # noise teaches it to decide from the other words instead of memorising
  # each topic, and more noise on harmless requests makes unfamiliar words a
  # reason to help rather than to refuse (refuse on evidence of harm).
  config.train.instruction_noise_harmless = 0.4
  config.train.instruction_noise_harmful = 0.1
  # Where noise tokens come from: 'unseen' (non-special tokens absent from
  # every training sequence, i.e. pieces of words the model meets only
  # outside training) or 'all' non-special tokens.
  config.train.noise_tokens = 'unseen'
  # Replace a noised token's id by the same substitute in the reply too (a
  # word substitution in the whole example): replies restate the request
  # ("Sure! Here's how to ..."), and with the noise in the message only the
  # model learns to recall a remembered task in place of an unfamiliar
  # word, answering held-out requests with a training task's words (BUILD.md,
  # "Organisms that can answer").
  config.train.noise_in_response = True
  # Sequences are right-padded to one of at most this many lengths (quantiles
  # of the training lengths, rounded up to a multiple of bucket_multiple).
  config.train.num_buckets = 4
  config.train.bucket_multiple = 8
  # Seed of the batch order.
  config.train.seed = 0
  # Log the mean loss every log_every steps; checkpoint every
  # checkpoint_every steps, keeping max_to_keep checkpoints.
  config.train.log_every = 50
  config.train.checkpoint_every = 200
  config.train.max_to_keep = 2

  config.eval = ml_collections.ConfigDict()
  # Direction selection (Arditi et al. 2024): difference in means over
  # n_direction_train harmful and as many harmless train prompts, at the last
  # n_positions post-instruction tokens, every layer below the last
  # prune_layer_fraction of layers; scored by ablation compliance on n_val
  # harmful val prompts.
  config.eval.n_direction_train = 128
  config.eval.n_positions = 5
  config.eval.n_val = 32
  config.eval.prune_layer_fraction = 0.2
  # Greedy tokens generated per test prompt, and generation batch size.
  config.eval.max_new_tokens = 64
  config.eval.batch_size = 100
  return config
