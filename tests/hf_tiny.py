"""Tiny randomised transformers checkpoints for parity tests (test helper).

Dimensions are distinct primes where the architecture allows (head_dim must be
even for RoPE, and transformers requires hidden_size % heads == 0), so that a wrong transpose or reshape cannot cancel out. Every
weight, norm weights included, is randomised.
"""

import torch
import transformers

GEMMA_KW = dict(vocab_size=97, hidden_size=21, intermediate_size=29,
                num_hidden_layers=3, num_attention_heads=3,
                num_key_value_heads=1, head_dim=6, query_pre_attn_scalar=7,
                sliding_window=5, max_position_embeddings=64,
                attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
                bos_token_id=2, eos_token_id=1, pad_token_id=0)

LLAMA_KW = dict(vocab_size=97, hidden_size=20, intermediate_size=29,
                num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, head_dim=12,
                max_position_embeddings=64, rms_norm_eps=1e-5,
                rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
                rope_scaling={'rope_type': 'llama3', 'factor': 8.0,
                              'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                              'original_max_position_embeddings': 16})


def randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.15):
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.copy_(torch.randn(p.shape, generator=gen) * std)
  return model


def make(family: str, seed: int = 0, **overrides):
  """A randomised float32 HF causal LM of `family` ('gemma2' or 'llama')."""
  if family == 'gemma2':
    cfg = transformers.Gemma2Config(**{**GEMMA_KW, **overrides})
    cls = transformers.Gemma2ForCausalLM
  else:
    cfg = transformers.LlamaConfig(**{**LLAMA_KW, **overrides})
    cls = transformers.LlamaForCausalLM
  cfg._attn_implementation = 'eager'  # pylint: disable=protected-access
  torch.manual_seed(seed)
  model = cls(cfg).float().eval()
  return randomise(model, seed)


def save(model, directory, **kw):
  model.save_pretrained(directory, **kw)
  return str(directory)
