"""Tiny refusal model organisms: chat data, tokenizers, training and cards."""
