"""Built-in decoder `sample`: temperature, top-k, top-p (nucleus) and min-p truncation of the policy's logits.

The sampler and the truncation helpers it is made of live in the engine's public module
`alignkit.engine.distributions`, which other decoders reuse; this module only registers it and stays light (no
torch at import).
"""
from __future__ import annotations

from typing import Any

from alignkit import hookimpl
from alignkit.registry import Decoder, NoOptions


def make_sampler(options: Any) -> Any:
    from alignkit.engine.distributions import SampleDecoder

    return SampleDecoder()


@hookimpl
def register_decoders(register):
    register(Decoder(name="sample", help="Sample from the model with temperature, top-k, top-p and min-p.",
                     make=make_sampler, options=NoOptions))
