"""Exact evaluation on the packaged toy models (of a model, and of a decoder), checked against Monte-Carlo
sampling; builder determinism."""
import json
import math

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from alignkit import toy  # noqa: E402
from alignkit.engine.distributions import SampleDecoder  # noqa: E402
from alignkit.engine.sample import SamplingSettings, make_generator, sample_batch  # noqa: E402
from alignkit.errors import UserError  # noqa: E402
from alignkit.toy import build, reward, world  # noqa: E402
from alignkit.toy.exact import (decoder_distribution, exact_evaluate, exact_evaluate_decoder,  # noqa: E402
                                sequence_distribution)
from alignkit_conformative import ConformativeOptions  # noqa: E402
from alignkit_conformative.decoder import ConformativeDecoder  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(toy.resolve("toy:base"))


@pytest.fixture(scope="module")
def base():
    return AutoModelForCausalLM.from_pretrained(toy.resolve("toy:base")).eval()


@pytest.fixture(scope="module")
def instruct():
    return AutoModelForCausalLM.from_pretrained(toy.resolve("toy:instruct")).eval()


@pytest.fixture(scope="module")
def evaluations(base, instruct, tok):
    return {"base": exact_evaluate(base, tok), "instruct": exact_evaluate(instruct, tok, ref_model=base)}


