"""alignkit plugin: conformative decoding (arXiv 2507.20956v1), `alignkit decode --conformative`.

Registered through the `alignkit` entry-point group. This module stays light (no torch); the decoder itself
lives in `alignkit_conformative.decoder` and is imported when a run makes it.
"""
from __future__ import annotations

from dataclasses import dataclass

from alignkit import hookimpl
from alignkit.config import opt
from alignkit.registry import Decoder


@dataclass
class ConformativeOptions:
    base_model: str = opt("toy:base", "Base model that guides the instruct model (same tokenizer).")
    weight: float = opt(0.5, "Weight w of the base model in the mixture (0: plain sampling from --model).")
    mix: str = opt("prob", "prob: (1-w) p_inst + w p_base; logprob: p_inst^(1-w) p_base^w, normalised.",
                   choices=("prob", "logprob"))
    truncate_on: str = opt("instruct", "Which distribution's top-p set bounds the candidates: the instruct "
                           "model's (the mixture is renormalised on it) or the mixture's.",
                           choices=("instruct", "mixed"))


def make_decoder(options: ConformativeOptions):
    from alignkit_conformative.decoder import ConformativeDecoder

    return ConformativeDecoder(options)


@hookimpl
def register_decoders(register):
    register(Decoder(name="conformative", help="Mix the instruct model with its more diverse base model "
                     "(--conformative-base-model, --conformative-weight) at each step.", make=make_decoder, options=ConformativeOptions,
                     paper="arXiv 2507.20956v1"))
