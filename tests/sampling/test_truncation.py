"""`sample` decoder: empirical token frequencies match the analytic truncated distribution (chi-square).

The mock model always predicts P below. Each test draws N tokens in one batched step at a fixed seed, checks that
no token outside the analytic support appears, and that Pearson's statistic over the support stays below the
chi-square 0.999 quantile for its degrees of freedom (hardcoded: scipy is not a dependency).
"""
import pytest
import torch
from sampling_helpers import FakeTokenizer, FixedModel

from alignkit.engine.distributions import SampleDecoder, min_p_filter, top_k_filter, top_p_filter
from alignkit.engine.sample import SamplingSettings, make_generator, sample_batch

P = [0.02, 0.30, 0.20, 0.15, 0.12, 0.10, 0.06, 0.05]  # token 0 is EOS
N = 20000
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322}


def draw(models, decoder, settings, n=N, seed=0):
    """n one-token samples from the same prompt -> counts per token id."""
    out = sample_batch(models, FakeTokenizer(), [[1, 2]] * n, decoder, settings, max_new_tokens=1,
                       generator=make_generator(seed, 0, torch.device("cpu")))
    counts = [0] * len(P)
    for ids in out.token_ids:
        counts[ids[0]] += 1
    return counts, out


def assert_matches(counts, expected):
    """expected: analytic probabilities (0 outside the support)."""
    n = sum(counts)
    outside = [v for v, q in enumerate(expected) if q == 0 and counts[v]]
    assert not outside, f"sampled tokens {outside} outside the support"
    support = [v for v, q in enumerate(expected) if q > 0]
    stat = sum((counts[v] - n * expected[v]) ** 2 / (n * expected[v]) for v in support)
    assert stat < CHI2_999[len(support) - 1], (stat, counts, expected)


def normalised(weights):
    total = sum(weights)
    return [w / total for w in weights]


@pytest.mark.parametrize("settings, expected", [
    (SamplingSettings(), P),
    # temperature 0.5 squares the probabilities
    (SamplingSettings(temperature=0.5), normalised([p ** 2 for p in P])),
    # top-k 3: the three likeliest tokens 1, 2, 3
    (SamplingSettings(top_k=3), normalised([0, .30, .20, .15, 0, 0, 0, 0])),
    # top-p 0.7: mass before each sorted token 0, .30, .50, .65, .77 -> keep while < .7: tokens 1..4
    (SamplingSettings(top_p=0.7), normalised([0, .30, .20, .15, .12, 0, 0, 0])),
    # min-p 0.3: threshold 0.3 * 0.30 = 0.09 -> tokens 1..5
    (SamplingSettings(min_p=0.3), normalised([0, .30, .20, .15, .12, .10, 0, 0])),
    # top-k 4 then top-p 0.8 on the renormalised top-4 (.39, .26, .19, .16: mass before .39, .65, .84)
    (SamplingSettings(top_k=4, top_p=0.8), normalised([0, .30, .20, .15, 0, 0, 0, 0])),
], ids=["plain", "temperature", "top_k", "top_p", "min_p", "top_k+top_p"])
def test_sample_frequencies_match_truncated_distribution(settings, expected):
    counts, out = draw({"policy": FixedModel(P)}, SampleDecoder(), settings)
    assert_matches(counts, expected)
    # the reported log-prob is the sampled token's log-prob under the truncated distribution
    token = out.token_ids[0][0]
    assert out.logprobs[0] == pytest.approx(torch.tensor(expected[token]).log().item(), abs=1e-5)


def test_chi_square_check_rejects_the_untruncated_distribution():
    # guards the test itself: top-p 0.7 frequencies are far from plain P restricted to tokens 1..4
    counts, _ = draw({"policy": FixedModel(P)}, SampleDecoder(), SamplingSettings(top_p=0.7))
    with pytest.raises(AssertionError):
        assert_matches(counts, normalised([0, .30, .20, .15, .12, .10, 0, 0]))


def test_filters_on_known_rows():
    lp = torch.tensor([P]).log()
    assert top_k_filter(lp, 2).exp().tolist()[0][:3] == pytest.approx([0, .6, .4])
    assert top_p_filter(lp, 0.29).isfinite().tolist()[0] == [False, True] + [False] * 6  # top token alone
    assert top_p_filter(lp, 1.0) is lp and top_k_filter(lp, 0) is lp and min_p_filter(lp, 0) is lp
    assert min_p_filter(lp, 0.6).isfinite().sum().item() == 2  # 0.30 and 0.20 >= 0.18


def test_eos_and_length_finish_reasons_and_logprob_sum():
    # EOS has probability 0.02 per step: over 300 rows x 5 steps some rows end on EOS, the rest hit the length
    out = sample_batch({"policy": FixedModel(P)}, FakeTokenizer(), [[1]] * 300, SampleDecoder(),
                       SamplingSettings(), max_new_tokens=5, generator=make_generator(3, 0, "cpu"))
    assert {"eos", "length"} == set(out.finish_reasons)
    for ids, reason, logprob, text in zip(out.token_ids, out.finish_reasons, out.logprobs, out.texts):
        assert (ids[-1] == 0) == (reason == "eos") and 0 not in ids[:-1]
        assert len(ids) == 5 or reason == "eos"
        assert logprob == pytest.approx(sum(torch.tensor(P[i]).log().item() for i in ids), abs=1e-4)
        assert text == "".join(chr(96 + i) for i in ids if i)


def test_stop_string_ends_the_row_and_is_cut_from_the_text():
    # only tokens 1 ('a') and 2 ('b'); stop at "ba"
    model = FixedModel([0.0, 0.5, 0.5])
    out = sample_batch({"policy": model}, FakeTokenizer(), [[1]] * 50, SampleDecoder(), SamplingSettings(),
                       max_new_tokens=12, stop=["ba"], generator=make_generator(0, 0, "cpu"))
    for ids, reason, text in zip(out.token_ids, out.finish_reasons, out.texts):
        full = "".join(chr(96 + i) for i in ids)
        if reason == "stop":
            assert full.endswith("ba") and "ba" not in full[:-1] and text == full[:-2]
        else:
            assert reason == "length" and len(ids) == 12 and "ba" not in full and text == full
    assert out.finish_reasons.count("stop") > 40  # P(no "ba" in 12 tokens) is 13/4096 per row


def test_same_seed_same_samples_other_seed_others():
    a = draw({"policy": FixedModel(P)}, SampleDecoder(), SamplingSettings(), n=200, seed=5)[1].token_ids
    b = draw({"policy": FixedModel(P)}, SampleDecoder(), SamplingSettings(), n=200, seed=5)[1].token_ids
    c = draw({"policy": FixedModel(P)}, SampleDecoder(), SamplingSettings(), n=200, seed=6)[1].token_ids
    assert a == b and a != c
