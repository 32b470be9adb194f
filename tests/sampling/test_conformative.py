"""Conformative decoding: w = 0 is plain sampling token for token; w = 1 on the mixed set is the base model;
0 < w < 1 matches the analytic mixture renormalised on the truncated set; mismatched vocabularies are refused."""
import pytest
from sampling_helpers import FixedModel, tiny_tokenizer
from test_truncation import P, assert_matches, draw, normalised

from alignkit.engine.distributions import SampleDecoder
from alignkit.engine.sample import SamplingSettings, check_vocabularies, encode_prompts, sample
from alignkit.errors import UserError
from alignkit_conformative import ConformativeOptions
from alignkit_conformative.decoder import ConformativeDecoder

BASE = [0.02, 0.05, 0.05, 0.10, 0.10, 0.18, 0.25, 0.25]


def conformative(weight, mix="prob", truncate_on="instruct"):
    return ConformativeDecoder(ConformativeOptions(base_model="unused", weight=weight, mix=mix,
                                                   truncate_on=truncate_on))


def mock_pair():
    return {"policy": FixedModel(P), "base": FixedModel(BASE)}


@pytest.mark.parametrize("mix", ["prob", "logprob"])
@pytest.mark.parametrize("truncate_on", ["instruct", "mixed"])
def test_weight_zero_reproduces_plain_sampling_token_for_token(llamas, tokenizer, mix, truncate_on):
    instruct, base = llamas
    ids = encode_prompts(tokenizer, ["what is 2+2?", "a", "hello there"]) * 3
    settings = SamplingSettings(temperature=0.9, top_p=0.8, top_k=20)
    plain = sample({"policy": instruct}, tokenizer, ids, SampleDecoder(), settings, max_new_tokens=12, seed=7,
                   batch_size=5)
    mixed = sample({"policy": instruct, "base": base}, tokenizer, ids, conformative(0.0, mix, truncate_on),
                   settings, max_new_tokens=12, seed=7, batch_size=5)
    assert mixed.token_ids == plain.token_ids
    assert mixed.logprobs == plain.logprobs
    # and the base model does change things once it has weight
    other = sample({"policy": instruct, "base": base}, tokenizer, ids, conformative(0.5, mix, truncate_on),
                   settings, max_new_tokens=12, seed=7, batch_size=5)
    assert other.token_ids != plain.token_ids


def test_weight_one_on_the_mixed_set_samples_the_base_model():
    # base top-p 0.8: sorted .25 .25 .18 .10 .10 (mass before .78 < .8) | .05 -> tokens 3..7
    counts, _ = draw(mock_pair(), conformative(1.0, truncate_on="mixed"), SamplingSettings(top_p=0.8))
    assert_matches(counts, normalised([0, 0, 0, .10, .10, .18, .25, .25]))


@pytest.mark.parametrize("weight", [0.3, 0.7])
def test_prob_mixture_on_the_instruct_nucleus(weight):
    # instruct top-p 0.7 keeps tokens 1..4; the mixture (1-w) P + w BASE is renormalised on them
    counts, _ = draw(mock_pair(), conformative(weight), SamplingSettings(top_p=0.7))
    expected = [(1 - weight) * p + weight * b if 1 <= v <= 4 else 0 for v, (p, b) in enumerate(zip(P, BASE))]
    assert_matches(counts, normalised(expected))


def test_logprob_mixture_on_the_instruct_nucleus():
    w = 0.5
    counts, _ = draw(mock_pair(), conformative(w, mix="logprob"), SamplingSettings(top_p=0.7))
    expected = [p ** (1 - w) * b ** w if 1 <= v <= 4 else 0 for v, (p, b) in enumerate(zip(P, BASE))]
    assert_matches(counts, normalised(expected))


def test_prob_mixture_truncated_on_the_mixture():
    # w = .5: mixture .02 .175 .125 .125 .11 .14 .155 .15; top-p .5 sorted .175 .155 .15 .14 (mass before .48)
    counts, _ = draw(mock_pair(), conformative(0.5, truncate_on="mixed"), SamplingSettings(top_p=0.5))
    mixture = [(p + b) / 2 for p, b in zip(P, BASE)]
    assert_matches(counts, normalised([m if v in (1, 5, 6, 7) else 0 for v, m in enumerate(mixture)]))


def test_temperature_applies_to_both_models():
    w, T = 0.5, 0.5
    counts, _ = draw(mock_pair(), conformative(w), SamplingSettings(temperature=T))
    inst, base = normalised([p ** 2 for p in P]), normalised([b ** 2 for b in BASE])
    assert_matches(counts, normalised([(1 - w) * i + w * b for i, b in zip(inst, base)]))


def test_different_vocabularies_are_refused_naming_the_first_differing_token():
    mine, theirs = tiny_tokenizer(), tiny_tokenizer()
    theirs.add_tokens(["<extra>"])
    check_vocabularies(mine, {"base": tiny_tokenizer()})  # identical: fine
    with pytest.raises(UserError, match=r"token id 44: None vs '<extra>'"):
        check_vocabularies(mine, {"base": theirs})


def test_weight_outside_zero_one_is_a_user_error():
    with pytest.raises(UserError, match="--conformative-weight"):
        conformative(1.5)
