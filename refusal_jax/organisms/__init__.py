"""Tiny refusal model organisms: their chat data, tokenizers and training."""
