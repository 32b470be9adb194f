"""The prepare pipeline: raw rows -> canonical rows -> token ids, in memory (alignkit.data.save writes them).

    alignkit prepare prefs.jsonl --model Qwen/Qwen2.5-0.5B-Instruct --output data/prefs --max-length 1024

The pipeline, one chunk of rows at a time:
  1. read raw rows (alignkit.data.sources): unreadable rows are rejects with their line number;
  2. detect the format (or --format) and convert each row to {prompt, chosen, rejected} or {prompt};
  3. tokenize with alignkit.data.tokenize (the rules shared with decode and online training): the chat template
     for conversational rows (--template auto), plain text + EOS for string rows, responses split from
     `prompt + response` at the common prefix;
  4. apply --max-prompt-length / --max-length with the --truncation policy (docs/data.md).
Every row read is either kept or rejected with a reason: read = kept + rejected, always.
"""
from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from alignkit.config import PrepareConfig
from alignkit.data.sources import RawRow, open_source
from alignkit.data.tokenize import (divergence_warning, encode_examples, is_messages, plain_text, response_text,
                                    tokenizer_hash, warn_once)
from alignkit.errors import UserError
from alignkit.registry import Format

CHUNK = 1000        # rows per progress step (and per worker task with --num-proc)
DETECT_ROWS = 100   # rows looked at to detect the format
PROGRESS_MIN_ROWS = 2000  # below this a run is quick and the bar is noise

PAIR_COLUMNS = ("prompt", "chosen", "rejected", "prompt_input_ids", "chosen_input_ids", "rejected_input_ids",
                "prompt_length", "chosen_length", "rejected_length", "source_index")
PROMPT_COLUMNS = ("prompt", "prompt_input_ids", "prompt_length", "source_index")
SCORE_COLUMNS = ("score_chosen", "score_rejected")


class Columns:
    """Prepared rows as columns of plain lists, read as a `datasets.Dataset` is (len, ["column"], column_names):
    training on a raw file reads these and never imports datasets (pyarrow and pandas: 0.1 GiB, half a second)."""

    def __init__(self, data: dict[str, list]) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(next(iter(self.data.values()), []))

    def __getitem__(self, column: str) -> list:
        return self.data[column]

    @property
    def column_names(self) -> list[str]:
        return list(self.data)


@dataclass
class PrepareResult:
    columns: Columns         # the canonical columns
    kind: str                # 'pairwise' or 'prompt'
    manifest: dict
    rejects: list[dict]      # {"source_index", "reason", "detail"?, "line"?} in source order

    @functools.cached_property
    def dataset(self) -> Any:
        """The columns as a `datasets.Dataset` with the canonical features (what `alignkit prepare` saves)."""
        import datasets

        return datasets.Dataset.from_dict(self.columns.data, features=_features(self.kind, self.columns.data))


