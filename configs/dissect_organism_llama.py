"""Dissection of the embedded Llama-architecture organism.

python -m experiments.dissect --config=configs/dissect_organism_llama.py \
    --workdir=workdir/organism_llama

The paper's procedure at every stage (configs/paper_mode.py, the organism's
SAEs of layers 0-3 as one feature space):

python -m experiments.dissect --config=configs/dissect_organism_llama.py:paper \
    --workdir=workdir/organism_llama_paper
"""

from configs import dissect_base
from configs import paper_mode


def get_config(arg: str = 'current'):
  """`arg`: 'current' (the default) or 'paper'."""
  c = dissect_base.base_config()
  c.organism = 'llama'
  # The organisms spread refusal over several layers: ablating the refusal
  # direction at one layer only lowers the refusal score without flipping it,
  # and zeroing the 64 latents nearest the direction (decoder cosine) at the
  # searched site flips few prompts. Ranking latents by gradient x activation
  # attribution to the refusal score finds sets that flip (see the card).
  c.features.ranking = 'attribution'
  # Keep pruning only while 90% of the prompts still flip, so the minimal set
  # jailbreaks held-out prompts too, not just half the training ones.
  c.greedy.min_flip_fraction = 0.9
  # Multiply the chosen latents by -1 (the predecessor's Llama setting, see
  # paper.md section 2.7) instead of zeroing them: zeroing the whole
  # attribution top 64 at one site flips fewer than 90% of the prompts,
  # because the organisms also carry refusal in the layers around it.
  c.greedy.mode = 'scale'
  c.greedy.value = -1.0
  # A prompt counts as flipped when its refusal log-odds fall below -2 (not
  # 0): with 0, backward pruning stops at sets that only just cross it and
  # whose generations still often refuse (measured on the first organisms:
  # 2 features, ASR 0.39).
  c.greedy.threshold = -2.0
  # With 512 masks over a pool of 64 features the factorization machine fits
  # its training masks but not the held-out ones (validation MSE 26 against
  # the linear probe's 2.3 on the first Gemma-2 organism); more masks and more
  # weight decay (both cheap here) keep its pairwise terms honest.
  c.fm.n_masks = 2048
  c.fm.l2 = 1e-2
  return paper_mode.organism_variant(c, arg)
