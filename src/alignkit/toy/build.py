"""Builds the toy world's artifacts, deterministically from a seed, on one CPU thread in about a minute.

    python -m alignkit.toy.build [--seed 0] [--out src/alignkit/toy/artifacts]

Writes, under --out: base/ and instruct/ (tokenizer + Llama model folders, each loadable with
AutoTokenizer / AutoModelForCausalLM.from_pretrained), prefs.jsonl (TRL standard pairs) and prefs-onpolicy.jsonl
(on-policy pairs, drawn from instruct alone), prompts.jsonl (prompt-only rows), world.json (the world as data) and
report.json (exact evaluation of both models, pair statistics).

    python -m alignkit.toy.build --pairs-only     rewrites the two pair files from the shipped models (seconds)

Steps: (1) a word-level tokenizer over the world's 36 words; (2) a 2-layer Llama initialised from the seed;
(3) base = maximum likelihood on samples of a broad distribution over all 880 responses per prompt, poor ones
included; (4) instruct = base fine-tuned on good responses (reward ≥ 0.7, weighted by reward); (5) preference
pairs: two different responses sampled from base (3/4) or instruct (1/4), labelled by a Bradley–Terry draw on
the true reward; the on-policy set draws both responses from instruct. Step (5) is `make_pairs`, a function of the
two models and the seed alone, so that it can be checked for determinism without retraining.
"""
from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path
from typing import Any

from alignkit.toy import NAMES, reward, world

DEFAULT_OUT = Path(__file__).parent / "artifacts"
BT_SCALE = 10.0  # P(y1 ≻ y2) = σ(BT_SCALE · (r1 − r2))
N_PAIRS = 2000
BASE_SHARE = 0.75  # share of toy:prefs pairs sampled from the base model (the rest from instruct)
# The pair sets: toy name (its file is toy.NAMES[name]) -> share of pairs drawn from base. toy:prefs-onpolicy
# draws every pair from toy:instruct, the model training starts from, as on-policy data comes from the SFT model.
PAIR_SETS = {"toy:prefs": BASE_SHARE, "toy:prefs-onpolicy": 0.0}
# What each toy model folder says about itself (alignkit-model.json, read by alignkit.model_info): it is a
# model of the toy world (exact evaluation applies), and the toy models want training defaults of their own: they
# are 85k parameters, so TRL's learning rate of 1e-6 would not move them; online, 400 constant-rate steps of
# 16-token samples let a --min-reward target anywhere between toy:base's 0.34 and toy:instruct's 0.80 be reached
# (measured: targets 0.5 and 0.7 from toy:base end at exact E[r] 0.488 and 0.706; 3 epochs over 8 prompts would
# be 3 steps).
MODEL_INFO = {"world": "toy", "defaults": {
    "train": {"learning_rate": 0.0003},
    "train --online": {"max_steps": 400, "learning_rate": 0.0005, "lr_schedule": "constant", "max_new_tokens": 16}}}
MODEL_SIZE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=32)


