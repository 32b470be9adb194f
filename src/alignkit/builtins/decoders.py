"""Built-in decoder: `sample` (temperature, top-k, top-p, min-p)."""
