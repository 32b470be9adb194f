"""The shared engine: model loading, log-probs, the training loop and the sampling loop."""
