"""Fixtures for the sampling tests: a mock model with known next-token probabilities, a fake tokenizer, and tiny
random Llama models with a character-level PreTrainedTokenizerFast saved to disk."""
from types import SimpleNamespace

import torch

torch.set_num_threads(1)

CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 +=?.")


class FixedModel(torch.nn.Module):
    """Returns the same next-token log-probs whatever the prefix; ignores the cache (past_key_values=None)."""

    def __init__(self, probs):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the loop a device to read
        self.register_buffer("logits", torch.tensor(probs, dtype=torch.float32).log())
        self.calls = 0

    def forward(self, input_ids, **kwargs):
        self.calls += 1
        B, T = input_ids.shape
        return SimpleNamespace(logits=self.logits.expand(B, T, -1), past_key_values=None)


class FakeTokenizer:
    """Token 0 is EOS (and pad); token i > 0 decodes to the letter chr(96 + i)."""

    eos_token_id = 0
    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(96 + i) for i in ids if i != 0)


def tiny_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_llama(seed, vocab_size):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.3,
                         bos_token_id=None, eos_token_id=1, pad_token_id=0)
    return LlamaForCausalLM(config).eval()


