"""Registers the toy world's reward source (`toy`)."""
