"""Tiny models, tokenizers and preference rows built from configs (no network, no toy world)."""
from __future__ import annotations

import random

VOCAB = 64
EOS, PAD, BOS = 2, 0, 1


def tiny_model(seed: int = 0, tied: bool = False):
    """A 2-layer Llama over the tiny vocabulary; `tied` shares the input embedding with the LM head (SmolLM2's
    layout), and its embedding then has padding_idx PAD, as transformers builds it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=tied)
    return LlamaForCausalLM(config).eval()


def save_tiny(folder, tied: bool = False):
    """Save the tiny model and tokenizer as a folder from_pretrained loads; returns the folder."""
    tiny_model(tied=tied).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def tiny_tokenizer():
    """A word-level tokenizer whose vocabulary matches the tiny model (ids 3.. are words w3, w4, ...)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD, "<s>": BOS, "</s>": EOS, **{f"w{i}": i for i in range(3, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w3"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="w3")


def pair_rows(n: int, seed: int = 0) -> list[dict]:
    """n preference pairs of token ids; responses end with EOS and have different lengths."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = [BOS] + [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 6))]
        chosen = [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 7))] + [EOS]
        rejected = [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 7))] + [EOS]
        rows.append({"prompt_input_ids": prompt, "chosen_input_ids": chosen, "rejected_input_ids": rejected,
                     "prompt_length": len(prompt), "chosen_length": len(chosen), "rejected_length": len(rejected),
                     "prompt": " ".join(f"w{t}" for t in prompt[1:]), "chosen": "", "rejected": ""})
    return rows


def pair_dataset(n: int, seed: int = 0):
    from datasets import Dataset

    return Dataset.from_list(pair_rows(n, seed))
