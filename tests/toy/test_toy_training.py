"""Offline training on the toy world, measured exactly: DPO against its reference, H-DPO's entropy knob, POET.

Every run goes through `alignkit train` (the user's entry point) from toy:instruct on toy:prefs, 3 epochs
(750 steps of 8 pairs), seed 0, CPU fp32, and is evaluated by enumerating all 880 responses of each of the
8 prompts (tests/toy/toy_training.py). Figures re-measured on 2026-12-03 with tests/toy/print_tables.py
(reference = toy:instruct):

| run (β = 5, lr 1e-3 unless said)  | E[r]  | H (nats) | length | KL    | outside | E[r|Y] | H(·|Y) | length|Y |
|-----------------------------------|-------|----------|--------|-------|---------|--------|--------|----------|
| toy:instruct (reference)          | 0.802 | 4.124    | 4.20   | 0     | 0.017   | 0.816  | 4.18   | 4.27     |
| dpo                               | 0.816 | 3.50     | 3.61   | 0.22  | 0.078   | 0.885  | 3.72   | 3.92     |
| hdpo --alpha 0.8                  | 0.780 | 3.24     | 3.38   | 0.22  | 0.130   | 0.896  | 3.60   | 3.89     |
| hdpo --alpha 1.25                 | 0.808 | 3.75     | 3.79   | 0.20  | 0.060   | 0.859  | 3.93   | 4.04     |
| dpo --poet                        | 0.808 | 3.56     | 3.38   | 0.20  | 0.077   | 0.875  | 3.78   | 3.66     |
| dpo, defaults (β 0.1, lr 3e-4)    | 0.532 | 1.77     | 1.71   | 0.50  | 0.411   | 0.904  | 2.69   | 2.82     |

Why β = 5 and lr 1e-3 and not the defaults: no pair in toy:prefs shows text outside the grammar, so nothing
stops offline training from moving probability there ("sure", "grass indeed", "<system>"). At the default
β = 0.1 DPO loses 41 % of the mass that way and the plain E[r] falls to 0.53 although the answers that remain
are better (last row, pinned by the last test). A large β keeps the policy near the reference (8 % lost), so the
objectives' own effects show. Even so the plain E[r] gain of DPO is not robust: with --seed 1 / 2 it is 0.807 /
0.742. Across seeds 0, 1 and 2 (the tests run seed 0, with the margins below these):

- DPO: H falls by 0.62 / 0.53 / 0.72 nats, E[r|Y] rises by 0.069 / 0.056 / 0.045;
- H-DPO: H(α 0.8) − H(DPO) = −0.26 / −0.38 / −0.23, H(α 1.25) − H(DPO) = +0.25 / +0.28 / +0.29, and E[r|Y] is
  ordered α 0.8 > DPO > α 1.25, by as little as 0.004 (seed 1: 0.876 > 0.872); at seed 0 the test's 0.01 margin
  holds by 0.001 (0.896 against 0.885), so a change of numerics may need it measured again;
- POET: length|Y shorter than DPO's by 0.26 / 0.24 / 0.50 words, E[r|Y] −0.010 / −0.015 / +0.020 from DPO's. The
  length trap does not make plain DPO longer on toy:prefs; POET cuts further, mostly the neutral opener "it is"
  and the second adjective.

Each configuration trains once per module (fixture `runs`); the file takes about 50 s on one CPU thread.
"""
import pytest
import torch

from toy_training import evaluate, train_and_evaluate

torch.set_num_threads(1)
pytestmark = pytest.mark.slow

# Training settings shared by the behaviour runs; the objective's own options are given per run.
SETTINGS = {"learning_rate": 1e-3}
BETA = 5.0

# name -> (objective, objective/transform options, transforms, train overrides)
CONFIGS = {
    "dpo": ("dpo", {"beta": BETA}, (), SETTINGS),
    "hdpo-0.8": ("hdpo", {"beta": BETA, "alpha": 0.8}, (), SETTINGS),
    "hdpo-1.25": ("hdpo", {"beta": BETA, "alpha": 1.25}, (), SETTINGS),
    "dpo-poet": ("dpo", {"beta": BETA}, ("poet",), SETTINGS),
    "dpo-defaults": ("dpo", {}, (), {}),
}


