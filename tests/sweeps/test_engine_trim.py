"""The SAE sweep's trimmed last layer equals the plain forward pass.

`sae_sweep(..., trim_last_layer=True)` runs the last decoder layer at the last
position only, and encodes only the candidate latents (JumpReLU, ReLU); these
cases cover both families (post-norms and a tied head vs neither), a
sliding-window last layer shorter than the prompt, left padding, the three SAE
architectures, and resume layers from the second to past the last.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from refusal_jax.interventions.sae_edit import SAEEdit
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sae.model import SAE
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import Metric

# Gemma-2 with 3 layers: layer 2 (the last) is a sliding layer, window 4 < T.
GEMMA = ModelConfig.gemma2(vocab_size=41, d_model=16, num_layers=3,
                           num_heads=4, num_kv_heads=2, head_dim=6, mlp_dim=19,
                           sliding_window=4)
LLAMA = ModelConfig.llama(vocab_size=37, d_model=20, num_layers=3, num_heads=4,
                          num_kv_heads=1, head_dim=6, mlp_dim=23,
                          rope_theta=10000.0)
A = 30
RNG = np.random.RandomState(1)
IDS = RNG.randint(3, 37, (4, 10)).astype(np.int32)
MASK = np.ones_like(IDS)
MASK[0, :4] = 0
MASK[2, :7] = 0
METRIC = Metric('logit_diff', (5, 9), (12,))


# float32 comparisons pinned at 'highest' (tests/conftest.py).
pytestmark = pytest.mark.usefixtures('highest_matmul_precision')


def _sae(d, layer, site, arch='jumprelu'):
  k = jax.random.split(jax.random.key(7 + layer), 4)
  return SAE(W_enc=jax.random.normal(k[0], (d, A)) * 0.5,
             b_enc=jax.random.normal(k[1], (A,)) * 0.1,
             W_dec=jax.random.normal(k[2], (A, d)) * 0.5,
             b_dec=jax.random.normal(k[3], (d,)) * 0.1,
             threshold=jnp.full((A,), 0.2) if arch == 'jumprelu' else None,
             architecture=arch, k=6 if arch == 'topk' else None,
             apply_b_dec_to_input=arch == 'topk',
             rescale_acts_by_decoder_norm=arch == 'topk',
             site=site, layer=layer, hook_name=f'blocks.{layer}.hook_{site}',
             model_name='tiny', neuronpedia_id=None, dtype='float32')


@pytest.mark.parametrize('config,site,layer,arch', [
    (GEMMA, 'resid_post', 0, 'jumprelu'), (GEMMA, 'resid_pre', 2, 'relu'),
    (GEMMA, 'resid_post', 2, 'topk'), (LLAMA, 'resid_post', 0, 'topk'),
    (LLAMA, 'resid_post', 1, 'jumprelu'), (LLAMA, 'resid_pre', 2, 'relu')])
def test_trimmed_equals_plain_one_at_a_time(config, site, layer, arch):
  params = transformer.init_params(config, seed=4)
  # Larger weights so that the layers after the site matter.
  params = jax.tree.map(lambda a: a * 3.0, params)
  sae = _sae(config.d_model, layer, site, arch)
  candidates = np.array([0, 3, 8, 13, 21, 29])
  masks = (RNG.rand(5, len(candidates)) < 0.5).astype(np.float32)
  masks[0] = 1.0
  got = {trim: engine.sae_sweep(params, config, sae, IDS, MASK, candidates,
                                masks, metric=METRIC, mode='clamp', value=2.0,
                                chunks=engine.Chunks(masks=2, prompts=3),
                                trim_last_layer=trim)
         for trim in (True, False)}
  logits = jax.jit(lambda p, iv: transformer.forward(
      p, config, jnp.asarray(IDS), attention_mask=jnp.asarray(MASK),
      interventions=iv, logits_at='last').logits[:, 0])
  plain = lambda p, iv: METRIC(logits(p, iv))
  for m in range(len(masks)):
    dense = np.zeros(A, np.float32)
    dense[candidates] = masks[m]
    edited = logits(params, SAEEdit(
        sae=sae, latent_mask=jnp.asarray(dense), value=2.0, mode='clamp'))
    # the metric's rounding scales with the logits it is computed from
    scale = float(jnp.abs(edited).max())
    for trim in (True, False):
      numerics.assert_close(got[trim][m], METRIC(edited),
                            ulps=numerics.FORWARD_ULPS, scale=scale,
                            what=f'trim_last_layer={trim}, mask {m}')
  # The edit changes the metric, so the comparison is not vacuous.
  clean = np.asarray(plain(params, None))
  assert np.abs(got[True][0] - clean).max() > 1e-3
