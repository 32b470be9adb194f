"""Built-in training objectives (dpo, simpo). Registered through the same hook contract as any plugin."""
