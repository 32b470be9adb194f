"""`alignkit prepare DATA --output DIR`: run the pipeline (alignkit.data.prepare), write the prepared set, and
print what was kept and rejected.

    alignkit prepare prefs.jsonl --model Qwen/Qwen2.5-0.5B-Instruct --output data/prefs --max-length 1024

The folder holds the Arrow data set (it loads with `datasets.load_from_disk`), manifest.json and rejects.jsonl.
It is written whole into a hidden sibling folder, manifest last, and only then swapped in: a prepare killed
mid-write leaves the old set as it was (and a torn hidden folder nothing reads).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from alignkit.config import PrepareConfig
from alignkit.data.prepare import PrepareResult, prepare
from alignkit.errors import UserError


def write(result: PrepareResult, output: str | Path) -> Path:
    out = Path(output)
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise UserError(f"--output '{out}' exists and is not a prepared data set; choose an empty folder")
    new, old = out.with_name(f".{out.name}.new"), out.with_name(f".{out.name}.old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # a save bar for a few MB is noise next to the summary
    try:
        result.dataset.save_to_disk(str(new))  # the folder itself loads with datasets.load_from_disk
    finally:
        if not quiet:
            enable_progress_bars()
    _write_synced(new / "rejects.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.rejects))
    # the manifest last: a folder with a manifest is a complete prepared set
    _write_synced(new / "manifest.json", json.dumps(result.manifest, indent=2, ensure_ascii=False) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)  # the old set steps aside only once the new one is complete...
    os.replace(new, out)      # ...and the new one takes its name at once
    shutil.rmtree(old, ignore_errors=True)
    return out


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def malformed_lines(rejects: list[dict]) -> list[int]:
    return [r["line"] for r in rejects if r["reason"] == "malformed JSON" and "line" in r]


def summary_table(result: PrepareResult) -> Any:
    """Rows read, kept and rejected (one line per reason; malformed JSON with its line numbers)."""
    from rich.table import Table

    counts = result.manifest["counts"]
    table = Table()
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_row("read", str(counts["read"]))
    table.add_row("kept", str(counts["kept"]))
    table.add_row("rejected", str(counts["rejected"]))
    for reason, n in sorted(counts["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        label = f"  {reason}"
        if reason == "malformed JSON":
            lines = malformed_lines(result.rejects)
            label += f" (lines {', '.join(map(str, lines[:20]))}{', ...' if len(lines) > 20 else ''})"
        table.add_row(label, str(n))
    if counts["truncated"]:
        table.add_row("truncated (kept)", str(counts["truncated"]))
    return table


def run(cfg: PrepareConfig) -> None:
    from rich.console import Console

    result = prepare(cfg)
    m, c = result.manifest, result.manifest["counts"]
    console = Console(highlight=False, stderr=True)
    if c["kept"] == 0:  # nothing to train on: say why, and write no folder a later command would trust
        console.print(summary_table(result))
        reasons = ", ".join(f"{n} {r}" for r, n in c["rejected_by_reason"].items()) or "the source is empty"
        raise UserError(f"no row of {m['source']} was kept ({c['read']} read: {reasons}); nothing was written "
                        f"to {cfg.output}")
    out = write(result, cfg.output)
    console = Console(highlight=False)
    console.print(f"alignkit prepare: {m['source']} -> {out}")
    console.print(f"format {m['format']} ({m['kind']}), template {m['template']}, "
                  f"tokenizer {m['tokenizer']['name']}")
    console.print(summary_table(result))
    console.print(f"{c['read']} rows read = {c['kept']} kept + {c['rejected']} rejected "
                  f"(reasons in {out / 'rejects.jsonl'})")
