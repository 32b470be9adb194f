"""Built-in data-set formats for `prepare` (TRL standard / conversational, Anthropic HH, UltraFeedback, prompt-only)."""
