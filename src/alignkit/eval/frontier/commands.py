"""The alignkit commands that compute one point, and reading its two figures back from what they wrote.

Every point runs through alignkit's own CLI (`python -m alignkit ...` in a subprocess), never through the engine's
functions: frontier then depends only on the commands' flags and output files, which are documented, and each
point is a process of its own, so `--jobs N` is N processes.

    trained, exact:   train <objective> FLAGS --output M          eval --exact --model M --output P/eval
    decoder, exact:   decode --exact --<decoder> FLAGS --output P/exact.json
    start, exact:     eval --exact --model MODEL --output P/eval
    sampled:          [train ...]  decode --model M|MODEL [--<decoder>] --num-samples K --output P/generations.jsonl
                      eval P/generations.jsonl --reward R --metrics Q,D --output P/eval

P is the point's folder (DIR/runs/...), M a trained point's model folder (DIR/models/..., shared by the points that
differ only in how they are measured).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignkit import config as C
from alignkit.errors import UserError
from alignkit.eval.frontier.grid import Point
from alignkit.eval.frontier.sections import Section, argv, decode_sections, to_argv
from alignkit.eval.frontier.spec import EXACT_FIGURES
from alignkit.registry import NoOptions

TRAIN = Section("train", C.TrainConfig)
EVAL = Section("eval", C.EvalConfig)
DECODE = Section("decode", C.DecodeConfig)


@dataclass
class Step:
    name: str          # 'train', 'decode' or 'eval': also the name of its log file, P/<name>.log
    argv: list[str]    # the arguments after `python -m alignkit`


def _flags(section: Section, values: dict[str, Any]) -> list[str]:
    return argv([section], values)


def _decoder_argv(point: Point) -> list[str]:
    """`--<decoder>` and its options; `sample` is decode's default and has no switch (as in cli.py)."""
    if point.record is None or point.record.name == "sample":
        return []
    return to_argv(Section("switch", NoOptions, point.record.name), point.record.name, True)


def _sampled(point: Point, folder: Path, model: str) -> list[Step]:
    """decode then eval, on the eval settings' prompts and sample count (a decoder's own keys come on top)."""
    ev = point.eval
    gens = folder / "generations.jsonl"
    if point.kind == "decode":
        values = {**ev.decode_values, **point.values}
        decode = ["decode", *_decoder_argv(point), *argv(point.sections, values)]
    else:
        values = {**ev.decode_values, "model": model}
        decode = ["decode", *_flags(DECODE, values)]
    decode += _flags(DECODE, {"output": str(gens)})
    metrics = f"{ev.quality},{ev.diversity}"
    evaluate = ["eval", str(gens), *_flags(EVAL, {**ev.eval_values, "metrics": metrics,
                                                    "output": str(folder / "eval")})]
    return [Step("decode", decode), Step("eval", evaluate)]


def _exact_eval(point: Point, folder: Path, model: str) -> Step:
    values = {"exact": True, "model": model, **point.eval.eval_values, "output": str(folder / "eval")}
    return Step("eval", ["eval", *_flags(EVAL, values)])


def steps(point: Point, out_dir: Path) -> list[Step]:
    """The commands of one point, in order, under the frontier's output folder `out_dir` (absolute); a trained
    point's first command, train, writes its model folder (the runner skips it when that model is finished)."""
    out: list[Step] = []
    folder, model = out_dir / point.folder, point.model
    if point.kind == "train":
        model = str(out_dir / point.model_folder)
        train = ["train", point.record.name, *argv(point.sections, point.values)]
        out.append(Step("train", train + _flags(TRAIN, {"output": model})))
    if not point.eval.exact:
        return out + _sampled(point, folder, model)
    if point.kind == "decode":
        # `decode --exact`: the exact figures of the sampler decode would run, as eval's exact section.
        values = {**point.values, "exact": True}
        return [Step("decode", ["decode", *_decoder_argv(point), *argv(decode_sections(point.record), values),
                                *_flags(DECODE, {"output": str(folder / "exact.json")})])]
    return out + [_exact_eval(point, folder, model)]


def _figure(name: str, summary: Any, higher: bool, where: Path) -> dict[str, Any]:
    if summary is None:
        raise UserError(f"{where} has no value for '{name}' (the metric was undefined on every prompt)")
    if isinstance(summary, dict):
        return {"name": name, "mean": summary["mean"], "ci_low": summary.get("ci_low"),
                "ci_high": summary.get("ci_high"), "higher_is_better": higher}
    return {"name": name, "mean": float(summary), "ci_low": None, "ci_high": None, "higher_is_better": higher}


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def read_figures(point: Point, folder: Path) -> dict[str, Any]:
    """{quality, diversity: {name, mean, ci_low, ci_high, higher_is_better}, figures: everything measured}."""
    ev = point.eval
    if ev.exact:
        path = folder / "exact.json" if point.kind == "decode" else folder / "eval" / "report.json"
        doc = _read(path)
        mean = (doc if point.kind == "decode" else doc.get("exact", {})).get("mean")
        if not isinstance(mean, dict):
            raise UserError(f"{path} has no exact figures ('mean')")
        return {"quality": _figure(ev.quality, mean.get(ev.quality), EXACT_FIGURES[ev.quality][1], path),
                "diversity": _figure(ev.diversity, mean.get(ev.diversity), EXACT_FIGURES[ev.diversity][1], path),
                "figures": mean}
    path = folder / "eval" / "report.json"
    doc = _read(path)
    summaries, info = doc["files"][0]["metrics"], doc["metrics"]
    # The direction comes from eval's report (the metric's registered higher_is_better), not from a table here.
    return {"quality": _figure(ev.quality, summaries.get(ev.quality), info[ev.quality]["higher_is_better"], path),
            "diversity": _figure(ev.diversity, summaries.get(ev.diversity),
                                 info[ev.diversity]["higher_is_better"], path),
            "figures": summaries}
