"""Built-in evaluation metrics (diversity and quality). Definitions: docs/eval.md; formulas: alignkit.eval.*.

Each metric is computed per prompt over its samples (see the contract in `alignkit.eval`). No torch here.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from alignkit import hookimpl
from alignkit.eval import PromptSamples
from alignkit.eval import diversity as D
from alignkit.eval.quality import pass_at_k
from alignkit.registry import Metric


def _distinct(n: int, s: PromptSamples) -> float | None:
    return D.distinct_n(s.texts, n)


def _mean_tokens(s: PromptSamples) -> float | None:
    # Only when decode recorded every sample's token count: a partial mean would mix units.
    if not s.num_tokens or any(t is None for t in s.num_tokens):
        return None
    return float(np.mean(s.num_tokens))


def _reward(s: PromptSamples) -> float | None:
    return float(np.mean(s.rewards)) if s.rewards else None


def _pass_at(k: int | None, s: PromptSamples) -> float | None:
    if not s.rewards:
        return None
    n = len(s.rewards)
    correct = sum(r >= s.pass_threshold for r in s.rewards)
    return pass_at_k(n, correct, n if k is None else k)


def _embedding_distance(s: PromptSamples) -> float | None:
    return None if s.embeddings is None else D.mean_pairwise_cosine_distance(s.embeddings)


@hookimpl
def register_metrics(register):
    for n in (1, 2, 3):
        register(Metric(f"distinct-{n}", f"Unique {n}-grams / all {n}-grams over a prompt's samples (words).",
                        "diversity", True, partial(_distinct, n)))
    register(Metric("self-bleu", "Mean BLEU (0-100) of each sample against the prompt's other samples; "
                    "lower is more diverse.", "diversity", False, lambda s: D.self_bleu(s.texts)))
    register(Metric("compression-ratio", "Bytes of the joined samples / bytes of their gzip; lower is more "
                    "diverse.", "diversity", False, lambda s: D.compression_ratio(s.texts)))
    register(Metric("embedding-distance", "Mean pairwise cosine distance of the samples' sentence embeddings "
                    "(--embedder).", "diversity", True, _embedding_distance, needs=("embedder",)))
    register(Metric("mean-words", "Mean whitespace words per sample (descriptive).", "diversity", True,
                    lambda s: D.mean_words(s.texts)))
    register(Metric("mean-tokens", "Mean response tokens per sample, from decode's num_tokens (descriptive).",
                    "diversity", True, _mean_tokens))
    register(Metric("reward", "Mean reward of the samples (--reward).", "quality", True, _reward,
                    needs=("reward",)))
    register(Metric("pass@1", "Unbiased pass@1: chance one sample is correct (reward >= --pass-threshold).",
                    "quality", True, partial(_pass_at, 1), needs=("reward",)))
    register(Metric("pass@n", "Unbiased pass@n with n = the prompt's sample count: any sample correct.",
                    "quality", True, partial(_pass_at, None), needs=("reward",)))