def make_tokenizer() -> Any:
    """A word-level PreTrainedTokenizerFast: whitespace split, <pad>=0, <eos>=1, no BOS added, a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(world.vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=world.UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=world.PAD, eos_token=world.EOS, bos_token=world.BOS,
        unk_token=world.UNK, chat_template=world.CHAT_TEMPLATE, model_max_length=MODEL_SIZE[
            "max_position_embeddings"],
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(world.ROLE_TOKENS)})
    return tokenizer


def make_model(tokenizer: Any, seed: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, **MODEL_SIZE)
    return LlamaForCausalLM(config)


def base_distribution(prompt: str) -> list[float]:
    """The broad distribution the base model imitates, over world.responses(prompt).

    Opener 50/50; tail lengths 0, 1, 3, 5 words with probability .4, .2, .2, .2; one or two adjectives 50/50,
    drawn independently; each adjective is on topic (uniform over the thing's QUALITY entries) with probability
    .2 without a tail and .9 with one, else off topic (uniform over the rest). Verbose answers are thus more often
    on topic, as in much real preference data: this is the length trap.
    """
    fitting = world.QUALITY[world.thing_of(prompt)]
    tail_p = dict(zip(world.TAILS, (0.4, 0.2, 0.2, 0.2)))
    weights = []
    for y in world.responses(prompt):
        opener, adjectives, tail = world.parse(y)
        on_topic = 0.9 if tail else 0.2
        w = 0.5 * tail_p[tail] * 0.5
        for a in adjectives:
            w *= on_topic / len(fitting) if a in fitting else (1 - on_topic) / (len(world.ADJECTIVES) - len(fitting))
        weights.append(w)
    total = sum(weights)
    return [w / total for w in weights]


def sft_distribution(prompt: str) -> list[float]:
    """Good responses only (reward ≥ 0.7), weighted by reward: the instruct model's fine-tuning data."""
    rewards = [reward.score(prompt, y) for y in world.responses(prompt)]
    weights = [r if r >= 0.7 else 0.0 for r in rewards]
    total = sum(weights)
    return [w / total for w in weights]


def train(model: Any, tokenizer: Any, targets: dict[str, list[float]], steps: int, lr: float, seed: int,
          batch_size: int = 128) -> list[float]:
    """Maximum likelihood on (prompt, response) pairs sampled from `targets` (prompt -> weights over responses).

    Returns the loss per step. Loss = mean over response tokens (EOS included) of −log p; prompt tokens are
    masked out with -100, as in SFT.
    """
    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    prompts = list(targets)
    encoded = {p: world.encode(tokenizer, p, world.responses(p)) for p in prompts}
    prompt_ids = {p: encoded[p][0] for p in prompts}
    response_ids = {p: encoded[p][1] for p in prompts}
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        rows = []
        for _ in range(batch_size):
            p = rng.choice(prompts)
            (r,) = rng.choices(response_ids[p], weights=targets[p])
            rows.append((prompt_ids[p], r))
        width = max(len(a) + len(b) for a, b in rows)
        ids = torch.full((batch_size, width), tokenizer.pad_token_id)  # (B, T) right-padded
        labels = torch.full((batch_size, width), -100)
        mask = torch.zeros(batch_size, width, dtype=torch.long)
        for i, (a, b) in enumerate(rows):
            ids[i, :len(a) + len(b)] = torch.tensor(a + b)
            labels[i, len(a):len(a) + len(b)] = torch.tensor(b)
            mask[i, :len(a) + len(b)] = 1
        lr_now = lr * 0.5 * (1 + math.cos(math.pi * step / steps))  # cosine decay to 0
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def make_pairs(base: Any, instruct: Any, tokenizer: Any, seed: int, n: int = N_PAIRS,
               base_share: float = BASE_SHARE) -> list[dict[str, str]]:
    """n preference pairs {"prompt", "chosen", "rejected"}; deterministic given the models and the seed."""
    return draw_pairs(pair_distributions(base, instruct, tokenizer), seed, n, base_share)


def pair_distributions(base: Any, instruct: Any, tokenizer: Any) -> dict[tuple[str, str], list[float]]:
    """(model name, prompt) -> that model's exact distribution over the prompt's enumerated responses."""
    from alignkit.toy.exact import sequence_distribution

    return {(name, p): sequence_distribution(model, tokenizer, p)["logprobs"].exp().tolist()
            for name, model in (("base", base), ("instruct", instruct)) for p in world.PROMPTS}


def draw_pairs(dists: dict[tuple[str, str], list[float]], seed: int, n: int = N_PAIRS,
               base_share: float = BASE_SHARE) -> list[dict[str, str]]:
    """Each pair: a prompt uniformly, a model (base with probability base_share, else instruct), two different
    responses drawn from that model's distribution in `dists`, labelled by a Bradley–Terry draw on the true reward.
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = rng.choice(world.PROMPTS)
        weights = dists["base" if rng.random() < base_share else "instruct", prompt]
        y1, y2 = rng.choices(world.responses(prompt), weights=weights, k=2)
        while y2 == y1:
            (y2,) = rng.choices(world.responses(prompt), weights=weights)
        r1, r2 = reward.score(prompt, y1), reward.score(prompt, y2)
        y1_wins = rng.random() < 1.0 / (1.0 + math.exp(-BT_SCALE * (r1 - r2)))
        chosen, rejected = (y1, y2) if y1_wins else (y2, y1)
        rows.append({"prompt": prompt, "chosen": world.SEPARATOR + chosen, "rejected": world.SEPARATOR + rejected})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def pair_statistics(pairs: list[dict[str, str]]) -> dict[str, float]:
    """Length and label statistics of a pair set (docs/toy-world.md, "The length trap")."""
    def words(y: str) -> int:
        return len(y.split())

    n = len(pairs)
    return {
        "n": n,
        "mean_words_chosen": sum(words(r["chosen"]) for r in pairs) / n,
        "mean_words_rejected": sum(words(r["rejected"]) for r in pairs) / n,
        "chosen_longer": sum(words(r["chosen"]) > words(r["rejected"]) for r in pairs) / n,
        "chosen_shorter": sum(words(r["chosen"]) < words(r["rejected"]) for r in pairs) / n,
        "label_agrees_with_reward": sum(
            reward.score(r["prompt"], r["chosen"]) >= reward.score(r["prompt"], r["rejected"]) for r in pairs) / n,
    }


def write_pairs(out: Path, base: Any, instruct: Any, tokenizer: Any, seed: int) -> dict[str, dict[str, float]]:
    """Writes every PAIR_SETS file under `out`; returns their statistics by toy name."""
    dists = pair_distributions(base, instruct, tokenizer)  # once: the sets differ only in the draws
    stats = {}
    for name, base_share in PAIR_SETS.items():
        pairs = draw_pairs(dists, seed, base_share=base_share)
        _write_jsonl(out / NAMES[name], pairs)
        stats[name] = pair_statistics(pairs)
    return stats


def load_built(out: Path) -> tuple[Any, Any, Any]:
    """(base, instruct, tokenizer) from a built artifacts folder, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(out / "base").eval(),
            AutoModelForCausalLM.from_pretrained(out / "instruct").eval(), AutoTokenizer.from_pretrained(out / "base"))


