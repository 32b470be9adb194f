"""Running the points: each one's commands in subprocesses, at most --jobs points at once, finished ones reused.

A point is finished when DIR/<folder>/point.json exists and names the point's identity; it is written last and
atomically (temp file + rename), so an interrupted point has none and starts over from an empty folder on the
next run. A finished point is read back, never recomputed. Each point prints one progress line when it ends.
A trained point's model is finished when DIR/<model folder>/frontier-model.json names the model's identity (also
written last, after train succeeded): a point measured another way trains nothing and reads that model.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from alignkit.errors import UserError
from alignkit.eval.frontier.commands import read_figures, steps
from alignkit.eval.frontier.grid import POINT_FORMAT, Point, public


class PointsFailed(UserError):
    """Some points' commands failed; the others finished and are kept for the rerun."""

    exit_code = 1


class _StepFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


MODEL_DONE = "frontier-model.json"


def model_finished(point: Point, out: Path) -> bool:
    """Whether the point's trained model is there (trained by an earlier run, maybe for other eval settings)."""
    try:
        doc = json.loads((out / point.model_folder / MODEL_DONE).read_text())
    except (OSError, ValueError):
        return False
    return doc.get("model_id") == point.model_id and doc.get("format") == POINT_FORMAT


def finished(point: Point, out: Path) -> dict[str, Any] | None:
    """The point's stored result, or None when it has to run (missing, unreadable, or another identity)."""
    path = out / point.folder / "point.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = doc.get("id") == point.id and doc.get("format") == POINT_FORMAT and "quality" in doc
    return doc if ok else None


def thread_env(jobs: int) -> dict[str, str]:
    """The subprocesses' environment: with several jobs, each torch gets its share of the cores, not all of them
    (N processes each spawning a thread per core would slow every one down)."""
    env = dict(os.environ)
    if jobs > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = str(max(1, cores // jobs))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _last_error(log: Path) -> str:
    """The line of the log that says what went wrong: alignkit's one-line `error:`, else the last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or ["no output"])[-1][:300]


def _write_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)  # a reader sees the old file or the whole new one, never half of it


def compute(point: Point, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run the point's commands into an empty folder, read its figures and write point.json last."""
    folder = (out / point.folder).resolve()
    if folder.exists():  # a point that did not finish: nothing in it can be trusted, start it over
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    start = time.monotonic()
    todo = steps(point, out.resolve())
    model = (out / point.model_folder).resolve() if point.model_folder else None
    reused = model is not None and model_finished(point, out)
    if model is not None and not reused:
        if model.exists():  # a model whose training did not finish: start it over
            shutil.rmtree(model)
        model.mkdir(parents=True)
    for step in todo:
        if step.name == "train" and reused:
            continue
        log = (model if step.name == "train" else folder) / f"{step.name}.log"
        with log.open("w") as f:
            f.write("$ " + shlex.join([sys.executable, "-m", "alignkit", *step.argv]) + "\n")
            f.flush()
            code = subprocess.run([sys.executable, "-m", "alignkit", *step.argv], stdout=f,
                                  stderr=subprocess.STDOUT, env=env, check=False).returncode
        if code != 0:
            raise _StepFailed(f"{step.name} exited with {code} ({log.relative_to(out.resolve())}: "
                              f"{_last_error(log)})")
        if step.name == "train":  # the model is whole: points measured another way may read it
            _write_atomic(model / MODEL_DONE, {"format": POINT_FORMAT, "model_id": point.model_id,
                                               "command": ["alignkit", *step.argv]})
    try:
        figures = read_figures(point, folder)
    except UserError as exc:
        raise _StepFailed(str(exc)) from None
    doc = {"format": POINT_FORMAT, **public(point), **figures, "seconds": round(time.monotonic() - start, 1),
           "commands": [["alignkit", *s.argv] for s in todo], **({"model_reused": reused} if model else {})}
    _write_atomic(folder / "point.json", doc)
    return doc


def _summary(doc: dict[str, Any]) -> str:
    q, d = doc["quality"], doc["diversity"]
    return f"{q['name']} {q['mean']:.4g}, {d['name']} {d['mean']:.4g}"


def dry_run(points: list[Point], out: Path) -> None:
    """What a run would do: each point's folder, whether it is reused, and its commands."""
    for p in points:
        state = "reused" if finished(p, out) else "to run"
        trained = state == "to run" and bool(p.model_folder) and model_finished(p, out)
        print(f"{p.label}: {state}{', its trained model reused' if trained else ''} ({out / p.folder})")
        if state == "to run":
            for step in steps(p, out.resolve()):
                if not (trained and step.name == "train"):
                    print("    alignkit " + shlex.join(step.argv))


def run_points(points: list[Point], out: Path, jobs: int) -> list[dict[str, Any]]:
    """Every point's point.json document, in the order of `points`; raises PointsFailed after running the rest
    when some failed."""
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for p in points:
        doc = finished(p, out)
        if doc is None:
            todo.append(p)
        else:
            results[p.folder] = doc
    total, width = len(points), len(str(len(points)))
    print(f"frontier: {total} points, {total - len(todo)} reused, {len(todo)} to run"
          + (f" ({min(jobs, len(todo))} at a time)" if todo else ""), flush=True)
    lock, done = threading.Lock(), [0]

    def report(p: Point, text: str) -> None:
        with lock:
            done[0] += 1
            print(f"[{done[0]:>{width}}/{total}] {p.label}: {text}", flush=True)

    for p in points:
        if p.folder in results:
            report(p, f"reused ({_summary(results[p.folder])})")
    failures = []
    env = thread_env(jobs)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(compute, p, out, env): p for p in todo}
        for future in as_completed(futures):
            p = futures[future]
            try:
                doc = future.result()
            except _StepFailed as exc:
                failures.append(f"{p.label}: {exc}")
                report(p, f"FAILED: {exc}")
                continue
            results[p.folder] = doc
            report(p, f"done in {doc['seconds']:.0f} s ({_summary(doc)})")
    except KeyboardInterrupt:
        # Ctrl-C reaches the running alignkit processes too (one process group); points not started yet must
        # not start, which a plain `with` (shutdown waiting for every queued point) would let them do.
        pool.shutdown(wait=False, cancel_futures=True)
        print(f"interrupted: {len(results)} of {total} points are finished and kept; rerun the same command to "
              "go on", file=sys.stderr, flush=True)
        raise
    pool.shutdown()
    if failures:
        raise PointsFailed(f"{len(failures)} of {total} points failed, first {failures[0]}; fix it and rerun the "
                           "same command (finished points are reused)")
    return [results[p.folder] for p in points]
