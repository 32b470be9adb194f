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

    seqs, prompt_lengths, response_lengths = [], [], []
    for side in ("chosen_input_ids", "rejected_input_ids"):
        for row in rows:
            prompt, response = list(row["prompt_input_ids"]), list(row[side])
            if not prompt:
                # The first response token is predicted from the last prompt token; with no prompt nothing predicts it.
                raise ValueError("a pair has an empty prompt; tokenize with a BOS token or a template")
            if not response:
                raise ValueError("a pair has an empty response (responses end with EOS)")
            seqs.append(prompt + response)
            prompt_lengths.append(len(prompt))
            response_lengths.append(len(response))
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)  # (2B, L)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)  # (2B, L)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        attention_mask[i, : len(s)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "prompt_lengths": torch.tensor(prompt_lengths, dtype=torch.long),
        "response_lengths": torch.tensor(response_lengths, dtype=torch.long),
        "index": torch.tensor([int(row.get("index", -1)) for row in rows], dtype=torch.long),
    }
