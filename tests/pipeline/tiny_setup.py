"""A tiny but complete pipeline setup built in a temp dir (test helper).

A random-weight Llama-architecture chat model with a trained BPE chat
tokenizer, exported as a transformers checkpoint, plus two random JumpReLU SAEs
in the SAELens format (the searched one and a downstream one for hydra).
"""

import os

import jax
import jax.numpy as jnp

from configs import dissect_base
from refusal_jax.checkpoints import export
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.organisms import data as organism_data
from refusal_jax.organisms import tokenizer as organism_tokenizer
from refusal_jax.sae import save_sae
from refusal_jax.sae.model import SAE

D, A = 32, 96


def sae_at(layer, seed):
  """A random JumpReLU SAE of the tiny model at resid_post `layer`."""
  k = jax.random.split(jax.random.key(seed), 4)
  return SAE(W_enc=jax.random.normal(k[0], (D, A)) * 0.3,
             b_enc=jax.random.normal(k[1], (A,)) * 0.1,
             W_dec=jax.random.normal(k[2], (A, D)) * 0.3,
             b_dec=jnp.zeros((D,)), threshold=jnp.full((A,), 0.2),
             architecture='jumprelu', k=None, apply_b_dec_to_input=False,
             rescale_acts_by_decoder_norm=False, site='resid_post',
             layer=layer, hook_name=f'blocks.{layer}.hook_resid_post',
             model_name='tiny', neuronpedia_id='tiny-res', dtype='float32')


def build(root: str, num_layers: int = 3):
  """Writes the model and SAEs under root; returns a pipeline config."""
  _write_assets(root, num_layers)
  return config_for(root)


def use_layer_saes(config, root: str, layers, k_per_layer: int):
  """Points config at the per-layer SAEs of `build` (root/sae{layer})."""
  config.saes = (os.path.join(root, 'sae{layer}'),)
  config.sae_layers = tuple(layers)
  config.features.k_per_layer = k_per_layer
  return config


def _write_assets(root: str, num_layers: int = 3):
  splits = organism_data.make_dataset(
      seed=0, n_per_split=dict(train=200, val=40, test=40))
  texts = organism_data.corpus_text(
      splits['train'] + splits['val'] + splits['test'])
  tok = organism_tokenizer.train_tokenizer(texts, style='llama3',
                                           vocab_size=400)
  cfg = ModelConfig.llama(
      vocab_size=len(tok), d_model=D, num_layers=num_layers, num_heads=2,
      num_kv_heads=1, head_dim=16, mlp_dim=48, max_position_embeddings=256,
      bos_token_id=tok.bos_token_id,
      eos_token_ids=tuple(organism_tokenizer.stop_token_ids(tok)),
      pad_token_id=tok.pad_token_id)
  export.save_hf_checkpoint(
      transformer.init_params(cfg, seed=0), cfg, os.path.join(root, 'model'),
      tokenizer=tok)
  save_sae(sae_at(0, 1), os.path.join(root, 'sae0'))
  save_sae(sae_at(1, 2), os.path.join(root, 'sae1'))


def config_for(root: str):
  """The tiny pipeline config for assets written under root."""
  c = dissect_base.base_config()
  c.model_path = os.path.join(root, 'model')
  c.sae_path = os.path.join(root, 'sae0')
  c.hydra_sae_paths = (os.path.join(root, 'sae1'),)
  c.data.filter = False
  c.data.n_train, c.data.n_val, c.data.n_test = 12, 6, 6
  c.paper.classifier_prompts.n_per_class = 12
  c.paper.classifier.batch_size = 32  # 20 epochs of 24 rows: few steps
  c.features.top_k = 8
  c.greedy.n_prompts = 6
  c.fm.n_masks, c.fm.pool_size, c.fm.n_prompts, c.fm.steps = 40, 12, 4, 200
  c.hydra.n_prompts, c.hydra.max_candidates = 4, 8
  c.hydra.min_effect = -1e9  # count every awakened latent in the tiny model
  c.eval.max_new_tokens, c.eval.ce_max_new_tokens = 8, 8
  c.eval.n_ce_prompts = 6
  c.judge.nll_quantile = 0.99  # exercise the judge's NLL rule
  c.chunks.masks, c.chunks.prompts = 8, 8
  return c
