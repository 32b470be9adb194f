"""A .gguf file as a model: converted once into a plain transformers folder that every command can load.

    alignkit decode --model ~/models/SmolLM2-135M-Instruct.Q4_1.gguf --prompts prompts.jsonl --temperature 0

transformers reads a GGUF file (`from_pretrained(folder, gguf_file=name)`) by de-quantising every tensor to fp32,
which takes tens of seconds, and the model it returns refuses `save_pretrained` (it is marked as GGUF-quantised).
So the conversion happens once per file: the de-quantised weights are loaded into a fresh model built from the
same config (no quantisation mark), which is saved with the tokenizer (chat template included) and the
generation config into $ALIGNKIT_CACHE/gguf/<key> (default ~/.cache/alignkit). The key hashes the file's absolute
path, size and modification time, so an edited or replaced file is converted again. The folder is written under a
temporary name and renamed into place, so a killed conversion never leaves a half folder behind.

Nothing here imports torch or transformers at module level (`alignkit --help` stays light); the `gguf` package
transformers needs is checked before any work starts.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from alignkit.errors import UserError

FORMAT = 1  # bump when the folder layout changes, so old conversions are not reused
SOURCE_FILE = "alignkit-gguf.json"  # where the folder records which file it was converted from


def is_gguf(spec: str) -> bool:
    return spec.lower().endswith(".gguf")


def cache_root() -> Path:
    return Path(os.environ.get("ALIGNKIT_CACHE") or Path.home() / ".cache" / "alignkit").expanduser()


def cache_key(path: Path) -> str:
    """16 hex digits of sha256(absolute path, size, mtime in ns, FORMAT): same file, same folder."""
    stat = path.stat()
    text = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, FORMAT])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def converted_folder(spec: str) -> str:
    """The transformers folder for the .gguf file `spec`, converting it on first use (one line on stderr)."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"GGUF file '{spec}' does not exist")
    target = cache_root() / "gguf" / cache_key(path)
    if (target / SOURCE_FILE).is_file():  # written last, inside the temp folder: its presence means complete
        return str(target)
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"reading {path.name} needs the gguf package: pip install gguf (or alignkit[gguf])")
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"converting {path.name} into a transformers folder at {target} (once)", file=sys.stderr, flush=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        convert(path, temp)
        try:
            os.rename(temp, target)
        except OSError:  # another process finished the same conversion first: its folder is as good as ours
            if not (target / SOURCE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return str(target)


def convert(path: Path, out: Path) -> None:
    """Write the model, tokenizer and generation config of the GGUF file `path` into the folder `out`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise UserError(f"cannot convert {path.name} into a transformers model: "
                        f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the mark that makes save_pretrained refuse; the weights are fp32
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    # strict: every weight of the fresh model comes from the file (tied embeddings appear under both names)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    if loaded.generation_config is not None:
        fresh.generation_config = loaded.generation_config
    del loaded
    fresh.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    stat = path.stat()
    (out / SOURCE_FILE).write_text(json.dumps({"source": str(path.resolve()), "size": stat.st_size,
                                               "mtime_ns": stat.st_mtime_ns, "format": FORMAT}, indent=2) + "\n")
