"""Built-in data-set formats for `prepare` (TRL standard / conversational, Anthropic HH, UltraFeedback, prompt-only).

Each format is a `Format` record: `detect(row)` says whether a raw row looks like the format, `convert(row)`
returns a canonical row ({prompt, chosen, rejected} or {prompt}; each a string or a list of {role, content}
messages) or raises ValueError("<reason>: <detail>"); rejects.jsonl records the reason (a short stable category
such as "missing field" or "wrong type") and the detail apart. Checks shared by
every format (empty response, chosen identical to rejected) live in `alignkit.data.prepare`, not here.
Pure Python: no torch, no datasets.
"""
from __future__ import annotations

import math
from typing import Any

from alignkit import hookimpl
from alignkit.registry import Format

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


# ----------------------------------------------------------------------------------------------------------
# Field checks: each raises ValueError with the reason a user reads in rejects.jsonl.


def _type_name(value: Any) -> str:
    return type(value).__name__


def _field(row: dict, key: str) -> Any:
    if row.get(key) is None:
        raise ValueError(f"missing field: '{key}'")
    return row[key]


def _string(row: dict, key: str) -> str:
    value = _field(row, key)
    if not isinstance(value, str):
        raise ValueError(f"wrong type: '{key}' should be a string, got {_type_name(value)}")
    return value


def is_messages(value: Any) -> bool:
    """A non-empty list of {role, content} dicts."""
    return (isinstance(value, list) and len(value) > 0
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value))


def _messages(row: dict, key: str) -> list[dict]:
    value = _field(row, key)
    if not is_messages(value):
        raise ValueError(f"wrong type: '{key}' should be a list of {{role, content}} messages, "
                         f"got {_type_name(value)}")
    for m in value:
        if not isinstance(m["content"], str) or not isinstance(m["role"], str):
            raise ValueError(f"wrong type: '{key}' messages need string role and content")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _score(row: dict, key: str) -> float:
    value = _field(row, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"wrong type: '{key}' should be a number, got {_type_name(value)}")
    try:
        score = float(value)
    except OverflowError:  # an integer beyond a float's range
        score = math.inf
    # Python's json reads the NaN / Infinity literals some writers emit; a non-finite score has no order and
    # would poison every mean and margin computed from the column.
    if not math.isfinite(score):
        raise ValueError(f"non-finite score: '{key}' is {score} as a float")
    return score


def split_shared_prefix(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(prompt, chosen response, rejected response) from two full conversations sharing their first messages.

    The prompt is the longest common run of messages; if that run ends with an assistant turn, the turn goes
    back to the responses (as TRL's `extract_prompt` does), so both responses start with the assistant's reply.
    """
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n > 0 and chosen[n - 1]["role"] == "assistant":
        n -= 1
    if n == 0:
        raise ValueError("no shared prompt: chosen and rejected do not start with the same messages")
    return chosen[:n], chosen[n:], rejected[n:]


# ----------------------------------------------------------------------------------------------------------
# Formats


def _detect_standard(row: dict) -> bool:
    return (isinstance(row.get("prompt"), str)
            and any(isinstance(row.get(k), str) for k in ("chosen", "rejected")))


def _convert_standard(row: dict) -> dict:
    return {"prompt": _string(row, "prompt"), "chosen": _string(row, "chosen"),
            "rejected": _string(row, "rejected")}


def _detect_conversational(row: dict) -> bool:
    return "score_chosen" not in row and any(is_messages(row.get(k)) for k in ("chosen", "rejected"))


def _convert_conversational(row: dict) -> dict:
    chosen, rejected = _messages(row, "chosen"), _messages(row, "rejected")
    if row.get("prompt") is not None:  # explicit prompt
        return {"prompt": _messages(row, "prompt"), "chosen": chosen, "rejected": rejected}
    prompt, chosen, rejected = split_shared_prefix(chosen, rejected)  # implicit prompt
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _detect_hh(row: dict) -> bool:
    chosen = row.get("chosen")
    return ("prompt" not in row and isinstance(chosen, str)
            and chosen.lstrip("\n").startswith("Human:") and ASSISTANT in chosen)


def _convert_hh(row: dict) -> dict:
    chosen, rejected = _string(row, "chosen"), _string(row, "rejected")
    # The prompt is the shared text up to and including the last "\n\nAssistant:" both strings contain.
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    cut = chosen.rfind(ASSISTANT, 0, n)
    if cut < 0 or n < cut + len(ASSISTANT):
        if chosen == rejected:
            raise ValueError("chosen identical to rejected")
        raise ValueError("no shared prompt: chosen and rejected differ before their last '\\n\\nAssistant:'")
    end = cut + len(ASSISTANT)
    return {"prompt": chosen[:end], "chosen": chosen[end:], "rejected": rejected[end:]}


def _detect_ultrafeedback(row: dict) -> bool:
    return "score_chosen" in row and "score_rejected" in row


def _convert_ultrafeedback(row: dict) -> dict:
    scores = {"score_chosen": _score(row, "score_chosen"), "score_rejected": _score(row, "score_rejected")}
    chosen, rejected = _messages(row, "chosen"), _messages(row, "rejected")
    # chosen / rejected are full conversations (user turn included); the `prompt` string column duplicates it.
    prompt, chosen, rejected = split_shared_prefix(chosen, rejected)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **scores}


def _detect_prompt(row: dict) -> bool:
    return "prompt" in row and "chosen" not in row and "rejected" not in row


def _convert_prompt(row: dict) -> dict:
    value = _field(row, "prompt")
    if isinstance(value, str):
        return {"prompt": value}
    if not is_messages(value):
        raise ValueError(f"wrong type: 'prompt' should be a string or a list of messages, "
                         f"got {_type_name(value)}")
    return {"prompt": _messages(row, "prompt")}


FORMATS = (
    Format("ultrafeedback", "UltraFeedback-style: chosen/rejected message lists with score_chosen/score_rejected "
           "(scores kept as columns).", "pairwise", _detect_ultrafeedback, _convert_ultrafeedback, priority=40),
    Format("hh", "Anthropic HH raw: chosen/rejected strings '\\n\\nHuman: ... \\n\\nAssistant: ...' sharing "
           "their prompt.", "pairwise", _detect_hh, _convert_hh, priority=30),
    Format("conversational", "TRL conversational preference: {prompt?, chosen, rejected} as lists of "
           "{role, content}; without prompt, the shared first messages are the prompt.", "pairwise",
           _detect_conversational, _convert_conversational, priority=20),
    Format("standard", "TRL standard preference: {prompt, chosen, rejected} strings.", "pairwise",
           _detect_standard, _convert_standard, priority=10),
    Format("prompt", "Prompt-only {prompt} (a string or messages) for online training and decoding.", "prompt",
           _detect_prompt, _convert_prompt, priority=0),
)


@hookimpl
def register_formats(register):
    for record in FORMATS:
        register(record)
