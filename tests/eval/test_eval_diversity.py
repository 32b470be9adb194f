"""Diversity measures on small fixtures whose values are worked out by hand in each docstring."""
import math

import numpy as np
import pytest

from alignkit.eval import diversity as D


def test_distinct_n_hand_computed():
    """Samples 'a b a' and 'a c'.
    unigrams: a b a a c -> 5, unique {a, b, c} = 3 -> 3/5.
    bigrams: (a b) (b a) | (a c) -> 3, all unique -> 1 (no bigram crosses the sample boundary).
    trigrams: (a b a) only -> 1/1.
    """
    samples = ["a b a", "a c"]
    assert D.distinct_n(samples, 1) == pytest.approx(3 / 5)
    assert D.distinct_n(samples, 2) == pytest.approx(1.0)
    assert D.distinct_n(samples, 3) == pytest.approx(1.0)
    assert D.distinct_n(["a b"], 3) is None  # no trigram at all


def test_identical_samples_give_minimum_and_disjoint_samples_maximum_diversity():
    """k=4 identical samples: every n-gram appears 4 times -> distinct-n = 1/4, self-BLEU = 100.
    Disjoint vocabularies: distinct-n = 1 and self-BLEU = 0 (no matching unigram)."""
    same = ["the cat sat on the mat"] * 4
    disjoint = ["one two three four", "five six seven eight", "nine ten eleven twelve", "a b c d"]
    assert D.distinct_n(same, 2) == pytest.approx(0.25)
    assert D.distinct_n(disjoint, 2) == pytest.approx(1.0)
    assert D.self_bleu(same) == pytest.approx(100.0)
    assert D.self_bleu(disjoint) == 0.0
    assert D.compression_ratio(same) > D.compression_ratio(disjoint)


def test_sentence_bleu_hand_computed():
    """hyp 'a b c d', ref 'a b c e': p1 = 3/4, p2 = 2/3 (ab, bc), p3 = 1/2 (abc), p4 = 0/1 -> exp smoothing
    p4 = 1/(2*1); same lengths so BP = 1. BLEU = 100 * (3/4 * 2/3 * 1/2 * 1/2)^(1/4) = 100 * (1/8)^(1/4)."""
    assert D.sentence_bleu("a b c d", ["a b c e"]) == pytest.approx(100 * (1 / 8) ** 0.25)
    # Brevity: hyp 'a b' vs ref 'a b c': p1 = 1, p2 = 1, effective order 2; BP = exp(1 - 3/2).
    assert D.sentence_bleu("a b", ["a b c"]) == pytest.approx(100 * math.exp(-0.5))


def test_self_bleu_hand_computed():
    """Samples s1='a b', s2='a b', s3='c d'. s1 vs {s2, s3}: exact copy of s2 -> 100; same for s2.
    s3 vs {s1, s2}: no shared unigram -> 0. Mean = 200/3."""
    assert D.self_bleu(["a b", "a b", "c d"]) == pytest.approx(200 / 3)
    assert D.self_bleu(["only one"]) is None


def test_self_bleu_agrees_with_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    samples = ["the cat sat on the mat today", "a cat sat on a mat", "the dog ran in the park today",
               "cat mat sat", "the the the cat", "on the mat the cat sat"]
    for i, hyp in enumerate(samples):
        refs = [s for j, s in enumerate(samples) if j != i]
        theirs = sacrebleu.sentence_bleu(hyp, refs, tokenize="none").score
        assert D.sentence_bleu(hyp, refs) == pytest.approx(theirs, abs=1e-9)
    expected = np.mean([sacrebleu.sentence_bleu(h, samples[:i] + samples[i + 1:], tokenize="none").score
                        for i, h in enumerate(samples)])
    assert D.self_bleu(samples) == pytest.approx(expected, abs=1e-9)


def test_compression_ratio_hand_computed():
    """gzip (level 9, mtime 0) = 10-byte header + deflate + 8-byte trailer. Deflate of a text too short to hold a
    3-byte match is one fixed-Huffman block: 3 header bits + 8 bits per literal (bytes 0-143) + 7-bit end code.
    'a' -> 18 bits = 3 bytes -> 21 bytes; ratio 1/21.
    ['a', 'a'] joined 'a\\na' -> 3 + 24 + 7 = 34 bits = 5 bytes -> 23; ratio 3/23.
    ['ab', 'ab'] joined 'ab\\nab' -> 3 + 40 + 7 = 50 bits = 7 bytes -> 25; ratio 5/25."""
    assert D.compression_ratio(["a"]) == pytest.approx(1 / 21)
    assert D.compression_ratio(["a", "a"]) == pytest.approx(3 / 23)
    assert D.compression_ratio(["ab", "ab"]) == pytest.approx(5 / 25)
    assert D.compression_ratio([""]) is None


def test_mean_pairwise_cosine_distance_hand_computed():
    """e1=(1,0), e2=(0,2), e3=(1,1): cos12 = 0, cos13 = 1/sqrt2, cos23 = 1/sqrt2.
    Mean distance = ((1-0) + 2 (1 - 1/sqrt2)) / 3."""
    e = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    assert D.mean_pairwise_cosine_distance(e) == pytest.approx((1 + 2 * (1 - 2 ** -0.5)) / 3)
    assert D.mean_pairwise_cosine_distance(np.ones((3, 4))) == pytest.approx(0.0)
    assert D.mean_pairwise_cosine_distance(np.ones((1, 4))) is None


def test_mean_words():
    assert D.mean_words(["a b c", "d"]) == pytest.approx(2.0)
