"""The sampling loop's fast paths against their plain twins.

- share_prompts (a prompt prefilled once, its KV cache rows copied to its samples) gives the same tokens for a
  seed as every row prefilling its own copy: token for token on tiny random Llamas and on the toy world's
  models, with one model and with conformative decoding's two models in lockstep.
- draw="inverse-cdf" draws from the same distribution as torch.multinomial: chi-square against the analytic
  truncated distribution (the mock model of test_truncation), and support respected.
- per-row generators: a decode run's samples do not depend on how its rows are cut into batches.
"""
import pytest
import torch
from sampling_helpers import FakeTokenizer, FixedModel
from test_truncation import P, assert_matches, normalised

from alignkit.engine.distributions import SampleDecoder
from alignkit.engine.sample import (SamplingSettings, draw_tokens, encode_prompts, make_generator, row_generator,
                                    sample, sample_batch, share_rows)

PROMPTS = ["what is 2+2?", "a", "hello there friend"]


def rows_of(ids, samples):
    """Each prompt repeated `samples` times, a prompt's samples side by side: what decode's batches hold."""
    return [p for p in ids for _ in range(samples)]


@pytest.mark.parametrize("draw", ["multinomial", "inverse-cdf"])
@pytest.mark.parametrize("settings", [SamplingSettings(), SamplingSettings(temperature=0.8, top_p=0.9)])
def test_shared_prefill_gives_the_same_tokens_as_one_prefill_per_row(llamas, tokenizer, draw, settings):
    rows = rows_of(encode_prompts(tokenizer, PROMPTS), 4)  # (12 rows, 3 distinct prompts of different lengths)
    kwargs = dict(max_new_tokens=16, seed=5, batch_size=len(rows), draw=draw, per_row=True)
    plain = sample({"policy": llamas[0]}, tokenizer, rows, SampleDecoder(), settings, share_prompts=False, **kwargs)
    fast = sample({"policy": llamas[0]}, tokenizer, rows, SampleDecoder(), settings, share_prompts=True, **kwargs)
    assert fast.token_ids == plain.token_ids
    assert fast.logprobs == pytest.approx(plain.logprobs, abs=1e-5)
    assert fast.finish_reasons == plain.finish_reasons
    # and both equal recomputing the whole prefix every step (no cache at all)
    full = sample({"policy": llamas[0]}, tokenizer, rows, SampleDecoder(), settings, use_cache=False, **kwargs)
    assert fast.token_ids == full.token_ids


def test_shared_prefill_with_two_models_in_lockstep(llamas, tokenizer):
    from alignkit_conformative import ConformativeOptions
    from alignkit_conformative.decoder import ConformativeDecoder

    rows = rows_of(encode_prompts(tokenizer, PROMPTS), 3)
    decoder = ConformativeDecoder(ConformativeOptions(base_model="unused", weight=0.5))
    models = {"policy": llamas[0], "base": llamas[1]}
    kwargs = dict(max_new_tokens=12, seed=2, batch_size=len(rows), per_row=True, draw="inverse-cdf")
    plain = sample(models, tokenizer, rows, decoder, SamplingSettings(top_p=0.95), share_prompts=False, **kwargs)
    fast = sample(models, tokenizer, rows, decoder, SamplingSettings(top_p=0.95), share_prompts=True, **kwargs)
    assert fast.token_ids == plain.token_ids
    assert fast.logprobs == pytest.approx(plain.logprobs, abs=1e-5)


def test_shared_prefill_on_the_toy_world():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignkit import toy
    from alignkit.toy import world

    tok = AutoTokenizer.from_pretrained(toy.resolve("toy:instruct"))
    instruct = AutoModelForCausalLM.from_pretrained(toy.resolve("toy:instruct")).eval()
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in world.PROMPTS[:3]]
    rows = rows_of(ids, 8)
    out = {share: sample_batch({"policy": instruct}, tok, rows, SampleDecoder(), SamplingSettings(),
                               max_new_tokens=12, share_prompts=share, draw="inverse-cdf",
                               generator=[row_generator(0, n // 8, n % 8, "cpu") for n in range(len(rows))])
           for share in (False, True)}
    assert out[True].token_ids == out[False].token_ids
    assert out[True].logprobs == pytest.approx(out[False].logprobs, abs=1e-5)


def test_share_rows_maps_each_row_to_its_prompts_first_row():
    assert share_rows([[1], [1], [2, 3], [1], [2, 3]]) == ([0, 2], [0, 0, 1, 0, 1])
    assert share_rows([[4], [5]]) == ([0, 1], [0, 1])


@pytest.mark.parametrize("settings,expected", [
    (SamplingSettings(), P),
    (SamplingSettings(top_k=3), normalised([0, 0.30, 0.20, 0.15, 0, 0, 0, 0])),
    (SamplingSettings(top_p=0.7), normalised([0, 0.30, 0.20, 0.15, 0.12, 0, 0, 0])),
    (SamplingSettings(min_p=0.3), normalised([0, 0.30, 0.20, 0.15, 0.12, 0.10, 0, 0])),
])
def test_inverse_cdf_draws_the_truncated_distribution(settings, expected):
    out = sample_batch({"policy": FixedModel(P)}, FakeTokenizer(), [[1, 2]] * 20000, SampleDecoder(), settings,
                       max_new_tokens=1, generator=make_generator(4, 0, "cpu"), draw="inverse-cdf")
    counts = [0] * len(P)
    for ids in out.token_ids:
        counts[ids[0]] += 1
    assert_matches(counts, expected)  # the chi-square 0.999 bound test_truncation holds the plain draw to


def test_inverse_cdf_never_draws_outside_the_support_even_at_the_edges():
    logprobs = torch.full((4, 6), float("-inf"))
    logprobs[:, 2] = 0.0  # all mass on token 2: u anywhere in [0, 1) lands there, beyond the last token too
    logprobs[3] = torch.tensor([float("-inf"), 0.5, float("-inf"), 0.5, float("-inf"), float("-inf")]).log()
    for seed in range(20):
        token = draw_tokens(logprobs, [torch.Generator().manual_seed(seed)], "inverse-cdf")  # (4, 1)
        assert token[:3].flatten().tolist() == [2, 2, 2] and token[3, 0].item() in (1, 3)


def test_row_generators_are_distinct_and_reproducible():
    first = [torch.rand(3, generator=row_generator(0, p, s, "cpu")).tolist() for p in range(3) for s in range(3)]
    again = [torch.rand(3, generator=row_generator(0, p, s, "cpu")).tolist() for p in range(3) for s in range(3)]
    other = torch.rand(3, generator=row_generator(1, 0, 0, "cpu")).tolist()
    assert first == again and len({tuple(x) for x in first}) == 9 and other != first[0]


@pytest.mark.parametrize("draw", ["multinomial", "inverse-cdf"])
def test_per_row_samples_do_not_depend_on_the_batch_size(llamas, tokenizer, draw):
    rows = rows_of(encode_prompts(tokenizer, PROMPTS), 3)
    outs = [sample({"policy": llamas[0]}, tokenizer, rows, SampleDecoder(), SamplingSettings(), max_new_tokens=10,
                   seed=9, batch_size=b, per_row=True, share_prompts=True, draw=draw).token_ids for b in (1, 4, 9)]
    assert outs[0] == outs[1] == outs[2]
