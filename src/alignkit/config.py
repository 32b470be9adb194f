"""Configuration: typed dataclasses, filled from defaults <- the model's defaults <- YAML (`--config FILE`) <-
explicit CLI flags.

One precedence, documented in docs/cli.md: a flag given on the command line wins over the same key in the YAML
file, which wins over the defaults the model's folder declares (`alignkit-model.json`, e.g. the toy models' learning
rate), which win over the dataclass default. YAML keys are the flag names with `_` or `-` (`max_steps` or
`max-steps`); an unknown key is an error naming the key, the file and the nearest known key.

Each command's options are a dataclass; every field becomes a `--flag` through `opt(...)` metadata, so a field adds
the flag, its YAML key and its `--print-config` line at once; plugins' option dataclasses work the same way. The
field and the resolution (`opt`, `build` and the checks) live in alignkit.options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from alignkit.model_info import MODEL_INFO, model_info
# the option machinery, re-exported: plugins and the CLI reach it as alignkit.config.opt, .build, .REQUIRED, ...
from alignkit.options import (REQUIRED, build, check_mode, check_options, check_ranges,  # noqa: F401
                              check_unknown, field_types, flag_name, mode_options, opt, plain, to_dict)
from alignkit.report_to import report_targets
from alignkit.yamlfile import dump_yaml, load_yaml  # noqa: F401 - the config's files: alignkit.config.load_yaml


def reserved_flags() -> set[str]:
    """Names an objective's options may not take: `train`'s own flags and the switches every command has."""
    return {f.name for f in dataclasses.fields(TrainConfig)} | {"config", "print_config"}


# ----------------------------------------------------------------------------------------------------------
# Command configs. Field order is the order in --help. Ranges (min/max closed, above/below open) are listed in
# docs/cli.md's Values table; tests/cli/test_values_doc.py keeps the two equal.

# Seeds are unsigned 32-bit as numpy's are; the sampler derives a generator seed as seed · 1,000,003 + batch, which
# must stay inside torch's 64-bit seed.
MAX_SEED = 2**32 - 1


@dataclass
class PrepareConfig:
    data: str = opt(REQUIRED, "Raw data: a .jsonl/.json/.parquet/.csv file, a save_to_disk folder, a Hub id, "
                    "or toy:prefs / toy:prompts.", argument=True)
    output: str = opt(REQUIRED, "Folder to write the prepared data set, manifest.json and rejects.jsonl.")
    model: str = opt("toy:instruct", "Model or tokenizer whose tokenizer (and chat template) to use.")
    format: str | None = opt(None, "Force a format instead of detecting it (alignkit plugins lists formats).")
    split: str = opt("train", "Split to read from a Hub id or a DatasetDict folder.")
    limit: int | None = opt(None, "Read at most this many rows.", min=0)
    template: str = opt("auto", "auto: chat template for conversational rows, plain text otherwise; "
                        "chat / plain force one.", choices=("auto", "chat", "plain"))
    max_length: int | None = opt(None, "Maximum prompt + response tokens.", min=1)
    max_prompt_length: int | None = opt(None, "Maximum prompt tokens (longer prompts keep their end).", min=1)
    truncation: str = opt("truncate", "Rows over the limits: truncate them (prompt keeps its end, response its "
                          "start) or reject them.", choices=("truncate", "reject"))
    num_proc: int = opt(1, "Worker processes for tokenization.", min=1)


# The default peak learning rate is TRL's (DPOConfig.learning_rate): a user's Hub model trained without
# --learning-rate must not get the toy world's rate, which would wreck it in a few steps. The toy models are 85k
# parameters and want a rate 300 times larger: their folders say so in alignkit-model.json (see model_defaults).
DEFAULT_LEARNING_RATE = 1e-6
ONEDNN_HELP = ("CPU fp32 linear layers' matmuls in oneDNN, not MKL (about 2x faster on AMD with AVX-512; the same "
               "numbers to float rounding): auto there only, on wherever torch has oneDNN, off: torch's F.linear.")


@dataclass
class TrainConfig:
    model: str = opt("toy:instruct", "Policy to train: a folder, a Hub id or toy:base / toy:instruct.")
    ref_model: str | None = opt(None, "Reference model (default: the starting policy).")
    data: str = opt("toy:prefs", "Preference data: a prepared folder, a raw file, a Hub id or toy:prefs.",
                    mode="pairwise")
    output: str = opt("runs/alignkit", "Output folder (model, tokenizer, alignkit.yaml, metrics.jsonl).")
    max_steps: int | None = opt(None, "Optimizer steps to run (overrides --epochs).", min=1)
    epochs: float = opt(3.0, "Passes over the training data.", above=0)
    batch_size: int = opt(8, "Pairs (or prompts, online) per micro-batch.", min=1)
    grad_accum: int = opt(1, "Micro-batches accumulated per optimizer step.", min=1)
    learning_rate: float = opt(DEFAULT_LEARNING_RATE, "Peak learning rate for AdamW (TRL's DPOConfig default; a "
                               "model folder may set its own, e.g. the toy models' 3e-4: --print-config shows it; 0 "
                               "measures without moving).", min=0)
    lr_schedule: str = opt("linear", "Learning-rate schedule after warm-up.",
                           choices=("constant", "linear", "cosine"))
    warmup_steps: int = opt(0, "Linear warm-up steps.", min=0)
    weight_decay: float = opt(0.0, "AdamW weight decay.", min=0)
    max_grad_norm: float = opt(1.0, "Clip the gradient norm to this (0 disables).", min=0)
    step_in_backward: bool = opt(True, "Without clipping (--max-grad-norm 0) or --grad-accum, on one process: step "
                                 "each parameter as its gradient completes and free it (less memory, the same "
                                 "update); --no-step-in-backward steps after the backward.")
    sparse_embedding_grad: bool = opt(True, "Where the input embedding is the LM head's weight (tied) and "
                                      "parameters are whole (not FSDP/DeepSpeed): add the lookup's gradient row by "
                                      "row into the LM head's instead of as a dense vocabulary-sized tensor (less "
                                      "peak memory, the same gradient); --no-sparse-embedding-grad builds it densely.")
    release_memory: bool = opt(False, "On the CPU (glibc): hand freed heap pages back to the system during each "
                               "backward, a lower peak RSS for ~10-15% more time a step (the same numbers).")
    onednn: str = opt("auto", ONEDNN_HELP, choices=("auto", "on", "off"))
    save_steps: int = opt(0, "Write a checkpoint every N steps (0: only at the end).", min=0)
    eval_split: float = opt(0.0, "Fraction of the data held out for evaluation.", mode="pairwise", min=0,
                             below=1)
    eval_steps: int = opt(0, "Evaluate on the held-out split every N steps (0: at the end only).", mode="pairwise",
                          min=0)
    logging_steps: int = opt(1, "Write metrics every N steps.", min=1)
    resume: bool = opt(False, "Resume from the newest checkpoint in --output (refused if it is another run's).")
    overwrite: bool = opt(False, "Replace the run --output holds (its checkpoints and metrics) with a new one.")
    seed: int = opt(0, "Random seed.", min=0, max=MAX_SEED)
    dtype: str = opt("auto", "Parameter dtype.", choices=("auto", "bf16", "fp32"))
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps.")
    ref_mode: str = opt("precompute", "Reference log-probs of the pairs: computed once before training, or at "
                        "every step.", choices=("precompute", "per-step"), mode="pairwise")
    shared_prompt: bool = opt(True, "Compute each prompt once for the responses that share it (a pair, an online "
                              "group); --no-shared-prompt runs the plain twins (TRL's layout; online, a prefill per "
                              "sample, torch.multinomial draws and the model's forward for every decode step).")
    fused_head: bool = opt(True, "With the shared-prompt forward and a plain fp32 LM head: the log-probs from the "
                           "final hidden states, in place in the head's output (the same numbers to rounding); "
                           "--no-fused-head takes them from the model's logits.")
    max_length: int | None = opt(None, "Maximum prompt + response tokens when preparing raw data.", mode="pairwise",
                                 min=1)
    max_prompt_length: int | None = opt(None, "Maximum prompt tokens when preparing raw data.", mode="pairwise",
                                        min=1)
    lora: bool = opt(False, "Train a LoRA adapter; the reference is the model with the adapter disabled.")
    lora_rank: int = opt(16, "LoRA rank.", min=1)
    lora_alpha: float = opt(32.0, "LoRA alpha.", above=0)
    lora_dropout: float = opt(0.0, "LoRA dropout.", min=0, below=1)
    lora_target_modules: str = opt("all-linear", "Comma-separated module names, or all-linear.")
    online: bool = opt(False, "Online training: sample from the policy and score with --reward.")
    prompts: str = opt("toy:prompts", "Prompts for online training: a file, a prepared folder or toy:prompts.",
                       mode="online")
    reward: str = opt("toy", "Reward source for online training: toy, module:function, or a reward model path.",
                      mode="online")
    group_size: int = opt(8, "Samples per prompt in online training.", mode="online", min=2)
    max_new_tokens: int = opt(64, "Maximum tokens sampled per completion in online training.", mode="online",
                              min=1)
    temperature: float = opt(1.0, "Sampling temperature in online training (not 0: a greedy group is one "
                              "completion repeated, which has no advantage to learn from).", mode="online", above=0)
    report_to: list[str] = opt(["none"], "Also log metrics.jsonl's lines to tensorboard, wandb or trackio "
                               "(comma-separated or repeated; all: every one installed; none: only "
                               "metrics.jsonl), as transformers' report_to.", metavar="BACKEND")

    def __post_init__(self) -> None:
        # Resolved here, before anything is loaded: a missing logger package is one line, not a failure after the
        # model has loaded and the reference log-probs are computed. alignkit.yaml keeps the resolved list.
        self.report_to = report_targets(self.report_to)


@dataclass
class DecodeConfig:
    model: str = opt("toy:instruct", "Model to sample from: a folder, a Hub id or toy:instruct.")
    prompts: str = opt("toy:prompts", "Prompts: a .jsonl/.json/.csv/.parquet file, a prepared folder or toy:prompts.")
    output: str = opt("generations.jsonl", "JSONL file to write (an interrupted run resumes into it).")
    num_samples: int = opt(1, "Samples per prompt.", min=1)
    max_new_tokens: int = opt(128, "Maximum new tokens per sample.", min=1)
    temperature: float = opt(1.0, "Sampling temperature (0: greedy, the most likely token).", min=0)
    top_k: int = opt(0, "Keep the k most likely tokens (0: off).", min=0)
    top_p: float = opt(1.0, "Nucleus: keep the smallest set with this much probability (1: off).", above=0, max=1)
    min_p: float = opt(0.0, "Keep tokens with at least min_p times the top probability (0: off).", min=0, max=1)
    stop: list[str] | None = opt(None, "Stop string (repeatable).")
    template: str = opt("auto", "auto: chat template for message-list prompts, plain text for strings; "
                        "chat / plain force one.",
                        choices=("auto", "chat", "plain"))
    batch_size: int | None = opt(None, "Sequences sampled together (default: as many as fit --batch-tokens).", min=1)
    batch_tokens: int = opt(16384, "Without --batch-size: rows x (longest prompt + max new tokens) per batch.", min=1)
    seed: int = opt(0, "Random seed (same seed, same outputs on CPU, whatever the batch layout).", min=0, max=MAX_SEED)
    dtype: str = opt("auto", "Parameter dtype.", choices=("auto", "bf16", "fp32"))
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps.")
    exact: bool = opt(False, "Instead of sampling, write the exact expected reward, entropy, KL and length of the "
                      "distribution this command samples from (a toy-world model), as JSON to --output.")
    overwrite: bool = opt(False, "Replace --output if another decode run wrote it (the old file stays until the "
                          "new one is complete).")
    plain_sampling: bool = opt(False, "Slow reference path: no shared prompt prefill, torch.multinomial draws, the "
                                "model's forward for every decode step.")
    onednn: str = opt("auto", ONEDNN_HELP, choices=("auto", "on", "off"))


@dataclass
class EvalConfig:
    generations: list[str] | None = opt(None, "generations.jsonl files from decode (or {prompt, text} JSONL).",
                                        argument=True)
    output: str = opt("eval", "Folder for report.json, report.md and plots.")
    metrics: str | None = opt(None, "Comma-separated metric names (default: all that apply).")
    reward: str | None = opt(None, "Reward source for quality: toy, module:function, or a reward model path.")
    embedder: str | None = opt(None, "Sentence encoder folder or Hub id for embedding diversity.")
    model: str | None = opt(None, "Model to decode first when no generations are given (or for --exact).")
    ref_model: str | None = opt(None, "Reference model for the exact KL (default: the world's own, toy:base for "
                                "the toy world).")
    exact: bool = opt(False, "Exact toy-world evaluation of --model by enumerating every response.")
    pass_threshold: float = opt(1.0, "A reward at or above this counts as correct for pass@k.")
    num_samples: int = opt(8, "Samples per prompt when --model is decoded first.", min=1)
    bootstrap: int = opt(1000, "Bootstrap resamples for confidence intervals (0: none).", min=0)
    seed: int = opt(0, "Random seed.", min=0, max=MAX_SEED)


# ----------------------------------------------------------------------------------------------------------
# What a model folder says about its training defaults (alignkit.model_info reads the file)


def model_defaults(spec: str, online: bool) -> dict[str, Any]:
    """TrainConfig defaults the model declares: its "train" defaults, then (online) its "train --online" ones."""
    defaults = model_info(spec).get("defaults", {})
    values = dict(defaults.get("train", {}))
    if online:
        values.update(defaults.get("train --online", {}))
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    check_unknown(values, known, f"the defaults of model '{spec}' ({MODEL_INFO})")
    return values



@dataclass
class FrontierConfig:
    spec: str = opt(REQUIRED, "Frontier spec: a YAML file of model, data, eval and methods with their sweeps "
                    "(docs/frontier.md).", argument=True)
    output: str = opt("frontier", "Folder for frontier.json, frontier.md, frontier.png and runs/ (one folder per "
                      "point; a rerun reuses finished points).")
    jobs: int = opt(1, "Points computed at once, each in its own processes (on 2 cores: --jobs 2).", min=1)
    dry_run: bool = opt(False, "Print every point's commands and whether it would be reused; run nothing.")
