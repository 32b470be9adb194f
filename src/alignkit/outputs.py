"""`check_output`: refuse, before any work, an --output the command could not write.

Each command calls it first (prepare, train and eval write a folder; decode a JSONL file, `decode --exact` a JSON
file), so a path that is the wrong kind, sits under a file, or lies where the user may not write fails in one line
in a second, not after an hour of training. Nothing is created: the check writes and removes one probe file in the
nearest folder that exists.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from alignkit.errors import UserError

KINDS = ("folder", "file")


def check_output(path: str | Path, kind: str, flag: str = "--output") -> None:
    """UserError when `path` cannot become the `kind` ('folder' or 'file') a command writes there."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not str(path).strip():
        raise UserError(f"{flag} is empty; give a {kind} path")
    out = Path(path)
    if kind == "folder" and out.exists() and not out.is_dir():
        raise UserError(f"{flag} '{path}' is a file, but this command writes a folder there; give a folder path "
                        "(or move the file away)")
    if kind == "file" and out.is_dir():
        raise UserError(f"{flag} '{path}' is a folder, but this command writes a file there; give a file path, "
                        f"e.g. '{out / 'generations.jsonl'}'")
    # The folder the output is (or will be) created in: its nearest part that exists must be a folder we can write.
    nearest = out if out.is_dir() else out.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise UserError(f"cannot create {flag} '{path}': '{nearest}' is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".alignkit-probe-", dir=nearest)
        os.close(fd)
        os.unlink(probe)
        if kind == "file" and out.is_file():
            with out.open("ab"):  # decode appends to (resumes into) an existing file: it must open for writing
                pass
    except OSError as exc:
        where = f"'{out}'" if kind == "file" and out.is_file() else f"in '{nearest}'"
        raise UserError(f"cannot write {flag} '{path}': {(exc.strerror or str(exc)).lower()} {where}; choose a path "
                        "you can write") from None
