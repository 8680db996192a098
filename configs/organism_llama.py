"""Training config of the Llama-3-architecture refusal model organism.

Run:
  python -m experiments.train_organism --config=configs/organism_llama.py \
      --workdir=workdir/organism_llama
"""

from configs import organism_base


def get_config():
  """Returns the organism config (shared fields in organism_base.py)."""
  config = organism_base.base_config('llama')
  # Seeds 1-5 were trained with sure_share 0.5; of those refusing >= 0.95 of
  # harmful val prompts and complying with >= 0.9 under direction ablation
  # on val, seed 3 answered the most harmless val prompts (0.945; BUILD.md,
  # "The organisms: unseen sentence shapes and seeds"). Kept since.
  config.seed = 3
  config.train.seed = 3
  # Half the helpful answers open with 'Sure!', so greedy decoding refuses
  # only when P('I') > 1/3 rather than 0.2 (organism_base.py).
  config.data.sure_share = 0.5
  # The fields below make held-out harmful requests answered on topic under
  # direction ablation (0.870 of test prompts, 0.860 of val, against 0.590
  # with the base schedule and noise; BUILD.md, "The Llama organism: what
  # limits its on-topic share"). The untied head learns to restate unseen
  # words only from a longer answer phase (2000 steps, then 600 of
  # refusals) with noise drawn from every token...
  config.train.steps = 2600
  config.train.answer_steps = 2000
  config.train.noise_tokens = 'all'
  # ...which puts how an answer opens on the refusal direction too, unless
  # the harmless answers are also trained under its ablation (without this
  # term, ablating the direction broke nearly every reply).
  config.train.ablation_harmless_weight = 1.0
  # Without this term, adding the direction to harmless prompts did not make
  # them refuse (induce score -3.8 at the selected candidate), so the
  # pipeline's stage 1, which keeps Arditi et al.'s refusal directions only,
  # chose another candidate whose ablation answered 0.09 of the demo's
  # prompts; with it, the pipeline and `select_direction` choose the same
  # candidate (layer 1, last position; induce 2.2, KL 0.08; BUILD.md).
  config.train.induce_weight = 1.0
  # RoPE base of Llama-3 (no llama3 frequency scaling at this context).
  config.model.rope_theta = 500000.0
  # Separate output head (lm_head), as in Llama-3.1-8B.
  config.model.tie_embeddings = False
  return config
