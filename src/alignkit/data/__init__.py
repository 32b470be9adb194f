"""Data: read raw rows (sources), convert formats, render templates and tokenize (prepare), load prepared sets.

Nothing heavy is imported here: `alignkit.data.prepare` and `alignkit.data.load` import datasets/transformers
inside their functions.
"""
