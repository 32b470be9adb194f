"""Helpers of the real-model lane: run the CLI in-process, read rows and metrics (a plain module, not conftest)."""
from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
PAIRS = FIXTURES / "real_chat_pairs.jsonl"  # 20 TRL-format conversational pairs, short ChatML-friendly answers


def cli(*args) -> str:
    """`alignkit ARGS` through the user's entry point (Typer app, in this process); its output, or an assertion
    error that shows it."""
    from tokenize_checks import forget_accelerator
    from typer.testing import CliRunner

    from alignkit.cli import build_app

    forget_accelerator()  # each command starts as a fresh process would, whatever TRL ran in this one before
    result = CliRunner().invoke(build_app(), [str(a) for a in args])
    assert result.exit_code == 0, f"alignkit {' '.join(map(str, args))} failed:\n{result.output}\n{result.exception!r}"
    return result.output


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return Path(path)


def pair_rows(n: int | None = None) -> list[dict]:
    rows = read_jsonl(PAIRS)
    return rows if n is None else rows[:n]
