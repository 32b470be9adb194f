"""Training-step throughput: alignkit's DPO step against TRL's DPOTrainer on the same model, data and batch.

    .venv/bin/python benchmarks/train_throughput.py            # CPU, tiny Llama, a few seconds
    python benchmarks/train_throughput.py --gpu                # Qwen2.5-0.5B-shaped random weights, bf16, CUDA

Both sides run the same step by hand — policy forward, reference forward without gradients, sigmoid DPO loss,
backward, the same AdamW — so the comparison is of the log-prob and loss paths, not of the two trainers' outer
loops (benchmarks/train_dpo_real.py measures those end to end). alignkit: engine.logprobs.pair_logprobs (its
default shared-prompt forward) + the DPO loss; TRL: DPOTrainer._compute_loss (its collator, labels and
concatenated forward). Tokens/s counts the concatenated layout's tokens on both sides. Random weights
and token ids: throughput does not depend on them. Prints tokens/s, peak memory and the ratio.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time

import torch


def build_model(gpu: bool, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    if gpu:  # Qwen2.5-0.5B shapes
        config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                             num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                             tie_word_embeddings=True, pad_token_id=0, eos_token_id=2)
        return Qwen2ForCausalLM(config).to("cuda", torch.bfloat16)
    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         pad_token_id=0, eos_token_id=2)
    return LlamaForCausalLM(config)


def make_pairs(n: int, vocab: int, prompt_len: int, response_len: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    pick = lambda k: [rng.randrange(3, vocab) for _ in range(k)]  # noqa: E731
    rows = []
    for _ in range(n):
        rows.append({"prompt_input_ids": pick(prompt_len),
                     "chosen_input_ids": pick(rng.randint(response_len // 2, response_len)) + [2],
                     "rejected_input_ids": pick(rng.randint(response_len // 2, response_len)) + [2]})
    return rows


def peak_memory(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS)"


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def timed(step, steps: int, warmup: int, device: str) -> float:
    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def alignkit_step(policy, ref, optimizer, batch, beta):
    from alignkit.engine.logprobs import pair_logprobs
    from alignkit.builtins.losses import dpo_loss

    def step():
        out = pair_logprobs(policy, batch)
        with torch.no_grad():
            r = pair_logprobs(ref, batch)
        loss = dpo_loss(out["chosen"], out["rejected"], r["chosen"], r["rejected"],
                        chosen_tokens=out["chosen_tokens"], rejected_tokens=out["rejected_tokens"],
                        beta=beta).losses.mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def trl_step(policy, ref, optimizer, rows, beta, device, tokenizer_dir):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    args = DPOConfig(output_dir=tempfile.mkdtemp(), beta=beta, loss_type=["sigmoid"], report_to=[],
                     use_cpu=device == "cpu", max_length=None, per_device_train_batch_size=len(rows),
                     bf16=device == "cuda")
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, processing_class=AutoTokenizer.from_pretrained(
        tokenizer_dir), train_dataset=Dataset.from_list([{"prompt": "a", "chosen": " b", "rejected": " c"}]))
    batch = DataCollatorForPreference(pad_token_id=0)(
        [{"prompt_ids": r["prompt_input_ids"], "chosen_ids": r["chosen_input_ids"],
          "rejected_ids": r["rejected_input_ids"]} for r in rows])
    batch = {k: v.to(device) for k, v in batch.items()}

    def step():
        loss = trainer._compute_loss(trainer.model, batch, return_outputs=False)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def word_tokenizer_dir(vocab: int) -> str:
    """A throw-away word-level tokenizer (TRL's trainer needs one to construct; the batch is pre-tokenized)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"<pad>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "c": 5},
                                     unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tempfile.mkdtemp()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="a").save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="Qwen2.5-0.5B-shaped model in bf16 on CUDA")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=None)
    parser.add_argument("--response-len", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = "cuda" if args.gpu else "cpu"
    # --gpu: 8 pairs of ~520 tokens (256 prompt + up to 264 response); CPU: short sequences on a tiny model.
    prompt_len = args.prompt_len or (256 if args.gpu else 32)
    response_len = args.response_len or (264 if args.gpu else 32)
    steps = args.steps or (10 if args.gpu else 5)

    from alignkit.data.collate import collate_pairs

    rows = make_pairs(args.pairs, 512 if not args.gpu else 151936, prompt_len, response_len, seed=0)
    batch = {k: v.to(device) for k, v in collate_pairs(rows, 0).items()}
    tokens = int(batch["attention_mask"].sum())  # real (non-pad) tokens in the 2B sequences of one step
    tok_dir = word_tokenizer_dir(512)
    results = {}
    for name in ("alignkit", "trl"):
        policy, ref = build_model(args.gpu, 0).train(), build_model(args.gpu, 1).eval()
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
        step = alignkit_step(policy, ref, optimizer, batch, 0.1) if name == "alignkit" else \
            trl_step(policy, ref, optimizer, rows, 0.1, device, tok_dir)
        reset_peak(device)
        seconds = timed(step, steps, warmup=1, device=device)
        results[name] = (tokens / seconds, peak_memory(device))
        del policy, ref, optimizer, step
        if device == "cuda":
            torch.cuda.empty_cache()
    print(f"device {device}, {args.pairs} pairs, {tokens} tokens per step, {steps} timed steps")
    for name, (tps, mem) in results.items():
        print(f"{name:9s} {tps:10.0f} tokens/s   peak memory {mem}")
    print(f"ratio alignkit / trl: {results['alignkit'][0] / results['trl'][0]:.2f}x tokens/s")
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"benchmark": "train_throughput", "device": device, "pairs": args.pairs, "tokens": tokens,
                       "steps": steps, "torch": torch.__version__,
                       "results": {k: {"tokens_per_s": v[0], "peak_memory": v[1]} for k, v in results.items()},
                       "ratio": results["alignkit"][0] / results["trl"][0]}, f, indent=2)


if __name__ == "__main__":
    main()
