"""The toy world as a plugin: its names (toy:base, toy:instruct, toy:prefs, toy:prefs-onpolicy, toy:prompts), its
reward source (`toy`), its exact evaluation (the `toy` world), and the exact before/after figures it prints when a
run trains a toy model (through the training lifecycle hooks)."""
from __future__ import annotations

from typing import Any

from alignkit import hookimpl
from alignkit.registry import Resource, RewardSource, World

RESOURCES = (
    ("toy:base", "model", "the toy world's base model: broad, mostly wrong (docs/toy-world.md)"),
    ("toy:instruct", "model", "the toy world's instruct model: apt answers, less diverse"),
    ("toy:prefs", "data", "2,000 toy preference pairs, 3/4 of them drawn from toy:base"),
    ("toy:prefs-onpolicy", "data", "2,000 toy preference pairs drawn from toy:instruct"),
    ("toy:prompts", "data", "the toy world's 8 prompts"),
)
WORLD = "toy"


def _resolve(spec: str) -> str:
    from alignkit import toy

    return str(toy.resolve(spec))


def _load_reward(spec: str) -> Any:
    from alignkit.toy.reward import reward_fn

    return reward_fn


def _evaluate(*args: Any, **kwargs: Any) -> dict:
    from alignkit.toy.exact import exact_evaluate

    return exact_evaluate(*args, **kwargs)


def _evaluate_decoder(*args: Any, **kwargs: Any) -> dict:
    from alignkit.toy.exact import exact_evaluate_decoder

    return exact_evaluate_decoder(*args, **kwargs)


@hookimpl
def register_resources(register: Any) -> None:
    for name, kind, help in RESOURCES:
        register(Resource(name=name, help=help, kind=kind, resolve=_resolve, group="the toy world"))


@hookimpl
def register_rewards(register: Any) -> None:
    register(RewardSource(
        name="toy",
        help="The toy world's true reward: aptness of the adjectives, 0.9 per filler word (docs/toy-world.md).",
        matches=lambda spec: spec == "toy",
        load=_load_reward,
    ))


@hookimpl
def register_worlds(register: Any) -> None:
    register(World(name=WORLD, help="8 prompts × 880 enumerable responses, with the true reward (docs/toy-world.md).",
                   evaluate=_evaluate, evaluate_decoder=_evaluate_decoder, reference="toy:base"))


# ---- the training lifecycle: exact figures before and after training a toy model


def _is_toy_run(run: Any) -> bool:
    from alignkit.plugins import world_of

    world = world_of(run.config.model)
    return world is not None and world.name == WORLD


@hookimpl
def train_started(run: Any) -> None:
    if _is_toy_run(run):
        from alignkit.toy.before_after import ExactBeforeAfter

        run.state[WORLD] = ExactBeforeAfter(run.policy, run.tokenizer)


@hookimpl
def train_finished(run: Any) -> None:
    figures = run.state.get(WORLD)
    if figures is not None:
        figures.after(run.policy, run.output)
