"""A tiny GGUF file written from a random transformers Llama, so the GGUF conversion is tested in seconds.

    path, model = write_tiny_gguf(tmp_path / "tiny.gguf")

The file is what llama.cpp's convert_hf_to_gguf.py writes for a Llama (F32 tensors, the q/k rotary permutation,
a byte-level BPE vocabulary with its merges, ChatML control tokens and a chat template), so transformers reads
it through the same GGUF path as a real model's file. `model` is the transformers model it was written from:
the converted folder must compute the same logits.
"""
from __future__ import annotations

from pathlib import Path

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
          "{% endif %}")
CORPUS = ["The sky is blue and the grass is green.", "What colour is the sky? It is blue.",
          "A tiny model answers tiny questions.", "Hello world, hello tokens, hello merges."] * 20


def tiny_bpe(vocab_size: int = 300):
    """A byte-level BPE trained on a few sentences (ids 0-2 are SPECIALS): vocabulary and merges as GGUF lists."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    model = json.loads(tok.to_str())["model"]
    tokens = [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, merges


def permute(weights, n_head: int, n_head_kv: int):
    # llama.cpp's convert_hf_to_gguf.py LlamaModel.permute: rotary halves interleaved; transformers undoes it
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_tiny_gguf(path: Path, seed: int = 0, tied: bool = False):
    """Write a tiny Llama as a GGUF file at `path`; returns (path, the transformers model it holds)."""
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens, merges = tiny_bpe()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokens), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         rope_theta=10000.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=tied)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # RMSNorm weights start at 1; random ones make a wrong norm mapping visible
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_theta if hasattr(config, "rope_theta") else 10000.0)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(len(tokens))
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp writes no output.weight for tied embeddings
        data = tensor.detach().float().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = permute(data, heads, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = permute(data, heads, kv_heads)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None, hf_name
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, model
