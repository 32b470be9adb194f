"""The readers of typed sources: .parquet files, `save_to_disk` folders and Hub ids (alignkit.data.sources opens
them). Their columns are typed, so the only bad row they can hold is a string whose bytes are not UTF-8 (a parquet
file's); each is one reject, as in the text readers. pyarrow and `datasets` are imported only when one is read.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alignkit.data.sources import INVALID_UTF8, RawRow
from alignkit.errors import UserError


def read_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet

    try:
        batches = pyarrow.parquet.ParquetFile(path).iter_batches()
        index = 0
        for batch in batches:
            try:
                rows: list[dict | None] = batch.to_pylist()
            except UnicodeDecodeError:  # a string column with bad bytes: convert row by row to find them
                rows = [_parquet_row(batch, i) for i in range(batch.num_rows)]
            for row in rows:
                yield RawRow(index, row) if row is not None else \
                    RawRow(index, None, INVALID_UTF8, "a string holds bytes that are not UTF-8")
                index += 1
    except (OSError, ValueError) as exc:  # pyarrow's errors for a file that is not (valid) parquet subclass these
        raise UserError(f"cannot read '{path}': {str(exc).splitlines()[0]}") from exc


def _parquet_row(batch: Any, i: int) -> dict | None:
    try:
        return batch.slice(i, 1).to_pylist()[0]
    except UnicodeDecodeError:
        return None


def _iter_dataset(dataset: Any) -> Iterator[RawRow]:
    for index, row in enumerate(dataset):
        yield RawRow(index, dict(row))


def read_saved(path: Path, split: str) -> Iterator[RawRow]:
    if (path / "manifest.json").is_file():
        raise UserError(f"'{path}' is already a prepared data set (it has manifest.json)")
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"'{path}' is not a datasets save_to_disk folder: {str(exc).splitlines()[0]}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UserError(f"'{path}' has no split '{split}' (it has {', '.join(loaded)}); use --split")
        loaded = loaded[split]
    return _iter_dataset(loaded)


def read_hub(spec: str, split: str) -> Iterator[RawRow]:
    import datasets

    try:
        dataset = datasets.load_dataset(spec, split=split)
    except Exception as exc:  # offline, unknown id, unknown split: all one message for the user
        raise UserError(f"cannot load '{spec}' from the Hugging Face Hub (split '{split}'): "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return _iter_dataset(dataset)
