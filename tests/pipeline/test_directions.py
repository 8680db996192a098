"""diff_in_means against a plain numpy computation from full activations."""

import numpy as np
import pytest

import numerics
from refusal_jax import errors
from refusal_jax.data import chat
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.pipeline import directions

CFG = ModelConfig.gemma2(vocab_size=61, d_model=24, num_layers=3, num_heads=2,
                         num_kv_heads=1, head_dim=12, mlp_dim=40,
                         sliding_window=4, max_position_embeddings=64)


def _prompts(seed, n):
  rng = np.random.RandomState(seed)
  seqs = [list(rng.randint(3, 61, rng.randint(4, 12))) for _ in range(n)]
  return chat.pad_left(seqs, pad_id=0)


def _numpy_means(params, ids, mask, layers, n_positions):
  out = transformer.forward(params, CFG, ids, attention_mask=mask,
                            capture=[('resid_pre', l) for l in layers])
  acts = np.stack([np.asarray(out.captured[('resid_pre', l)], np.float64)
                   for l in layers], axis=2)  # [B, T, L, D]
  return acts[:, -n_positions:].mean(axis=0)  # [P, L, D]


def test_diff_in_means_matches_numpy():
  params = transformer.init_params(CFG, seed=1)
  harmful, harmless = _prompts(0, 7), _prompts(1, 5)
  layers, n_pos = (0, 2), 3
  got = directions.diff_in_means(params, CFG, harmful, harmless,
                                 layers=layers, n_positions=n_pos,
                                 batch_size=3)
  want = (_numpy_means(params, *harmful, layers, n_pos) -
          _numpy_means(params, *harmless, layers, n_pos))
  assert got.shape == (n_pos, len(layers), CFG.d_model)
  assert got.dtype == np.float32
  numerics.assert_close(got, want, ulps=numerics.FORWARD_ULPS)


def test_mean_activations_rejects_padding_in_the_last_positions():
  params = transformer.init_params(CFG, seed=1)
  ids, mask = chat.pad_left([[5, 6], [5, 6, 7, 8]], pad_id=0)
  with pytest.raises(errors.PromptError):
    directions.mean_activations(params, CFG, ids, mask, layers=(0,),
                                n_positions=3, batch_size=2)
  with pytest.raises(errors.ConfigError):
    directions.mean_activations(params, CFG, ids, mask, layers=(3,),
                                n_positions=1, batch_size=2)
