"""The embedded toy world (see docs/toy-world.md)."""
