"""Safety tuning: LoRA adapters that teach a chat model to refuse harm."""
