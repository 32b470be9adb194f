"""Conformative decoding on the toy world: toy:instruct guided by toy:base, against plain sampling of toy:instruct
at the same settings (--conformative-mix prob, --conformative-truncate-on instruct, temperature 1, seed 0).

Exact figures (alignkit.toy.exact.exact_evaluate_decoder, mean over the 8 prompts) and distinct-n of real samples
(`alignkit decode` 8 prompts x 32, then `alignkit eval --reward toy`) are those in docs/algorithms/conformative.md.
Measured: at top-p 1.0 the base model's weight buys entropy with reward, steadily; inside the instruct model's
top-p 0.9 nucleus it buys length, not diversity: the nucleus holds only the apt adjectives and the opener, and
among them the base model leans on the opener "it is" and on the filler tail rather than spreading out.
"""
import json

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # the module fixture enumerates seven decoders exactly: ~13 s

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from alignkit import toy  # noqa: E402
from alignkit.engine.distributions import SampleDecoder  # noqa: E402
from alignkit.cli import build_app  # noqa: E402
from alignkit.engine.sample import SamplingSettings  # noqa: E402
from alignkit.toy.exact import exact_evaluate_decoder  # noqa: E402
from alignkit_conformative import ConformativeOptions  # noqa: E402
from alignkit_conformative.decoder import ConformativeDecoder  # noqa: E402

BASE_REWARD, BASE_ENTROPY = 0.339, 5.64  # toy:base's own exact figures (docs/toy-world.md)


@pytest.fixture(scope="module")
def exact():
    """(decoder, weight, top_p) -> the mean exact figures; weight 0 is plain sampling of toy:instruct."""
    tok = AutoTokenizer.from_pretrained(toy.resolve("toy:instruct"))
    instruct = AutoModelForCausalLM.from_pretrained(toy.resolve("toy:instruct")).eval()
    base = AutoModelForCausalLM.from_pretrained(toy.resolve("toy:base")).eval()

    def evaluate(weight, top_p, truncate_on="instruct"):
        if weight == 0:
            decoder, models = SampleDecoder(), {"policy": instruct}
        else:
            decoder = ConformativeDecoder(ConformativeOptions(weight=weight, truncate_on=truncate_on))
            models = {"policy": instruct, "base": base}
        return exact_evaluate_decoder(decoder, models, tok, SamplingSettings(top_p=top_p))["mean"]

    return {(name, w, p): evaluate(w, p, name) for name, w, p in [
        ("instruct", 0, 1.0), ("instruct", 0.25, 1.0), ("instruct", 0.5, 1.0), ("instruct", 0.75, 1.0),
        ("instruct", 0, 0.9), ("instruct", 0.5, 0.9), ("mixed", 0.5, 0.9)]}


def test_without_truncation_the_base_weight_buys_entropy_with_reward(exact):
    """top-p 1.0, exact, mean over prompts. Measured:
        w     E[r]    H (nats)  E[words]
        0     0.802   4.12      4.20      (plain sampling of toy:instruct)
        0.25  0.679   4.92      4.33
        0.5   0.560   5.39      4.47
        0.75  0.446   5.63      4.60
    Quality cost 0.12 / 0.24 / 0.36 of reward for +0.80 / +1.27 / +1.51 nats; at w = 0.75 the entropy is the
    base model's own (5.64) while the reward stays above the base model's (0.339)."""
    rows = [exact[("instruct", w, 1.0)] for w in (0, 0.25, 0.5, 0.75)]
    measured = [(0.802, 4.12, 4.20), (0.679, 4.92, 4.33), (0.560, 5.39, 4.47), (0.446, 5.63, 4.60)]
    for row, (reward, entropy, length) in zip(rows, measured):
        assert row["expected_reward"] == pytest.approx(reward, abs=0.005)
        assert row["entropy"] == pytest.approx(entropy, abs=0.02)
        assert row["expected_length"] == pytest.approx(length, abs=0.02)
    for lower, higher in zip(rows, rows[1:]):  # every step of w: more diverse, worse, not by chance
        assert higher["entropy"] > lower["entropy"] + 0.2
        assert higher["expected_reward"] < lower["expected_reward"] - 0.1
    assert rows[-1]["entropy"] == pytest.approx(BASE_ENTROPY, abs=0.02)
    assert rows[-1]["expected_reward"] > BASE_REWARD + 0.1


