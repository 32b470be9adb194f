"""Loading data for train / decode: a prepared folder (checked against the model's tokenizer) or raw data
prepared on the fly with the same code as `alignkit prepare`."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from alignkit.data.tokenize import tokenizer_hash
from alignkit.errors import UserError


def load_prepared(spec: str, tokenizer: Any, kind: str, max_length: int | None = None,
                  max_prompt_length: int | None = None) -> Any:
    """Canonical rows of `kind` ('pairwise' or 'prompt') for `tokenizer`, read by column (len, ["column"]).

    A folder with manifest.json is loaded as is (a `datasets.Dataset`), after checking its kind and tokenizer hash;
    anything else (a raw file, a Hub id, toy:prefs / toy:prompts) is prepared in memory (plain lists,
    alignkit.data.prepare.Columns) and one line says how many rows were kept.
    """
    folder = Path(spec)
    if (folder / "manifest.json").is_file():
        import datasets

        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("kind") != kind:
            raise UserError(f"{spec} holds {manifest.get('kind')} data, but {kind} data is needed here")
        expected, actual = manifest.get("tokenizer", {}), tokenizer_hash(tokenizer)
        if expected.get("hash") != actual:
            name = getattr(tokenizer, "name_or_path", "") or "?"
            raise UserError(f"{spec} was prepared with tokenizer {expected.get('name')} ({expected.get('hash')}), "
                            f"but the model uses {name} ({actual}); run alignkit prepare again with --model "
                            f"{name}")
        return datasets.load_from_disk(str(folder))

    from alignkit.config import PrepareConfig
    from alignkit.data.prepare import prepare

    cfg = PrepareConfig(data=spec, output="", model=getattr(tokenizer, "name_or_path", "") or "",
                        max_length=max_length, max_prompt_length=max_prompt_length)
    result = prepare(cfg, tokenizer=tokenizer, progress=True)
    if result.manifest["kind"] != kind:
        raise UserError(f"{spec} holds {result.manifest['kind']} data ({result.manifest['format']} format), "
                        f"but {kind} data is needed here")
    c = result.manifest["counts"]
    reasons = ", ".join(f"{n} {r}" for r, n in c["rejected_by_reason"].items())
    print(f"prepared {spec}: {c['kept']} of {c['read']} rows kept, {c['rejected']} rejected"
          + (f" ({reasons})" if reasons else ""))
    return result.columns


def source_identity(spec: str, split: str = "train") -> str:
    """A short content hash of a data spec, for the run fingerprint: a file's bytes; a prepared or saved folder's
    manifest / metadata files and data-file sizes (hashing gigabytes of Arrow would slow every start); a Hub id as
    it is named (its revision is the Hub's business)."""
    from alignkit.plugins import resolve_resource

    path = Path(resolve_resource(spec, "data"))
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(file.relative_to(path)).encode())
            small = file.suffix in (".json", ".jsonl", ".txt") and file.stat().st_size < (1 << 20)
            h.update(file.read_bytes() if small else str(file.stat().st_size).encode())
    else:
        h.update(f"{spec}@{split}".encode())
    return h.hexdigest()[:16]