def test_models_are_small_llamas_with_pad_and_eos(base, instruct, tok):
    for model in (base, instruct):
        assert model.config.model_type == "llama"
        assert model.config.vocab_size == len(tok) == len(world.vocabulary())
        assert (model.config.eos_token_id, model.config.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
        assert sum(p.numel() for p in model.parameters()) < 200_000


def test_enumerated_mass_plus_outside_mass_is_one(base, instruct, tok):
    for model in (base, instruct):
        for prompt in world.PROMPTS[:3]:
            dist = sequence_distribution(model, tok, prompt)
            total = float(dist["logprobs"].exp().sum()) + dist["outside_mass"]
            assert total == pytest.approx(1.0, abs=1e-4)
            assert 0.0 <= dist["outside_mass"] < 0.05


@pytest.mark.slow  # the module's `evaluations` enumerate both models over every prompt: ~9 s on a slow 2-core CPU
def test_result_shape_and_kl(evaluations, base, tok):
    result = evaluations["base"]
    assert [row["prompt"] for row in result["per_prompt"]] == list(world.PROMPTS)
    assert set(result["mean"]) == {"expected_reward", "entropy", "kl", "expected_length", "outside_mass"}
    assert result["mean"]["kl"] is None and all(row["kl"] is None for row in result["per_prompt"])
    assert result["mean"]["entropy"] == pytest.approx(
        sum(row["entropy"] for row in result["per_prompt"]) / len(world.PROMPTS))
    self_kl = exact_evaluate(base, tok, ref_model=base, prompts=world.PROMPTS[:1])["mean"]["kl"]
    assert self_kl == pytest.approx(0.0, abs=1e-9)
    assert evaluations["instruct"]["mean"]["kl"] > 0.5


@pytest.mark.slow  # `evaluations`, as above
def test_base_is_more_diverse_and_worse_than_instruct(evaluations):
    """The figures in docs/toy-world.md (and artifacts/report.json): base E[r] 0.339, H 5.64 nats; instruct
    E[r] 0.802, H 4.12 nats, KL(instruct ‖ base) 2.27; expected length 4.71 and 4.20 words."""
    b, i = evaluations["base"]["mean"], evaluations["instruct"]["mean"]
    assert b["entropy"] == pytest.approx(5.64, abs=0.01) and i["entropy"] == pytest.approx(4.12, abs=0.01)
    assert b["expected_reward"] == pytest.approx(0.339, abs=0.001)
    assert i["expected_reward"] == pytest.approx(0.802, abs=0.001)
    assert i["kl"] == pytest.approx(2.27, abs=0.01)
    assert b["expected_length"] == pytest.approx(4.71, abs=0.01) and i["expected_length"] == pytest.approx(4.20, abs=0.01)
    assert b["entropy"] > i["entropy"] + 1.0 and b["expected_reward"] < i["expected_reward"] - 0.3
    # per prompt too, not only on average
    for rb, ri in zip(evaluations["base"]["per_prompt"], evaluations["instruct"]["per_prompt"]):
        assert rb["entropy"] > ri["entropy"] and rb["expected_reward"] < ri["expected_reward"]
    shipped = json.loads((toy.ARTIFACTS / "report.json").read_text())["exact"]
    assert shipped["base"]["entropy"] == pytest.approx(b["entropy"], abs=1e-6)
    assert shipped["instruct"]["expected_reward"] == pytest.approx(i["expected_reward"], abs=1e-6)


def ancestral_samples(model, tok, prompt, n, seed, max_new_tokens=11):
    """Plain token-by-token sampling (no cache): response token ids (EOS included if reached) and their log-prob."""
    gen = torch.Generator().manual_seed(seed)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids] * n)  # (n, P)
    done = torch.zeros(n, dtype=torch.bool)
    logp = torch.zeros(n, dtype=torch.float64)
    steps = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            probs = torch.softmax(model(input_ids=ids).logits[:, -1].double(), -1)  # (n, V)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)  # (n,)
            logp += torch.where(done, 0.0, probs.gather(1, nxt[:, None]).squeeze(1).log())
            nxt = torch.where(done, tok.pad_token_id, nxt)
            steps.append(nxt)
            done |= nxt == tok.eos_token_id
            ids = torch.cat([ids, nxt[:, None]], 1)
    rows = torch.stack(steps, 1).tolist()
    out = []
    for row, lp in zip(rows, logp.tolist()):
        seq = row[:row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row
        out.append((tuple(seq), lp))
    return out


@pytest.mark.slow  # Monte Carlo against the enumeration: ~4 s each
@pytest.mark.parametrize("which", ["base", "instruct"])
def test_exact_values_agree_with_monte_carlo(which, base, instruct, tok, evaluations):
    model = {"base": base, "instruct": instruct}[which]
    prompt = world.PROMPTS[1]
    exact = evaluations[which]["per_prompt"][1]
    assert exact["prompt"] == prompt
    dist = sequence_distribution(model, tok, prompt)
    table = {tuple(s): (float(lp), reward.score(prompt, y))
             for s, lp, y in zip(world.encode(tok, prompt, dist["responses"])[1], dist["logprobs"], dist["responses"])}

    n = 2000
    samples = ancestral_samples(model, tok, prompt, n, seed=7)
    r, h, out, words = [], [], [], []
    for seq, lp in samples:
        if seq in table:
            assert lp == pytest.approx(table[seq][0], abs=1e-4)  # sampler and teacher forcing agree per sequence
            r.append(table[seq][1])
            h.append(-table[seq][0])
            out.append(0.0)
            words.append(len(seq) - 1)  # one token per word, EOS last
        else:  # outside the enumerated set: reward 0, no share of the enumerated entropy (nor of the length)
            r.append(0.0)
            h.append(0.0)
            out.append(1.0)
            words.append(0.0)

    check_mean(r, exact["expected_reward"])
    check_mean(h, exact["entropy"])
    check_mean(out, exact["outside_mass"])
    check_mean(words, exact["expected_length"])


def check_mean(values, target):
    """The Monte-Carlo mean of `values` is within 4 standard errors (+ 1e-3) of the exact `target`."""
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    assert abs(mean - target) < 4 * se + 1e-3, (mean, target, se)


# ----------------------------------------------------------------------------------------------------------
# Exact evaluation of a decoder: the distribution the sampler draws from, not the model's


def conformative(weight, mix="prob", truncate_on="instruct"):
    return ConformativeDecoder(ConformativeOptions(weight=weight, mix=mix, truncate_on=truncate_on))


@pytest.mark.slow  # every response of every prompt teacher-forced twice: ~3.5 s
def test_sample_decoder_at_temperature_one_is_the_model_distribution(base, instruct, tok):
    """The fast path (all N·T teacher-forced steps through decoder.step at once) against the plain reference,
    sequence_distribution of the model: measured max |Δ log p| 8e-7 (the decoder's own log_softmax of the raw
    logits, then a renormalisation)."""
    for prompt in world.PROMPTS[:2]:
        q = decoder_distribution(SampleDecoder(), {"policy": instruct}, tok, prompt)
        p = sequence_distribution(instruct, tok, prompt)
        assert q["responses"] == p["responses"]
        assert torch.allclose(q["logprobs"], p["logprobs"], rtol=0, atol=1e-5)
        assert q["outside_mass"] == pytest.approx(p["outside_mass"], abs=1e-6)
    figures = exact_evaluate_decoder(SampleDecoder(), {"policy": instruct}, tok, ref_model=base,
                                     prompts=world.PROMPTS[:2])
    reference = exact_evaluate(instruct, tok, ref_model=base, prompts=world.PROMPTS[:2])
    for got, want in zip(figures["per_prompt"], reference["per_prompt"]):
        assert got["prompt"] == want["prompt"]
        for key in ("expected_reward", "entropy", "kl", "expected_length", "outside_mass"):
            assert got[key] == pytest.approx(want[key], abs=1e-5), key


def test_truncation_zeroes_responses_and_mass_still_sums_to_one(instruct, tok):
    """Instruct at top-p 0.9 on `describe the apple :`: the nucleus cuts every wrong adjective, so most
    responses get q = 0 (log q = -inf; measured 802 of 880) and nothing leaves Y; the figures stay finite:
    measured E[r] 0.856, H 4.23 nats against the untruncated model's 0.814 and 4.48."""
    prompt = world.PROMPTS[0]
    q = decoder_distribution(SampleDecoder(), {"policy": instruct}, tok, prompt, SamplingSettings(top_p=0.9))
    logq = q["logprobs"]
    assert 790 <= int((logq == float("-inf")).sum()) <= 815 and not logq.isnan().any()
    assert q["outside_mass"] == pytest.approx(0.0, abs=1e-9)
    assert float(logq.exp().sum()) + q["outside_mass"] == pytest.approx(1.0, abs=1e-5)
    row = exact_evaluate_decoder(SampleDecoder(), {"policy": instruct}, tok, SamplingSettings(top_p=0.9),
                                 prompts=[prompt])["per_prompt"][0]
    # truncation narrows and sharpens: lower entropy, higher reward than the model itself
    assert row["entropy"] == pytest.approx(4.23, abs=0.01)
    assert row["expected_reward"] == pytest.approx(0.856, abs=0.002)


@pytest.mark.parametrize("settings", [SamplingSettings(top_p=0.9), SamplingSettings(temperature=0.8, top_k=5)])
@pytest.mark.parametrize("mix,truncate_on", [("prob", "instruct"), ("prob", "mixed"), ("logprob", "mixed")])
def test_conformative_at_weight_zero_is_plain_sampling_exactly(base, instruct, tok, settings, mix, truncate_on):
    """w = 0 reduces to the sample decoder bit for bit (tests/sampling/test_conformative.py), so the exact
    distributions are equal, not just close, whatever the truncation."""
    prompt = world.PROMPTS[2]
    plain = decoder_distribution(SampleDecoder(), {"policy": instruct}, tok, prompt, settings)
    mixed = decoder_distribution(conformative(0.0, mix, truncate_on), {"policy": instruct, "base": base}, tok,
                                 prompt, settings)
    assert torch.equal(mixed["logprobs"], plain["logprobs"])
    assert mixed["outside_mass"] == plain["outside_mass"]


def test_decoder_evaluation_needs_every_model_the_decoder_names(instruct, tok):
    with pytest.raises(UserError, match="role.*base"):
        decoder_distribution(conformative(0.5), {"policy": instruct}, tok, world.PROMPTS[0])


@pytest.mark.slow  # 4,000 samples through the sampling loop: ~3 s each
@pytest.mark.parametrize("top_p", [0.9, 1.0])
def test_exact_decoder_figures_agree_with_the_real_sampler(top_p, base, instruct, tok):
    """Conformative w = 0.5 on `describe the sky :` through alignkit.engine.sample.sample_batch (KV caches, both
    models in lockstep): 4,000 samples' reward, -log q, outside-Y indicator and length agree with the exact
    figures within 4 standard errors, and each sample's log-prob equals its teacher-forced one. top-p 0.9 cuts
    half the responses (and everything outside Y); top-p 1.0 keeps an outside mass of about 0.01 to check."""
    prompt, decoder, settings = world.PROMPTS[1], conformative(0.5), SamplingSettings(top_p=top_p)
    models = {"policy": instruct, "base": base}
    dist = decoder_distribution(decoder, models, tok, prompt, settings)
    exact = exact_evaluate_decoder(decoder, models, tok, settings, prompts=[prompt])["per_prompt"][0]
    table = {tuple(s): (float(lq), reward.score(prompt, y))
             for s, lq, y in zip(world.encode(tok, prompt, dist["responses"])[1], dist["logprobs"], dist["responses"])}

    n = 4000
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    samples = sample_batch(models, tok, [prompt_ids] * n, decoder, settings, max_new_tokens=12,
                           generator=make_generator(3, 0, "cpu"))
    r, h, out, words = [], [], [], []
    for seq, lq in zip(samples.token_ids, samples.logprobs):
        if tuple(seq) in table:
            assert lq == pytest.approx(table[tuple(seq)][0], abs=1e-4)  # sampler and teacher forcing agree
            r.append(table[tuple(seq)][1])
            h.append(-table[tuple(seq)][0])
            out.append(0.0)
            words.append(len(seq) - 1)
        else:
            r.append(0.0)
            h.append(0.0)
            out.append(1.0)
            words.append(0.0)
    assert (sum(out) == 0) == (top_p < 1)  # the instruct nucleus never leaves Y here; the full mixture does
    check_mean(r, exact["expected_reward"])
    check_mean(h, exact["entropy"])
    check_mean(out, exact["outside_mass"])
    check_mean(words, exact["expected_length"])


@pytest.mark.slow  # builds 4 x 300 pairs: ~8 s
def test_pair_builder_is_deterministic_and_reproduces_the_shipped_pairs(base, instruct, tok):
    first = build.make_pairs(base, instruct, tok, seed=0, n=300)
    assert first == build.make_pairs(base, instruct, tok, seed=0, n=300)
    assert first != build.make_pairs(base, instruct, tok, seed=1, n=300)
    shipped = [json.loads(line) for line in toy.resolve("toy:prefs").read_text().splitlines()]
    assert first == shipped[:300]
    assert all(row["chosen"] != row["rejected"] for row in shipped)
    # Bradley-Terry at scale 10 on the true reward: the better response is chosen in most pairs
    agree = sum(reward.score(r["prompt"], r["chosen"]) >= reward.score(r["prompt"], r["rejected"]) for r in shipped)
    assert 0.85 < agree / len(shipped) < 0.97
    # the on-policy set: the same draws from instruct alone
    onpolicy = [json.loads(line) for line in toy.resolve("toy:prefs-onpolicy").read_text().splitlines()]
    assert build.make_pairs(base, instruct, tok, seed=0, n=300, base_share=0.0) == onpolicy[:300]
    assert build.pair_statistics(onpolicy)["chosen_shorter"] == pytest.approx(0.5085)  # report.json, toy-world.md


def test_training_targets_are_distributions_with_the_intended_support():
    for prompt in world.PROMPTS:
        b, s = build.base_distribution(prompt), build.sft_distribution(prompt)
        assert sum(b) == pytest.approx(1.0) and sum(s) == pytest.approx(1.0)
        assert min(b) > 0  # broad: every response, poor ones included
        ys = world.responses(prompt)
        assert all((w > 0) == (reward.score(prompt, y) >= 0.7) for w, y in zip(s, ys))