def test_inside_the_instruct_nucleus_the_base_weight_buys_length_not_diversity(exact):
    """top-p 0.9, exact. Measured: plain 0.845 / 3.82 nats / 4.43 words; conformative w = 0.5 with the default
    --conformative-truncate-on instruct 0.792 / 3.82 / 4.83: the reward drops by 0.05 and responses grow by 0.4 words (the base
    model likes the filler tail) at the same entropy. --conformative-truncate-on mixed lets the base model's tokens in:
    0.634 / 4.99 / 4.90."""
    plain, conf, mixed = exact[("instruct", 0, 0.9)], exact[("instruct", 0.5, 0.9)], exact[("mixed", 0.5, 0.9)]
    assert plain["expected_reward"] == pytest.approx(0.845, abs=0.005)
    assert conf["expected_reward"] == pytest.approx(0.792, abs=0.005)
    assert conf["entropy"] == pytest.approx(plain["entropy"], abs=0.05)  # 3.819 vs 3.817
    assert conf["expected_length"] == pytest.approx(plain["expected_length"] + 0.39, abs=0.03)
    assert mixed["entropy"] == pytest.approx(4.99, abs=0.02)
    assert mixed["expected_reward"] == pytest.approx(0.634, abs=0.005)
    # the nucleus never leaves the grammar, with or without the base model
    assert plain["outside_mass"] < 1e-6 and conf["outside_mass"] < 1e-6


def run_cli(*args):
    result = CliRunner().invoke(build_app(), [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_distinct_n_of_real_samples_through_the_cli(tmp_path, exact):
    """The commands of docs/algorithms/conformative.md, top-p 1.0, 8 prompts x 32 samples, seed 0. Measured
    (eval's mean over prompts; the 95 % bootstrap interval is about ±0.02 for distinct-2):
        file          reward   distinct-1  distinct-2  distinct-3
        plain         0.797    0.083       0.175       0.328
        conf w=0.5    0.566    0.118       0.274       0.486
    and each file's mean sampled reward is its exact E[r] (0.802, 0.560) up to sampling noise. The figures are
    one seed's: seeds 1-3 give conf distinct-1 0.115-0.122 and distinct-2 0.25-0.28 (the per-batch seeding before
    per-row generators measured 0.129 / 0.301 at seed 0 and 0.114-0.120 / 0.27 at seeds 1-3)."""
    decode = ["decode", "--model", "toy:instruct", "--num-samples", 32, "--top-p", 1.0, "--device", "cpu"]
    plain, conf = tmp_path / "plain.jsonl", tmp_path / "conf.jsonl"
    run_cli(*decode, "--output", plain)
    run_cli(*decode, "--conformative", "--conformative-base-model", "toy:base", "--conformative-weight", 0.5, "--output", conf)
    run_cli("eval", plain, conf, "--reward", "toy", "--bootstrap", 0, "--output", tmp_path / "eval")
    files = json.loads((tmp_path / "eval" / "report.json").read_text())["files"]
    got = {f["label"]: {name: m["mean"] for name, m in f["metrics"].items() if m} for f in files}
    assert [f["counts"]["samples"] for f in files] == [256, 256]

    for name, (d1, d2, d3) in {"plain": (0.083, 0.175, 0.328), "conf": (0.118, 0.274, 0.486)}.items():
        assert got[name]["distinct-1"] == pytest.approx(d1, abs=0.01)
        assert got[name]["distinct-2"] == pytest.approx(d2, abs=0.03)
        assert got[name]["distinct-3"] == pytest.approx(d3, abs=0.04)
    for n, margin in ((1, 0.03), (2, 0.08), (3, 0.1)):  # measured gains 0.035, 0.099, 0.158
        assert got["conf"][f"distinct-{n}"] > got["plain"][f"distinct-{n}"] + margin
    assert got["plain"]["reward"] == pytest.approx(exact[("instruct", 0, 1.0)]["expected_reward"], abs=0.04)
    assert got["conf"]["reward"] == pytest.approx(exact[("instruct", 0.5, 1.0)]["expected_reward"], abs=0.04)
