"""Pad preference pairs into one right-padded batch: chosen rows first, then rejected rows (2B sequences).

Each sequence is prompt + response (the response already ends with EOS). One forward pass over the 2B rows
gives both sides' log-probs, as TRL's concatenated forward does.
"""
from __future__ import annotations

from typing import Any


def collate_pairs(rows: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """rows: dicts with prompt_input_ids, chosen_input_ids, rejected_input_ids (lists of int) and optional index.

    Returns input_ids (2B, L) and attention_mask (2B, L), right padded; prompt_lengths (2B,) and
    response_lengths (2B,) long; index (B,) long: each pair's row number in the data set (-1 when absent).
    """
    import torch

    prompts = [list(row["prompt_input_ids"]) for row in rows] * 2
    responses = [list(row[side]) for side in ("chosen_input_ids", "rejected_input_ids") for row in rows]
    return {**collate_sequences(prompts, responses, pad_token_id),
            "index": torch.tensor([int(row.get("index", -1)) for row in rows], dtype=torch.long)}


def collate_sequences(prompts: list[list[int]], responses: list[list[int]], pad_token_id: int) -> dict[str, Any]:
    """Right-padded prompt + response rows: input_ids, attention_mask (R, L); prompt_lengths, response_lengths (R,)
    long; groups (R,) long, the same number for rows with the same prompt (a pair's two rows, an online prompt's
    samples), which the shared-prompt forward computes once. The layout `alignkit.engine.logprobs` reads."""
    import torch

    for prompt, response in zip(prompts, responses):
        if not prompt:
            # The first response token is predicted from the last prompt token; with no prompt nothing predicts it.
            raise ValueError("a row has an empty prompt; tokenize with a BOS token or a template")
        if not response:
            raise ValueError("a row has an empty response (responses end with EOS)")
    seqs = [list(p) + list(r) for p, r in zip(prompts, responses)]
    width = max(len(s) for s in seqs)
    # padded as Python lists, one tensor each: a copy per row costs more than a small model's forward
    return {
        "input_ids": torch.tensor([s + [pad_token_id] * (width - len(s)) for s in seqs], dtype=torch.long),  # (R, L)
        "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs],
                                       dtype=torch.long),  # (R, L)
        "prompt_lengths": torch.tensor([len(p) for p in prompts], dtype=torch.long),
        "response_lengths": torch.tensor([len(r) for r in responses], dtype=torch.long),
        "groups": torch.tensor(prompt_groups(prompts), dtype=torch.long),
    }


def prompt_groups(prompts: list[list[int]]) -> list[int]:
    """Each row's group number: rows with the same prompt ids share one, numbered in order of first appearance."""
    numbers: dict[tuple[int, ...], int] = {}
    return [numbers.setdefault(tuple(p), len(numbers)) for p in prompts]
