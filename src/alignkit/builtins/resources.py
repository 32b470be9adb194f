"""Built-in resources: families of model specs that need a step before transformers can open them.

A `*.gguf` file given as --model / --ref-model / --base-model (or to any command that loads a model or its
tokenizer) stands for a transformers folder converted from it once (alignkit.builtins.gguf).
"""
from __future__ import annotations

from typing import Any

from alignkit import hookimpl
from alignkit.builtins.gguf import converted_folder, is_gguf  # light: torch is imported only to convert
from alignkit.registry import Resource


@hookimpl
def register_resources(register: Any) -> None:
    register(Resource(
        name="gguf", kind="model", matches=is_gguf, resolve=converted_folder,
        help="Any *.gguf file: converted once into a transformers folder under $ALIGNKIT_CACHE/gguf "
             "(default ~/.cache/alignkit); needs pip install gguf."))
