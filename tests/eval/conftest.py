"""Eval fixtures (defined in eval_fixtures.py so tests can also import its helpers)."""
from eval_fixtures import collapsed_file, diverse_file  # noqa: F401