def rewrite_pairs(out: Path = DEFAULT_OUT, seed: int = 0) -> dict[str, Any]:
    """--pairs-only: the pair files (and the report's pair statistics) from the models already built under `out`."""
    import torch

    torch.set_num_threads(1)
    base, instruct, tokenizer = load_built(out)
    stats = write_pairs(out, base, instruct, tokenizer, seed)
    report = json.loads((out / "report.json").read_text())
    report["pairs"] = stats
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def build(out: Path = DEFAULT_OUT, seed: int = 0, base_steps: int = 1500, sft_steps: int = 300) -> dict[str, Any]:
    """Builds every artifact under `out`; returns the report (exact evaluation, pair statistics, sizes)."""
    import torch

    from alignkit.toy.exact import exact_evaluate

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer()

    model = make_model(tokenizer, seed)
    base_losses = train(model, tokenizer, {p: base_distribution(p) for p in world.PROMPTS}, base_steps,
                        lr=3e-3, seed=seed)
    for name in ("base", "instruct"):
        if name == "instruct":
            sft_losses = train(model, tokenizer, {p: sft_distribution(p) for p in world.PROMPTS}, sft_steps,
                               lr=1e-3, seed=seed + 1)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
        (out / name / "alignkit-model.json").write_text(json.dumps(MODEL_INFO, indent=1) + "\n")

    base, instruct, _ = load_built(out)
    pair_stats = write_pairs(out, base, instruct, tokenizer, seed)
    _write_jsonl(out / "prompts.jsonl", [{"prompt": p} for p in world.PROMPTS])
    (out / "world.json").write_text(json.dumps(world.describe(), indent=1) + "\n")

    report = {
        "seed": seed,
        "final_loss": {"base": base_losses[-1], "instruct": sft_losses[-1]},
        "exact": {"base": exact_evaluate(base, tokenizer)["mean"],
                  "instruct": exact_evaluate(instruct, tokenizer, ref_model=base)["mean"]},
        "pairs": pair_stats,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    report["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--pairs-only", action="store_true",
                        help="rewrite only the pair files, from the models already under --out")
    args = parser.parse_args()
    report = rewrite_pairs(args.out, args.seed) if args.pairs_only else build(args.out, args.seed)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
