"""SAE config for a shipped refusal organism ('llama' or 'gemma2').

The config argument is `ORGANISM` or `ORGANISM,LAYER`. Each organism ships an
SAE on the residual stream after every layer (0-5, `make organism`): the
current mode searches layer 2 (where the refusal direction is read) and the
hydra stage reads layer 4 (ablations at one site cannot change that site's
own latents); paper mode searches layers 0-3 together.

Run:
  python -m experiments.train_sae --config=configs/sae_organism.py:llama,2 \
      --workdir=workdir/sae_organism_llama_l2
"""

import importlib
import importlib.util

import ml_collections

from configs import organism_base


SEARCHED_LAYER = 2


def get_config(arg: str = 'llama') -> ml_collections.ConfigDict:
  """Returns the SAE config for `ORGANISM[,LAYER]`; fields documented inline."""
  organism, _, layer = arg.partition(',')
  config = ml_collections.ConfigDict()
  # Shipped organism to read ('gemma2' or 'llama'), unless organism_path (a
  # checkpoint directory) is set.
  config.organism = organism
  config.organism_path = ''
  # Name written into the SAE's metadata.
  config.model_name = f'refusal_jax/organism_{organism}'
  # Site and layer the SAE reads: the residual stream after a middle block.
  config.site = 'resid_post'
  config.layer = int(layer) if layer else SEARCHED_LAYER

  # The organism's dataset, read from its training config
  # (configs/organism_<organism>.py: seed, sizes, harmful share of train,
  # 'Sure!' share of answers): the SAE trains on the train split's tokens and
  # is evaluated on the test split's. (An organism without a config gets the
  # shared defaults here and a clear error from train_sae.)
  module = f'configs.organism_{organism}'
  config.data = (importlib.import_module(module).get_config().data
                 if importlib.util.find_spec(module) else
                 organism_base.base_config(organism).data)
  # Sequences per capture forward pass.
  config.data.batch_size = 128
  # Leave the BOS token (an outlier in norm) out of the activations.
  config.data.exclude_bos = True

  # refusal_jax.sae.SAETrainConfig fields.
  config.sae = ml_collections.ConfigDict()
  # JumpReLU, as Gemma Scope and Llama Scope.
  config.sae.architecture = 'jumprelu'
  # Latents A (8 x d_model).
  config.sae.d_sae = 1024
  # L0 penalty weight, pseudo-derivative bandwidth and initial threshold, in
  # units of activations scaled to unit mean squared norm. 1e-3 gives L0
  # about 40 and >= 0.92 of the variance explained on the test split; 3e-3
  # gives L0 about 18 but only 0.88.
  config.sae.l0_coefficient = 1e-3
  config.sae.bandwidth = 0.05
  config.sae.initial_threshold = 0.05
  config.sae.l0_warmup_fraction = 0.1
  # Adam and schedule.
  config.sae.lr = 1e-3
  config.sae.lr_warmup_steps = 100
  config.sae.lr_decay_fraction = 0.2
  config.sae.grad_clip = 1.0
  # Steps and rows per step (sampled with replacement).
  config.sae.steps = 3000
  config.sae.batch_size = 1024
  config.sae.seed = 0
  # A latent that has not fired for dead_window steps counts as dead.
  config.sae.dead_window = 500
  # Rows of the fixed sample the training log is evaluated on.
  config.sae.eval_size = 4096
  # Log every log_every steps.
  config.log_every = 500
  # Storage (refusal_jax/sae/storage.py): written in store_dtype when, on the
  # test activations, that loses at most store_tolerance.fve of FVE and moves
  # mean L0 by at most store_tolerance.l0_relative of itself; else float32.
  # bfloat16 halves the shipped SAEs (12 x 1.0 MiB to 12 x 0.5 MiB), which
  # makes room for SmolLM2's under the 60 MB of refusal_jax/assets.
  config.store_dtype = 'bfloat16'
  config.store_tolerance = ml_collections.ConfigDict()
  config.store_tolerance.fve = 1e-3
  config.store_tolerance.l0_relative = 0.01
  return config
