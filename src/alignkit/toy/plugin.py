"""Registers the toy world's reward source (`toy`): the programmatic true reward of alignkit.toy.reward."""
from __future__ import annotations

from typing import Any

from alignkit import hookimpl
from alignkit.registry import RewardSource


def _load(spec: str) -> Any:
    from alignkit.toy.reward import reward_fn

    return reward_fn


@hookimpl
def register_rewards(register: Any) -> None:
    register(RewardSource(
        name="toy",
        help="The toy world's true reward: aptness of the adjectives, 0.9 per filler word (docs/toy-world.md).",
        matches=lambda spec: spec == "toy",
        load=_load,
    ))