@pytest.fixture(scope="module")
def reference():
    """toy:instruct, the starting policy and the reference of every run: E[r] 0.802, H 4.12, length 4.20."""
    return evaluate("toy:instruct", ref_model="toy:instruct")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> exact figures of that trained run; each configuration trains on first use, once per module."""
    folder = tmp_path_factory.mktemp("toy-training")
    done = {}

    def get(name):
        if name not in done:
            objective, options, transforms, overrides = CONFIGS[name]
            done[name] = train_and_evaluate(folder / name, objective, options, transforms, **overrides)
        return done[name]

    return get


def test_reference_is_the_shipped_instruct_model(reference):
    # The baseline every other test compares with (docs/toy-world.md); KL to itself is 0.
    assert reference["expected_reward"] == pytest.approx(0.802, abs=1e-3)
    assert reference["entropy"] == pytest.approx(4.124, abs=1e-3)
    assert reference["expected_length"] == pytest.approx(4.20, abs=1e-2)
    assert reference["kl"] == pytest.approx(0.0, abs=1e-9)
    assert reference["in_grammar"]["expected_reward"] == pytest.approx(0.816, abs=1e-3)


def test_dpo_sharpens_and_improves_the_answers(runs, reference):
    """DPO (β 5): H 4.12 → 3.50, E[r|Y] 0.816 → 0.885, KL 0.22, outside mass 0.017 → 0.078, E[r] 0.802 → 0.816."""
    dpo = runs("dpo")
    assert dpo["entropy"] < reference["entropy"] - 0.3
    assert dpo["in_grammar"]["entropy"] < reference["in_grammar"]["entropy"] - 0.3
    assert dpo["in_grammar"]["expected_reward"] > reference["in_grammar"]["expected_reward"] + 0.03
    assert 0.1 < dpo["kl"] < 0.5  # it moved, and β = 5 kept it near the reference
    assert dpo["outside_mass"] < 0.1
    # The plain E[r] gained 0.014 here but not for every seed (0.807 / 0.742 for seeds 1 / 2): the mass lost
    # outside the grammar eats the gain, so only "not much worse" is a property of DPO at this β.
    assert dpo["expected_reward"] > reference["expected_reward"] - 0.05


def test_hdpo_alpha_below_one_sharpens_above_one_spreads(runs):
    """Same β = 5: H is 3.24 (α 0.8) < 3.50 (DPO, α 1) < 3.75 (α 1.25); E[r|Y] 0.896 > 0.885 > 0.859.

    α scales only the policy's margin, so the optimum is π_ref^{1/α} exp(r/(αβ)): sharper below 1, flatter above.
    """
    low, dpo, high = runs("hdpo-0.8"), runs("dpo"), runs("hdpo-1.25")
    assert low["entropy"] < dpo["entropy"] - 0.15
    assert high["entropy"] > dpo["entropy"] + 0.08
    # The same order holds for the policy among real answers, so it is not an artefact of lost mass.
    assert low["in_grammar"]["entropy"] < dpo["in_grammar"]["entropy"] - 0.1
    assert high["in_grammar"]["entropy"] > dpo["in_grammar"]["entropy"] + 0.1
    # Sharper is better here, as the paper reports for pass@1.
    assert low["in_grammar"]["expected_reward"] > dpo["in_grammar"]["expected_reward"] + 0.01
    assert high["in_grammar"]["expected_reward"] < dpo["in_grammar"]["expected_reward"] - 0.005


def test_poet_gives_shorter_answers_than_dpo_at_no_cost(runs, reference):
    """dpo --poet against dpo (β 5): length|Y 3.66 against 3.92 words (reference 4.27), plain length 3.38 against
    3.61; E[r|Y] 0.875 against 0.885."""
    poet, dpo = runs("dpo-poet"), runs("dpo")
    assert poet["in_grammar"]["expected_length"] < dpo["in_grammar"]["expected_length"] - 0.15
    assert dpo["in_grammar"]["expected_length"] < reference["in_grammar"]["expected_length"]
    assert poet["in_grammar"]["expected_reward"] > dpo["in_grammar"]["expected_reward"] - 0.02
    assert poet["entropy"] < reference["entropy"] - 0.3  # it still learned


def test_dpo_at_default_beta_loses_mass_outside_the_grammar(runs, reference):
    """`alignkit train dpo` with its defaults (β 0.1, lr 3e-4): E[r] 0.802 → 0.532 because 41 % of the mass leaves
    the grammar (outside 0.411), although the answers that remain are better (E[r|Y] 0.904) and far sharper (H 1.77).

    This pins why the behaviour tests above run at β = 5; if it starts failing because E[r] rises, the engine or
    the defaults got better and the docs' tables should be measured again.
    """
    run = runs("dpo-defaults")
    assert run["outside_mass"] > 0.25
    assert run["expected_reward"] < reference["expected_reward"] - 0.15
    assert run["in_grammar"]["expected_reward"] > reference["in_grammar"]["expected_reward"] + 0.05
    assert run["entropy"] < reference["entropy"] - 1.5
