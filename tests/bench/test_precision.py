"""bf16 parameters: sweeps, SAE edits and generation agree with float32.

The Llama organism has an untied head: its bf16 sweep covers the engine's
head product that XLA's CPU runtime supports in bf16 (sweeps/engine.py,
final_logits). The measurement is refusal_jax/bench/precision.py.
"""

import pytest

from refusal_jax.bench import precision
from refusal_jax.organisms import assets


@pytest.mark.slow  # bf16 sweeps of each organism, about a minute each alone
@pytest.mark.parametrize('organism', ['gemma2', 'llama'])
def test_organism_bf16_agrees_with_float32(organism):
  got = precision.bf16_agreement(assets.organism_path(organism),
                                 assets.sae_path(organism), n_prompts=16,
                                 n_masks=16)
  assert got['n_pairs'] == 256
  assert got['sign_agreement'] >= 0.98, got
  assert got['token_agreement'] >= 0.9, got
