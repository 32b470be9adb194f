"""The grid: every method's sweep expanded to points, each with the identity that decides whether it is reused.

A point's identity is a hash of everything that determines its figures: the kind (trained, decoded, the start
model), the objective or decoder, every key its command gets (the spec's model, data or prompts included, the
sweep values typed as the command types them, so `beta: 1` and `beta: 1.0` are one point) and the eval settings.
Its folder is DIR/runs/<method>-<short params>-<hash>/: the name says what it is, the hash makes it unique.
A trained point's model has an identity of its own, the same hash without the eval settings, and its own folder,
DIR/models/<method>-<short params>-<hash>/: measuring the points another way reuses the models already trained.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from alignkit import config as C
from alignkit.errors import UserError
from alignkit.eval.frontier.sections import Section, typed_values
from alignkit.eval.frontier.spec import EvalSpec, Method, Spec

# Bumped when what a point folder holds, or how its figures are read, changes: old points are then recomputed.
POINT_FORMAT = 1
START = "start"  # the label of the starting model's reference point


@dataclass
class Point:
    method: str                 # the method's name, or START
    kind: str                   # 'train', 'decode' or 'start'
    record: Any                 # Objective / Decoder record; None for the start
    sections: list[Section]     # the command's flag groups; [] for the start
    params: dict[str, Any]      # the sweep values of this point, typed, in the spec's knob order
    values: dict[str, Any]      # every key its command gets (fixed + sweep + the spec's model/data/prompts)
    eval: EvalSpec
    model: str                  # the spec's model: what the start point evaluates
    id: str = ""                # the identity hash (short)
    folder: str = ""            # runs/<method>-<short params>-<id>
    model_id: str = ""          # a trained point's model: the identity without the eval settings; "" otherwise
    model_folder: str = ""      # models/<method>-<short params>-<model_id>; "" for points that train nothing

    @property
    def label(self) -> str:
        params = " ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        return f"{self.method} {params}".strip()


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short(params: dict[str, Any]) -> str:
    """'beta1-alpha0.9' for folder names: knob and value, anything but [A-Za-z0-9._] squeezed out."""
    parts = [re.sub(r"[^A-Za-z0-9._]+", "", f"{k}{_show(v)}") for k, v in params.items()]
    return "-".join(p for p in parts if p)[:60]


def _inputs(point: Point) -> dict[str, Any]:
    """What the point's own command computes from (its model, if it trains one, depends on nothing else)."""
    return {"format": POINT_FORMAT, "kind": point.kind,
            "record": point.record.name if point.record is not None else None, "values": point.values}


def _hash(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:10]


def identity(point: Point) -> str:
    return _hash({**_inputs(point), "eval": point.eval.identity()})


def model_identity(point: Point) -> str:
    """A trained point's model: the same inputs without the eval settings."""
    return _hash(_inputs(point))


def _spec_defaults(spec: Spec, method: Method, values: dict[str, Any]) -> dict[str, Any]:
    """The spec's model, data and prompts as the command's keys, unless the method sets its own: offline
    training reads data, online training reads prompts. A decoder reads eval's prompts when sampled and the
    world's own prompts when exact (decode --exact enumerates them)."""
    out = {"model": spec.model}
    if method.kind == "train":
        online = values.get("online", False)
        if not online and spec.data is not None:
            out["data"] = spec.data
        if online and spec.prompts is not None:
            out["prompts"] = spec.prompts
    return out


def _check_mode(method: Method, values: dict[str, Any], where: str) -> None:
    """Online or offline, as the objective supports, and no option of the other mode (e.g. min_reward offline)."""
    if method.kind != "train":
        return
    mode = "online" if values.get("online", False) else "pairwise"
    if mode not in method.record.modes:
        can = " or ".join(method.record.modes) or "no mode"
        raise UserError(f"{where}: objective '{method.record.name}' trains {can} only; "
                        + ("drop 'online: true'" if mode == "online" else "add 'online: true'"))
    objective = next((s for s in method.sections if s.key == "objective"), None)
    if objective is not None:
        options = objective.cls(**{k: v for k, v in values.items() if k in objective.names()})
        try:
            C.check_mode(options, mode)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None


def method_points(spec: Spec, method: Method) -> list[Point]:
    """The method's grid, the product of its sweep knobs in the spec's order (the last knob varies fastest)."""
    knobs = list(method.sweep)
    points = []
    for combo in itertools.product(*(method.sweep[k] for k in knobs)):
        raw = {**method.fixed, **dict(zip(knobs, combo))}
        where = f"method '{method.name}' at " + ", ".join(f"{k}={v}" for k, v in zip(knobs, combo))
        values = {**_spec_defaults(spec, method, raw), **raw}
        typed = typed_values(method.sections, values, where)
        _check_mode(method, typed, where)
        params = {k: typed[k] for k in knobs}
        points.append(_finish(Point(method.name, method.kind, method.record, method.sections, params, typed,
                                    spec.eval, spec.model)))
    return points


def start_point(spec: Spec) -> Point:
    """The starting model, measured as every point is: the reference the frontier is drawn against."""
    return _finish(Point(START, "start", None, [], {}, {"model": spec.model}, spec.eval, spec.model))


def _finish(point: Point) -> Point:
    point.id = identity(point)
    short = _short(point.params)
    name = f"{point.method}-{short}-" if short else f"{point.method}-"
    point.folder = f"runs/{name}{point.id}"
    if point.kind == "train":
        point.model_id = model_identity(point)
        point.model_folder = f"models/{name}{point.model_id}"
    return point


def expand(spec: Spec) -> list[Point]:
    """The start point, then every method's points in spec order. Two points with one identity are one run."""
    points = [start_point(spec)]
    for method in spec.methods:
        points += method_points(spec, method)
    seen: dict[str, Point] = {}
    for p in points:
        if p.id in seen and p.method == seen[p.id].method:
            raise UserError(f"'{p.label}' and '{seen[p.id].label}' are the same point (the sweep lists a value "
                            "twice in different spellings)")
        seen[p.id] = p
    return points


def public(point: Point) -> dict[str, Any]:
    """What point.json and frontier.json say about a point's inputs."""
    return {"method": point.method, "kind": point.kind, "id": point.id, "folder": point.folder,
            **({"model_folder": point.model_folder, "model_id": point.model_id} if point.model_folder else {}),
            "record": point.record.name if point.record is not None else None,
            "params": point.params, "values": point.values}
