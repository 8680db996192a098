"""A tiny Gemma-2 config, prompts and random JumpReLU SAEs shared by the sweep
tests (test_oom.py, test_paired.py)."""

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax.models.config import ModelConfig
from refusal_jax.sae.model import SAE
from refusal_jax.sweeps.metrics import Metric

CFG = ModelConfig.gemma2(vocab_size=43, d_model=16, num_layers=4, num_heads=2,
                         num_kv_heads=1, head_dim=8, mlp_dim=23,
                         sliding_window=3, eos_token_ids=(1,), pad_token_id=0)
IDS = np.random.RandomState(0).randint(1, 43, (5, 9)).astype(np.int32)
MASK = np.ones_like(IDS)
MASK[1, :3] = 0
MASK[4, :5] = 0
METRIC = Metric('refusal_score', (7, 11))
A = 40
OOM = 'RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4096 bytes.'


def sae(layer, site):
  """A random JumpReLU SAE of width A on CFG's residual stream."""
  k = jax.random.split(jax.random.key(layer), 4)
  return SAE(W_enc=jax.random.normal(k[0], (16, A)) * 0.4,
             b_enc=jax.random.normal(k[1], (A,)) * 0.1,
             W_dec=jax.random.normal(k[2], (A, 16)) * 0.4,
             b_dec=jax.random.normal(k[3], (16,)) * 0.1,
             threshold=jnp.full((A,), 0.1), architecture='jumprelu', k=None,
             apply_b_dec_to_input=True, rescale_acts_by_decoder_norm=False,
             site=site, layer=layer, hook_name=f'blocks.{layer}.hook_{site}',
             model_name='tiny', neuronpedia_id=None, dtype='float32')
