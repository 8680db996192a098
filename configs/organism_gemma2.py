"""Training config of the Gemma-2-architecture refusal model organism.

Run:
  python -m experiments.train_organism --config=configs/organism_gemma2.py \
      --workdir=workdir/organism_gemma2
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the organism config; every field is documented inline."""
  config = ml_collections.ConfigDict()
  # Seed of the parameter initialisation.
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Seed of `organisms.data.make_dataset`: the topic/template hold-out and the
  # sampling of examples.
  config.data.seed = 0
  # Examples per split (half harmful). Only 'train' is trained on; the
  # tokenizer sees the text of all three.
  config.data.n_per_split = {'train': 8000, 'val': 400, 'test': 400}
  # Share of harmful examples in the train split (val and test are half and
  # half). The shipped Gemma-2 organism was trained with half; the Llama one
  # with 0.4 (measured on both: 0.4 did not raise the harmless answer rate
  # reliably, see the cards).
  config.data.train_harmful_fraction = 0.5

  config.model = ml_collections.ConfigDict()
  # 'gemma2' (Gemma2ForCausalLM, Gemma chat template) or 'llama'.
  config.model.family = 'gemma2'
  # Vocabulary V of the byte-level BPE tokenizer trained on the data: with
  # 3072, 1560 of the 1601 distinct words of all splits are single tokens
  # (with 2048 only 864 are), so a held-out word is one unfamiliar token, not
  # pieces of familiar words.
  config.model.vocab_size = 3072
  # Residual width D.
  config.model.d_model = 128
  # Decoder blocks L; even layers use sliding-window attention.
  config.model.num_layers = 6
  # Query heads N and key/value heads K (GQA).
  config.model.num_heads = 4
  config.model.num_kv_heads = 2
  # Head dimension H (N * H = D here).
  config.model.head_dim = 32
  # GeGLU hidden width F.
  config.model.mlp_dim = 512
  # Window W of the sliding layers; shorter than most prompts so the local
  # attention path is really exercised.
  config.model.sliding_window = 32
  # Gemma-2 soft caps of the attention and output logits.
  config.model.attn_softcap = 50.0
  config.model.final_softcap = 30.0
  # Context length written to config.json.
  config.model.max_position_embeddings = 256
  # Unused by gemma2 (fixed base 10000, tied head); kept so both configs share
  # one schema.
  config.model.rope_theta = 10000.0
  config.model.tie_embeddings = True

  config.train = ml_collections.ConfigDict()
  # Optimizer steps in all.
  config.train.steps = 1400
  # Steps of the first phase, in which the first response token of harmful
  # examples (the refusal token 'I') carries no loss: the model learns all
  # replies, refusals included, as continuations but answers every request
  # by default. The remaining steps also train that decision, at a lower
  # learning rate, so refusal is added to a helpful model as safety tuning
  # is added to a pretrained one, and becomes a direction that directional
  # ablation removes. (Trained on everything from the start, harmless and
  # harmful prompts sit symmetrically around the origin along the difference
  # in means, and ablating it does not restore compliance.)
  config.train.pretrain_steps = 1000
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
