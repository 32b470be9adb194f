"""Diversity measures over one prompt's samples: pure functions of strings (and embeddings), no torch.

Every function here takes the list of a prompt's samples and returns one float (or None when the measure is
undefined for that many samples). Tokens are whitespace-separated words (`str.split()`), so the numbers do not
depend on any model's tokenizer and files from different models compare directly.
"""
from __future__ import annotations

import gzip
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

BLEU_MAX_ORDER = 4


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(samples: Sequence[str], n: int) -> float | None:
    """Unique n-grams / all n-grams, pooled over the samples (n-grams never cross a sample boundary).

    1.0 when no n-gram repeats anywhere; 1/k when k samples are identical. None when there is no n-gram at all.
    """
    pooled = [g for s in samples for g in ngrams(s.split(), n)]
    return len(set(pooled)) / len(pooled) if pooled else None


def sentence_bleu(hypothesis: str, references: Sequence[str]) -> float:
    """Sentence BLEU in [0, 100] on whitespace tokens, matching sacrebleu's `sentence_bleu` with
    `tokenize='none'` (defaults otherwise: 4-grams, 'exp' smoothing, effective order, closest reference length).

    BLEU = BP · exp(mean_{n ≤ N'} log p_n), p_n = clipped matching n-grams / hypothesis n-grams, clipped by the
    largest count of that n-gram in any one reference; BP = exp(1 − r/c) when c < r (c hypothesis length, r the
    closest reference length, ties to the shorter). 'exp' smoothing: the m-th order with no match gets
    p_n = 1 / (2^m · total_n). N' (effective order) stops at the first order with no hypothesis n-grams.
    """
    hyp = hypothesis.split()
    refs = [r.split() for r in references]
    max_ref: Counter = Counter()
    for ref in refs:
        for n in range(1, BLEU_MAX_ORDER + 1):
            for gram, count in Counter(ngrams(ref, n)).items():
                max_ref[gram] = max(max_ref[gram], count)
    correct, total = [], []
    for n in range(1, BLEU_MAX_ORDER + 1):
        counts = Counter(ngrams(hyp, n))
        correct.append(sum(min(c, max_ref[g]) for g, c in counts.items()))
        total.append(max(len(hyp) - n + 1, 0))
    if not any(correct):
        return 0.0
    c = len(hyp)
    r = min((abs(c - len(ref)), len(ref)) for ref in refs)[1] if refs else 0  # closest, ties to shorter
    bp = 1.0 if c >= r else (math.exp(1 - r / c) if c > 0 else 0.0)
    log_sum, order, halvings = 0.0, 0, 0
    for n in range(BLEU_MAX_ORDER):
        if total[n] == 0:
            break
        order = n + 1
        if correct[n] == 0:
            halvings += 1
            p = 1.0 / (2 ** halvings * total[n])
        else:
            p = correct[n] / total[n]
        log_sum += math.log(p)
    return 100.0 * bp * math.exp(log_sum / order)


def self_bleu(samples: Sequence[str]) -> float | None:
    """Mean over samples of the BLEU of each sample against all the others as references (0–100).

    Lower is more diverse: 100 when every sample is identical, 0 when no two share a word. None for < 2 samples.
    """
    if len(samples) < 2:
        return None
    scores = [sentence_bleu(s, [o for j, o in enumerate(samples) if j != i]) for i, s in enumerate(samples)]
    return float(np.mean(scores))


def compression_ratio(samples: Sequence[str]) -> float | None:
    """Bytes of the samples joined with '\\n' (UTF-8) / bytes of their gzip (level 9, mtime 0).

    As in Shaib et al. 2024 (arXiv:2403.00553v2): higher means more repetition, so lower is more diverse. gzip adds
    18 bytes of header and trailer, so short texts give ratios below 1; compare files at the same samples per prompt.
    """
    data = "\n".join(samples).encode("utf-8")
    if not data:
        return None
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))


def mean_words(samples: Sequence[str]) -> float | None:
    return float(np.mean([len(s.split()) for s in samples])) if samples else None


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float | None:
    """Mean over pairs i < j of 1 − cos(e_i, e_j) for the (k, d) embeddings of k samples; None for k < 2.

    0 when every sample embeds to the same direction; grows as meanings spread (at most 2).
    """
    k = len(embeddings)
    if k < 2:
        return None
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T  # (k, k)
    upper = np.triu_indices(k, 1)
    return float(np.mean(1.0 - cos[upper]))
