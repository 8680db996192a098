"""Prompts: loading files, chat formatting and refusal judging."""
