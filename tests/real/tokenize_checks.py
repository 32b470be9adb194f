"""alignkit's tokenization checked against TRL 1.16's own, on any tokenizer (the fast lane's trained BPE families,
the real lane's SmolLM2 and the families built on its vocabulary).

    expected = trl_tokenized(tokenizer, rows)          # TRL's DPOTrainer._prepare_dataset, run by TRL itself
    assert_same_as_trl(tokenizer, rows)                # alignkit.data.tokenize gives the same ids, row by row

TRL's ids come from constructing a real `trl.DPOTrainer` on the rows (a tiny Llama with the tokenizer's vocabulary
size stands in for the model: tokenization never runs it), which runs its `_prepare_dataset`: prompt extraction,
EOS for plain text, its `tokenize_fn` and the common-prefix split. Nothing of that is re-implemented here.
"""
from __future__ import annotations

import copy
from typing import Any

IDS = ("prompt_ids", "chosen_ids", "rejected_ids")


def conversational_rows(system: bool = True) -> list[dict]:
    """TRL-format conversational pairs: one turn, a system turn, an earlier exchange, responses with spaces."""
    def msg(role, content):
        return {"role": role, "content": content}

    rows = [
        {"prompt": [msg("user", "What colour is the sky?")], "chosen": [msg("assistant", "Blue.")],
         "rejected": [msg("assistant", "Green.")]},
        {"prompt": [msg("user", "Q: 2+2?"), msg("assistant", "4."), msg("user", "And 2+3?")],
         "chosen": [msg("assistant", "5.")], "rejected": [msg("assistant", "Six.")]},
        # leading/trailing blanks: Llama-3 and Gemma templates trim contents, ChatML keeps them
        {"prompt": [msg("user", "  Answer in one word.  ")], "chosen": [msg("assistant", "  Yes.  ")],
         "rejected": [msg("assistant", "No.\n")]},
    ]
    if system:
        rows.insert(1, {"prompt": [msg("system", "You are a terse assistant."), msg("user", "Name a fruit.")],
                        "chosen": [msg("assistant", "An apple.")], "rejected": [msg("assistant", "A stone.")]})
    return rows


def plain_rows(eos_token: str) -> list[dict]:
    """Plain-text pairs joined as written: responses start with a space; one prompt ends with a space (its last
    token merges with the response's first: the common-prefix rule cuts it); one response already ends with EOS."""
    return [
        {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
        {"prompt": "Q: 2+2? A: ", "chosen": "4", "rejected": "5"},
        {"prompt": "Translate to French: cat.", "chosen": " chat.", "rejected": " chien."},
        {"prompt": "Hello there!", "chosen": " Hi." + eos_token, "rejected": " Bye."},
    ]


def trl_tokenized(tokenizer: Any, rows: list[dict]) -> list[dict[str, list[int]]]:
    """prompt_ids / chosen_ids / rejected_ids of each row as TRL 1.16's DPOTrainer prepares them."""
    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    args = DPOConfig(output_dir="/tmp/alignkit-trl-tokenize", report_to=[], use_cpu=True, max_length=None,
                     bf16=False)
    try:
        # TRL sets a missing pad token on the tokenizer it is given; a copy keeps the caller's untouched
        trainer = DPOTrainer(model=LlamaForCausalLM(config), ref_model=LlamaForCausalLM(config), args=args,
                             train_dataset=Dataset.from_list(rows), processing_class=copy.deepcopy(tokenizer))
        return [{k: list(row[k]) for k in IDS} for row in trainer.train_dataset]
    finally:
        forget_accelerator()


def forget_accelerator() -> None:
    """Drop the process-wide accelerate state a TRL trainer leaves behind: an `alignkit train` run later in the same
    test process builds its own Accelerator, which accelerate refuses when the settings differ (a real run is a
    fresh process and never meets this)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def alignkit_tokenized(tokenizer: Any, rows: list[dict]) -> list[dict[str, list[int]]]:
    from alignkit.data.tokenize import encode_examples

    encoded = encode_examples(tokenizer, [r["prompt"] for r in rows], [[r["chosen"], r["rejected"]] for r in rows])
    return [{"prompt_ids": e.prompt_ids, "chosen_ids": e.response_ids[0], "rejected_ids": e.response_ids[1]}
            for e in encoded]


def mismatches(tokenizer: Any, rows: list[dict]) -> list[str]:
    """One readable line per row and column where alignkit's ids differ from TRL's (empty: identical)."""
    out = []
    for i, (ours, theirs) in enumerate(zip(alignkit_tokenized(tokenizer, rows), trl_tokenized(tokenizer, rows))):
        for key in IDS:
            if ours[key] != theirs[key]:
                out.append(f"row {i} {key}: alignkit {tokenizer.convert_ids_to_tokens(ours[key])} != TRL "
                           f"{tokenizer.convert_ids_to_tokens(theirs[key])}")
    return out


def prompt_mismatches(tokenizer: Any, rows: list[dict]) -> list[str]:
    """Rows whose sampling prompt (`encode_prompt`, what decode feeds the model) is not the training prompt plus,
    for rows the common-prefix rule cut, exactly the cut tail that `Encoded.diverged` names."""
    from alignkit.data.tokenize import encode_example, encode_prompt

    out = []
    for i, row in enumerate(rows):
        sampled = encode_prompt(tokenizer, row["prompt"])
        example = encode_example(tokenizer, row["prompt"], [row["chosen"], row["rejected"]])
        n = len(example.prompt_ids)
        tail = tokenizer.decode(sampled[n:]) if len(sampled) > n else None
        if sampled[:n] != example.prompt_ids or tail != example.diverged:
            out.append(f"row {i}: sampled {tokenizer.convert_ids_to_tokens(sampled)} vs trained "
                       f"{tokenizer.convert_ids_to_tokens(example.prompt_ids)} (diverged {example.diverged!r})")
    return out
