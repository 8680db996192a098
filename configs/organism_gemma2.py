"""Training config of the Gemma-2-architecture refusal model organism.

Run:
  python -m experiments.train_organism --config=configs/organism_gemma2.py \
      --workdir=workdir/organism_gemma2
"""

from configs import organism_base


def get_config():
  """Returns the organism config (shared fields in organism_base.py)."""
  config = organism_base.base_config('gemma2')
  # Seed 1 was chosen on the val split among seeds 1-4 trained without
  # sure_share; with it, seed 1 answers every harmless val prompt while
  # refusing >= 0.95 of harmful ones and complying with >= 0.9 under
  # direction ablation, so no other seed can beat it on val (BUILD.md, "The
  # organisms: unseen sentence shapes and seeds").
  # (Chosen with the earlier recipe, before the answer phase; not searched
  # again since: BUILD.md, "Organisms that can answer".)
  config.seed = 1
  config.train.seed = 1
  # A longer answer phase: 1400 of 2000 steps (base: 1000 of 1400). Trained
  # 1000 + 400 steps, the Gemma-2 organism answered 0.750 of held-out harmful
  # prompts on topic under direction ablation; 1400 + 600 steps, 0.955
  # (BUILD.md, "Organisms that can answer").
  config.train.steps = 2000
  config.train.answer_steps = 1400
  # Half harmful examples (the Llama organism trains on 0.4; BUILD.md).
  config.data.train_harmful_fraction = 0.5
  # Half the helpful answers open with 'Sure!', so greedy decoding refuses
  # only when P('I') > 1/3 rather than 0.2 (organism_base.py).
  config.data.sure_share = 0.5
  # Window W of the sliding (even) layers; shorter than most prompts so the
  # local attention path is really exercised.
  config.model.sliding_window = 32
  # Gemma-2 soft caps of the attention and output logits.
  config.model.attn_softcap = 50.0
  config.model.final_softcap = 30.0
  # Gemma-2 uses a fixed RoPE base and a tied head.
  config.model.rope_theta = 10000.0
  config.model.tie_embeddings = True
  return config
