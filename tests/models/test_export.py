"""Exported checkpoints load in transformers and in this port identically."""

import numpy as np
import torch
import transformers

import numerics
from refusal_jax.checkpoints import export
from refusal_jax.checkpoints import load as load_lib
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig, RopeScaling


def test_export_loads_in_transformers_with_equal_logits(tmp_path):
  cfgs = [
      ModelConfig.gemma2(vocab_size=53, d_model=24, num_layers=2, num_heads=3,
                         num_kv_heads=1, head_dim=8, mlp_dim=31,
                         sliding_window=3, max_position_embeddings=64),
      ModelConfig.llama(vocab_size=53, d_model=24, num_layers=2, num_heads=4,
                        num_kv_heads=2, mlp_dim=31, max_position_embeddings=64,
                        rope_scaling=RopeScaling(
                            factor=8.0, low_freq_factor=1.0,
                            high_freq_factor=4.0,
                            original_max_position_embeddings=8)),
  ]
  ids = np.random.RandomState(0).randint(0, 53, (2, 11))
  for i, cfg in enumerate(cfgs):
    params = transformer.init_params(cfg, seed=i)
    d = export.save_hf_checkpoint(params, cfg, str(tmp_path / cfg.family))
    ours = np.asarray(load_lib.load_model(d).forward(ids).logits)
    direct = np.asarray(transformer.forward(params, cfg, ids).logits)
    numerics.assert_close(ours, direct, ulps=numerics.FORWARD_ULPS)  # jit vs eager
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        d, attn_implementation='eager').eval()
    with torch.no_grad():
      ref = hf(torch.tensor(ids)).logits.numpy()
    numerics.assert_close(ours, ref, ulps=numerics.FORWARD_ULPS, what=cfg.family)
