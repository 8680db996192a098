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
  # "The organisms: unseen sentence shapes and seeds").
  # (Chosen with the earlier recipe, before the answer phase; not searched
  # again since: BUILD.md, "Organisms that can answer".)
  config.seed = 3
  config.train.seed = 3
  # Fewer than half harmful examples, meant to lean unfamiliar sentence shapes
  # towards answering (not shown to help reliably: BUILD.md).
  config.data.train_harmful_fraction = 0.4
  # Half the helpful answers open with 'Sure!', so greedy decoding refuses
  # only when P('I') > 1/3 rather than 0.2 (organism_base.py).
  config.data.sure_share = 0.5
  # RoPE base of Llama-3 (no llama3 frequency scaling at this context).
  config.model.rope_theta = 500000.0
  # Separate output head (lm_head), as in Llama-3.1-8B.
  config.model.tie_embeddings = False
  return config
