"""alignkit: align language models to preferences without flattening their diversity.

Plugin authors import `hookimpl` from here. This module stays light: no torch, no transformers.
"""
from alignkit.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
