"""Built-in evaluation metrics (diversity and quality)."""