class Rejected(Exception):
    """A row left out: reason is the stable category (e.g. 'too long'), detail says more."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


# ----------------------------------------------------------------------------------------------------------
# Format detection


def choose_format(formats: list[Format], rows: list[RawRow], forced: str | None, registry: Any) -> Format:
    """--format if given; else the format that most of the first readable rows look like (priority breaks ties)."""
    if forced:
        return registry.get("format", forced)
    ordered = sorted(formats, key=lambda f: -f.priority)
    votes: Counter[str] = Counter()
    sample = [r.row for r in rows if r.row is not None][:DETECT_ROWS]
    for row in sample:
        match = next((f for f in ordered if f.detect(row)), None)
        if match is not None:
            votes[match.name] += 1
    if not votes:
        if not sample:
            raise UserError("found no readable rows to detect the format from")
        keys = ", ".join(sorted(sample[0])) or "none"
        raise UserError(f"cannot detect the data format (first row has keys: {keys}); expected one of "
                        f"{', '.join(f.name for f in ordered)} — see docs/data.md, or force one with --format")
    best = max(votes.values())
    return next(f for f in ordered if votes[f.name] == best)


@dataclass
class Settings:
    """Everything a worker needs to turn canonical rows into token ids."""

    tokenizer: Any
    fmt: Format
    template: str              # auto | chat | plain
    max_length: int | None
    max_prompt_length: int | None
    truncation: str            # truncate | reject


# ----------------------------------------------------------------------------------------------------------
# Checks and truncation


def check_canonical(row: dict, kind: str) -> None:
    if not response_text(row["prompt"]).strip():
        raise Rejected("empty prompt")
    if kind == "pairwise":
        if row["chosen"] == row["rejected"]:
            raise Rejected("chosen identical to rejected")
        for key in ("chosen", "rejected"):
            if not response_text(row[key]).strip():
                raise Rejected("empty response", f"'{key}' is empty")


def fit(prompt: list[int], responses: list[list[int]], s: Settings) -> tuple[list[int], list[list[int]], bool]:
    """Apply the length limits: (prompt ids, response ids, whether anything was cut) or raise Rejected.

    The prompt keeps its END (the question sits there); each response keeps its START so that
    prompt + response <= max_length (its EOS is lost when cut). Under --truncation reject, any cut is a reject.
    """
    cut = False
    limit = s.max_prompt_length
    if not responses and s.max_length is not None:  # prompt-only: the prompt alone must fit max_length
        limit = s.max_length if limit is None else min(limit, s.max_length)
    if limit is not None and len(prompt) > limit:
        if s.truncation == "reject":
            raise Rejected("too long", f"prompt has {len(prompt)} tokens, over the limit of {limit}")
        prompt, cut = prompt[len(prompt) - limit:], True
    if s.max_length is None or not responses:
        return prompt, responses, cut
    room = s.max_length - len(prompt)
    if room <= 0:
        raise Rejected("too long", f"prompt has {len(prompt)} tokens, leaving no room for a response under "
                                   f"--max-length {s.max_length}")
    out = []
    for ids in responses:
        if len(ids) > room:
            if s.truncation == "reject":
                raise Rejected("too long", f"prompt + response is {len(prompt) + len(ids)} tokens, over "
                                           f"--max-length {s.max_length}")
            ids, cut = ids[:room], True
        out.append(ids)
    return prompt, out, cut


# ----------------------------------------------------------------------------------------------------------
# One chunk: raw rows -> columns + rejects (runs in a worker process with --num-proc)


def _reject(raw: RawRow, reason: str, detail: str | None) -> dict:
    record: dict[str, Any] = {"source_index": raw.index, "reason": reason}
    if detail:
        record["detail"] = detail
    if raw.line is not None:
        record["line"] = raw.line
    return record


def process_chunk(chunk: list[RawRow], s: Settings) -> tuple[list[dict], list[dict], Counter]:
    """(kept rows, rejects, counts of template used / rows truncated / prompts cut) for one chunk, in source order."""
    kind = s.fmt.kind
    tok = s.tokenizer
    stats: Counter[str] = Counter()
    staged: list[tuple[RawRow, dict]] = []
    rejects: dict[int, dict] = {}
    for raw in chunk:
        if raw.row is None:
            rejects[raw.index] = _reject(raw, raw.error or "unreadable", raw.detail)
            continue
        try:
            row = s.fmt.convert(raw.row)
            check_canonical(row, kind)
        except Rejected as exc:
            rejects[raw.index] = _reject(raw, exc.reason, exc.detail)
            continue
        except ValueError as exc:  # the format's "<reason>: <detail>" for a bad row
            reason, _, detail = str(exc).partition(": ")
            rejects[raw.index] = _reject(raw, reason, detail or None)
            continue
        except KeyError as exc:  # a format that indexed a field the row lacks
            rejects[raw.index] = _reject(raw, "missing field", str(exc))
            continue
        staged.append((raw, row))
    # The one tokenization module renders and tokenizes the whole chunk (plain rows in one batch call).
    encoded = encode_examples(tok, [row["prompt"] for _, row in staged],
                              [[row[k] for k in ("chosen", "rejected") if k in row] for _, row in staged],
                              s.template)
    kept: list[dict] = []
    for (raw, row), enc in zip(staged, encoded):
        try:
            p_ids, r_ids, cut = fit(enc.prompt_ids, enc.response_ids, s)
        except Rejected as exc:
            rejects[raw.index] = _reject(raw, exc.reason, exc.detail)
            continue
        if enc.diverged is not None:
            stats["prompt cut"] += 1
            warn_once("prepare-diverged", divergence_warning(enc))
        stats["chat" if enc.chat else "plain"] += 1
        stats["truncated"] += cut
        prompt_text = (tok.apply_chat_template(_messages(row["prompt"]), add_generation_prompt=True,
                                               tokenize=False) if enc.chat else plain_text(row["prompt"]))
        out: dict[str, Any] = {"prompt": prompt_text, "prompt_input_ids": p_ids, "prompt_length": len(p_ids),
                               "source_index": raw.index}
        if kind == "pairwise":
            for key, ids in zip(("chosen", "rejected"), r_ids):
                # the text of exactly the ids that are trained (a template's end of turn included), less a final EOS
                text = tok.decode(ids[:-1] if ids and ids[-1] == tok.eos_token_id else ids)
                out[key], out[f"{key}_input_ids"], out[f"{key}_length"] = text, ids, len(ids)
            for key in SCORE_COLUMNS:
                if key in row:
                    out[key] = row[key]
        elif is_messages(row["prompt"]):
            out["messages"] = json.dumps(row["prompt"], ensure_ascii=False)
        kept.append(out)
    return kept, [rejects[k] for k in sorted(rejects)], stats


def _messages(prompt: Any) -> list[dict]:
    return prompt if is_messages(prompt) else [{"role": "user", "content": prompt}]


_WORKER: Settings | None = None


def _init_worker(s: Settings) -> None:
    global _WORKER
    _WORKER = s


def _worker_chunk(chunk: list[RawRow]) -> tuple[list[dict], list[dict], Counter]:
    assert _WORKER is not None
    return process_chunk(chunk, _WORKER)


# ----------------------------------------------------------------------------------------------------------
# The whole data set


def _features(kind: str, columns: Iterable[str]) -> Any:
    import datasets

    ids = datasets.Sequence(datasets.Value("int32"))
    types = {"prompt": datasets.Value("string"), "chosen": datasets.Value("string"),
             "rejected": datasets.Value("string"), "messages": datasets.Value("string"),
             "source_index": datasets.Value("int64"),
             "score_chosen": datasets.Value("float64"), "score_rejected": datasets.Value("float64")}
    return datasets.Features({c: ids if c.endswith("_input_ids") else types.get(c, datasets.Value("int32"))
                              for c in columns})


def _length_stats(values: list[int]) -> dict:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(sum(values) / len(values), 2), "max": max(values)}


def _chunks(rows: list[RawRow]) -> list[list[RawRow]]:
    return [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]


def prepare(cfg: PrepareConfig, tokenizer: Any = None, progress: bool = True) -> PrepareResult:
    """Prepare `cfg.data` in memory: the canonical data set, its manifest and the rejects. Writes nothing."""
    from alignkit import __version__, plugins

    tokenizer_name = getattr(tokenizer, "name_or_path", "") or cfg.model
    if tokenizer is None:
        from alignkit.data.tokenize import load_tokenizer

        tokenizer, tokenizer_name = load_tokenizer(cfg.model), cfg.model
    if tokenizer.eos_token_id is None:
        raise UserError(f"the tokenizer of '{cfg.model}' has no EOS token; responses must end with one")

    source = open_source(cfg.data, cfg.split, cfg.limit)
    rows = list(source.rows)
    registry = plugins.registry()
    fmt = choose_format(registry.all("format"), rows, cfg.format, registry)
    s = Settings(tokenizer, fmt, cfg.template, cfg.max_length, cfg.max_prompt_length, cfg.truncation)
    kept: list[dict] = []
    rejects: list[dict] = []
    stats: Counter[str] = Counter()
    chunks = _chunks(rows)
    show = progress and len(rows) >= PROGRESS_MIN_ROWS
    with _progress(show, len(rows)) as advance:
        if cfg.num_proc > 1 and len(chunks) > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(cfg.num_proc, _init_worker, (s,)) as pool:
                results = pool.imap(_worker_chunk, chunks)
                for chunk, (k, r, st) in zip(chunks, results):
                    kept += k
                    rejects += r
                    stats += st
                    advance(len(chunk))
        else:
            for chunk in chunks:
                k, r, st = process_chunk(chunk, s)
                kept += k
                rejects += r
                stats += st
                advance(len(chunk))

    columns = list(PAIR_COLUMNS if fmt.kind == "pairwise" else PROMPT_COLUMNS)
    columns += [c for c in (*SCORE_COLUMNS, "messages") if any(c in row for row in kept)]
    data = {c: [row.get(c) for row in kept] for c in columns}

    if len(kept) + len(rejects) != len(rows):  # a bug, never a user error: every row is counted once
        raise RuntimeError(f"counts do not add up: {len(rows)} read, {len(kept)} kept, {len(rejects)} rejected")
    used = [t for t in ("chat", "plain") if stats[t]]
    manifest = {
        "alignkit_version": __version__,
        "source": cfg.data,
        "split": cfg.split,
        "limit": cfg.limit,
        "format": fmt.name,
        "kind": fmt.kind,
        "tokenizer": {"name": tokenizer_name,
                      "hash": tokenizer_hash(tokenizer),
                      "eos_token": tokenizer.eos_token, "eos_token_id": tokenizer.eos_token_id},
        "template": "+".join(used) if used else ("plain" if cfg.template == "plain" else "none"),
        "max_length": cfg.max_length,
        "max_prompt_length": cfg.max_prompt_length,
        "truncation": cfg.truncation,
        "counts": {"read": len(rows), "kept": len(kept), "rejected": len(rejects),
                   "truncated": stats["truncated"], "prompt_cut": stats["prompt cut"],
                   "rejected_by_reason": dict(Counter(r["reason"] for r in rejects))},
        "lengths": {c: _length_stats(data[c]) for c in columns if c.endswith("_length")},
        "columns": columns,
    }
    return PrepareResult(Columns(data), fmt.kind, manifest, rejects)


class _progress:
    """A rich progress bar over rows, or nothing for short runs: `with _progress(show, total) as advance`."""

    def __init__(self, show: bool, total: int):
        self.bar = None
        if show:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.task = self.bar.add_task("preparing rows", total=total)

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.__enter__()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
