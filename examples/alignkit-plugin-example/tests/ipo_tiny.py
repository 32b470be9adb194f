"""A tiny Llama, a word-level tokenizer of the same vocabulary, and preference rows of token ids (no downloads)."""
from __future__ import annotations

import random

VOCAB = 64
EOS, PAD, BOS = 2, 0, 1


def tiny_model(seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD, "<s>": BOS, "</s>": EOS, **{f"w{i}": i for i in range(3, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w3"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="w3")


def pair_rows(n: int, seed: int = 0) -> list[dict]:
    """n pairs of token ids whose responses end with EOS and differ in length (so mean and sum differ)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = [BOS] + [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 6))]
        chosen = [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 7))] + [EOS]
        rejected = [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 7))] + [EOS]
        rows.append({"prompt_input_ids": prompt, "chosen_input_ids": chosen, "rejected_input_ids": rejected})
    return rows
