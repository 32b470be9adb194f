"""The toy world as a plugin: its names (toy:base, toy:instruct, toy:prefs, toy:prefs-onpolicy, toy:prompts),
its reward source (`toy`), and the exact before/after figures it prints at the end of training on a toy model."""
from __future__ import annotations

from typing import Any

from alignkit import hookimpl
from alignkit.registry import Resource, RewardSource

RESOURCES = (
    ("toy:base", "model", "the toy world's base model: broad, mostly wrong (docs/toy-world.md)"),
    ("toy:instruct", "model", "the toy world's instruct model: apt answers, less diverse"),
    ("toy:prefs", "data", "2,000 toy preference pairs, 3/4 of them drawn from toy:base"),
    ("toy:prefs-onpolicy", "data", "2,000 toy preference pairs drawn from toy:instruct"),
    ("toy:prompts", "data", "the toy world's 8 prompts"),
)


def _resolve(spec: str) -> str:
    from alignkit import toy

    return str(toy.resolve(spec))


def _load_reward(spec: str) -> Any:
    from alignkit.toy.reward import reward_fn

    return reward_fn


@hookimpl
def register_resources(register: Any) -> None:
    for name, kind, help in RESOURCES:
        register(Resource(name=name, help=help, kind=kind, resolve=_resolve))


@hookimpl
def register_rewards(register: Any) -> None:
    register(RewardSource(
        name="toy",
        help="The toy world's true reward: aptness of the adjectives, 0.9 per filler word (docs/toy-world.md).",
        matches=lambda spec: spec == "toy",
        load=_load_reward,
    ))
