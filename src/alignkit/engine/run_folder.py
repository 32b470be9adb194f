"""The folder a training run writes: which run it holds, where it resumes from, its metrics log and its final model.

A run folder holds one run. Starting a run where another one lives is refused unless it continues that run
(`--resume`, with an equal fingerprint) or replaces it (`--overwrite`); the refusal names every option that
differs. The final model is written beside the old one and moved into place file by file, so a crash never leaves
a folder whose model is half old, half new. metrics.jsonl is appended a line per logged step; a line torn by a
crash is dropped and reported when the run resumes.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from alignkit import config as C
from alignkit.engine import checkpoint
from alignkit.errors import UserError
from alignkit.model_info import MODEL_INFO


def start(output: Path, fingerprint: dict[str, Any], resume: bool, overwrite: bool) -> Path | None:
    """Decide how the run starts in `output` (on the main process): the checkpoint to resume from, or None for
    step 0. Refuses, with one line, to mix two runs in one folder; clears a replaced run and writes this run's
    identity."""
    newest = checkpoint.newest(output) if resume else None
    stored = checkpoint.fingerprint_of(newest) if newest else checkpoint.fingerprint_of(output)
    fresh = "start fresh with --overwrite, or choose another --output"
    if newest is not None and stored is None:  # unverifiable: it may be another run's
        if not overwrite:
            raise UserError(f"{newest} has no fingerprint.json (an older alignkit wrote it), so it cannot be "
                            f"checked against this run; {fresh}")
        newest = None
    if stored is not None and stored != fingerprint:
        if not overwrite:
            what = f"its checkpoint {newest.name}" if newest else "it"
            raise UserError(f"{output} holds another run, so {'--resume' if resume else 'this run'} cannot use "
                            f"{what}: {'; '.join(checkpoint.differences(stored, fingerprint))}; {fresh}")
        newest = None  # --overwrite: the other run is replaced, its checkpoints never load
    elif not resume and not overwrite and checkpoint.holds_a_run(output):
        raise UserError(f"{output} already holds a run ({_describe(output)}); continue it with --resume, or "
                        f"{fresh}")
    if resume and newest is None:
        print(f"no checkpoint in {checkpoint.checkpoint_dir(output)}; starting from step 0", file=sys.stderr)
    if newest is None:
        checkpoint.clear_run(output)
    output.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json_atomic(output / checkpoint.RUN_FILE, fingerprint)
    return newest


def _describe(output: Path) -> str:
    last = checkpoint.newest(output)
    steps = f"checkpoint {last.name}" if last else "no checkpoint"
    return f"{steps}, metrics.jsonl" if (output / "metrics.jsonl").is_file() else steps


class MetricsLog:
    """<output>/metrics.jsonl: one JSON object per logged step, written by the main process."""

    def __init__(self, output: Path, resume_step: int, is_main: bool) -> None:
        self.path, self.is_main = output / "metrics.jsonl", is_main
        if is_main:
            self._keep_until(resume_step)

    def _keep_until(self, step: int) -> None:
        """A resumed run rewrites the steps after its checkpoint; a fresh run starts an empty file. A torn last line
        (a crash mid-write) is dropped and said, never fatal."""
        if step == 0 or not self.path.is_file():
            self.path.write_text("")
            return
        kept, torn = [], 0
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                torn += 1
                continue
            if isinstance(record, dict) and record.get("step", step + 1) <= step:
                kept.append(line)
        if torn:
            print(f"note: dropped {torn} unreadable line(s) of {self.path} (a crash cut them off)", file=sys.stderr)
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.is_main:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def save_final(output: Path, model: Any, state_dict: Any, tokenizer: Any, resolved: dict[str, Any],
               info: dict[str, Any]) -> None:
    """A folder from_pretrained can load (or a PEFT adapter naming its base), the tokenizer, alignkit.yaml and the
    starting model's alignkit-model.json (what the model says about itself, its world and defaults, still holds).
    Written into a hidden folder first, then moved into `output` file by file."""
    tmp = output / ".tmp-final"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, state_dict=state_dict)
    tokenizer.save_pretrained(tmp)
    (tmp / "alignkit.yaml").write_text(C.dump_yaml(resolved))
    if info:
        (tmp / MODEL_INFO).write_text(json.dumps(info, indent=1) + "\n")
    for item in sorted(tmp.iterdir()):
        target = output / item.name
        if target.is_dir() and not item.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    tmp.rmdir()
