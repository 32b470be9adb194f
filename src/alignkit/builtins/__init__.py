"""Default plugins, loaded from the explicit list in alignkit.plugins.BUILTIN_PLUGINS."""
