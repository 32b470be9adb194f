"""Built-in reward sources (toy verifier, python callable, reward model)."""
