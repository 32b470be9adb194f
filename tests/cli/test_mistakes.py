"""Issue #14: a careless user's mistakes, through the CLI. Each row must exit non-zero with exactly one `error:`
line holding the expected words, and no traceback. Almost every row fails before any model or data loads; the few
that load the toy world do so in about a second. Placeholders: {file} an existing file, {folder} an empty folder,
{gen} a generations file, {r} a python reward file, {yaml:NAME} a config file from CONFIGS."""
import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignkit.cli import build_app

REWARDS = """
def one(prompts):
    return [0.0] * len(prompts)
def scalar(prompts, completions):
    return 1.0
def words(prompts, completions):
    return ["good"] * len(completions)
def short(prompts, completions):
    return [1.0]
def nan(prompts, completions):
    return [float("nan")] * len(completions)
"""
CONFIGS = {
    "batch0": "batch_size: 0\n",
    "batch0-decode": "command: decode\nbatch_size: 0\n",
    "top-p": "command: decode\ntop_p: 1.5\n",
    "twice": "max_steps: 3\nbatch_size: 2\nmax-steps: 4\n",
    "twice-train": "command: train\nobjective: dpo\nmax_steps: 3\nmax_steps: 4\n",
    "weight": "conformative: true\nconformative_weight: 2\n",
    "empty-model": "model: ''\n",
    "stop-empty": "command: decode\nstop: ['\\n', '']\n",
}
SHAPE = "must take (prompts, completions) and return one number per completion"

# (id, arguments, words the one error line must hold[, "slow"])
MISTAKES = [
    # ---- values out of range: one line naming the flag, the value and the range
    ("batch-size-0", "train dpo --batch-size 0", "--batch-size must be at least 1, got 0"),
    ("batch-size-negative", "train dpo --batch-size -1", "--batch-size must be at least 1, got -1"),
    ("decode-batch-size-0", "decode --batch-size 0", "--batch-size must be at least 1, got 0"),
    ("learning-rate-negative", "train dpo --learning-rate -1", "--learning-rate must be at least 0, got -1"),
    ("learning-rate-nan", "train dpo --learning-rate nan", "--learning-rate must be a finite number (at least 0)"),
    ("min-p-2", "decode --min-p 2", "--min-p must be in [0, 1], got 2"),
    ("top-p-1.5", "decode --top-p 1.5", "--top-p must be in (0, 1], got 1.5"),
    ("top-p-0", "decode --top-p 0", "--top-p must be in (0, 1], got 0"),
    ("top-k-negative", "decode --top-k -5", "--top-k must be at least 0, got -5"),
    ("temperature-negative", "decode --temperature -1", "--temperature must be at least 0, got -1"),
    ("online-greedy", "train dpo --online --temperature 0", "--temperature must be greater than 0, got 0"),
    ("hdpo-alpha-negative", "train hdpo --alpha -1", "--alpha must be greater than 0, got -1"),
    ("hdpo-beta-0", "train hdpo --beta 0", "--beta must be greater than 0, got 0"),
    ("dpo-beta-0", "train dpo --beta 0", "--beta must be greater than 0, got 0"),
    ("simpo-beta-negative", "train simpo --beta -2", "--beta must be greater than 0, got -2"),
    ("simpo-gamma-negative", "train simpo --gamma -1", "--gamma must be at least 0, got -1"),
    ("qempo-tau-0", "train qempo --tau 0", "--tau must be greater than 0, got 0"),
    ("qempo-gamma-1.5", "train qempo --gamma 1.5", "--gamma must be in [0, 1], got 1.5"),
    ("qempo-dual-lr", "train qempo --online --dual-lr -1", "--dual-lr must be at least 0, got -1"),
    ("qempo-max-kl-0", "train qempo --constraint kl --online --max-kl 0", "--max-kl must be greater than 0"),
    ("conformative-weight", "decode --conformative --conformative-weight 1.5",
     "--conformative-weight must be in [0, 1], got 1.5"),
    ("epochs-0", "train dpo --epochs 0", "--epochs must be greater than 0, got 0"),
    ("epochs-inf", "train dpo --epochs inf", "--epochs must be a finite number (greater than 0), got inf"),
    ("max-steps-0", "train dpo --max-steps 0", "--max-steps must be at least 1, got 0"),
    ("max-steps-negative", "train dpo --max-steps -3", "--max-steps must be at least 1, got -3"),
    ("grad-accum-0", "train dpo --grad-accum 0", "--grad-accum must be at least 1, got 0"),
    ("save-steps-negative", "train dpo --save-steps -1", "--save-steps must be at least 0, got -1"),
    ("eval-steps-negative", "train dpo --eval-steps -1", "--eval-steps must be at least 0, got -1"),
    ("warmup-negative", "train dpo --warmup-steps -1", "--warmup-steps must be at least 0, got -1"),
    ("logging-steps-0", "train dpo --logging-steps 0", "--logging-steps must be at least 1, got 0"),
    ("eval-split-1", "train dpo --eval-split 1", "--eval-split must be in [0, 1), got 1"),
    ("max-grad-norm-negative", "train dpo --max-grad-norm -1", "--max-grad-norm must be at least 0, got -1"),
    ("lora-rank-0", "train dpo --lora --lora-rank 0", "--lora-rank must be at least 1, got 0"),
    ("lora-dropout-1", "train dpo --lora --lora-dropout 1", "--lora-dropout must be in [0, 1), got 1"),
    ("group-size-1", "train dpo --online --group-size 1", "--group-size must be at least 2, got 1"),
    ("online-max-new-tokens-0", "train dpo --online --max-new-tokens 0", "--max-new-tokens must be at least 1"),
    ("num-samples-0", "decode --num-samples 0", "--num-samples must be at least 1, got 0"),
    ("max-new-tokens-0", "decode --max-new-tokens 0", "--max-new-tokens must be at least 1, got 0"),
    ("seed-negative", "decode --seed -1", "--seed must be in [0, 4294967295], got -1"),
    ("bootstrap-negative", "eval {gen} --bootstrap -1", "--bootstrap must be at least 0, got -1"),
    ("eval-num-samples-0", "eval --model toy:instruct --num-samples 0", "--num-samples must be at least 1, got 0"),
    ("num-proc-0", "prepare toy:prefs --output {folder}/p --num-proc 0", "--num-proc must be at least 1, got 0"),
    ("limit-negative", "prepare toy:prefs --output {folder}/p --limit -1", "--limit must be at least 0, got -1"),
    ("max-length-0", "prepare toy:prefs --output {folder}/p --max-length 0", "--max-length must be at least 1"),
    ("max-prompt-length-0", "train dpo --max-prompt-length 0", "--max-prompt-length must be at least 1, got 0"),
    ("not-a-number", "train dpo --batch-size abc", "Invalid value for '--batch-size'"),
    # ---- the same values from a --config file, and `alignkit validate`
    ("yaml-batch-size-0", "train dpo --config {yaml:batch0}", "'batch_size' in {yaml:batch0} must be at least 1"),
    ("validate-batch-size-0", "validate {yaml:batch0-decode}", "must be at least 1, got 0"),
    ("validate-top-p", "validate {yaml:top-p}", "'top_p' in {yaml:top-p} must be in (0, 1], got 1.5"),
    ("yaml-switch-option", "decode --config {yaml:weight}", "'conformative_weight' in {yaml:weight} must be in [0, 1]"),
    ("yaml-key-twice", "decode --config {yaml:twice}",
     "key 'max-steps' appears twice in {yaml:twice}: line 3 (the same option as 'max_steps' on line 1); keep one"),
    ("validate-key-twice", "validate {yaml:twice-train}", "key 'max_steps' appears twice in {yaml:twice-train}: line 4"),
    ("config-is-a-folder", "train dpo --config {folder}", "is a folder; give a YAML file"),
    ("config-empty", ["train", "dpo", "--config", ""], "--config is empty"),
    ("config-missing", "decode --config {folder}/nope.yaml", "does not exist"),
    # ---- devices this machine lacks (CUDA and MPS are switched off for these rows)
    ("device-cuda", "decode --device cuda", "--device cuda: this machine has no CUDA GPU"),
    ("device-cuda-n", "train dpo --device cuda:1", "use --device cpu, or --device auto"),
    ("device-mps", "decode --device mps", "--device mps: this machine has no Apple MPS GPU"),
    ("device-unknown", "train dpo --device gpu", "unknown --device 'gpu'; use auto, cpu, cuda, cuda:N or mps"),
    # ---- outputs the command cannot write
    ("prepare-output-file", "prepare toy:prefs --output {file}", "is a file, but this command writes a folder"),
    ("train-output-file", "train dpo --output {file}", "is a file, but this command writes a folder"),
    ("eval-output-file", "eval {gen} --output {file}", "is a file, but this command writes a folder"),
    ("decode-output-folder", "decode --output {folder}", "is a folder, but this command writes a file there"),
    ("exact-output-folder", "decode --exact --output {folder}", "is a folder, but this command writes a file"),
    ("decode-output-under-file", "decode --output {file}/g.jsonl", "is a file, not a folder"),
    ("train-output-under-file", "train dpo --output {file}/run", "cannot create --output"),
    ("output-empty", ["decode", "--output", ""], "--output is empty; give a value, or leave it out"),
    # ---- python rewards of the wrong shape (eval loads the reward before reading anything else)
    ("reward-one-argument", "eval {gen} --reward {r}:one", f"reward '{{r}}:one' {SHAPE}; it takes 1 argument"),
    ("reward-scalar", "eval {gen} --reward {r}:scalar", "it returned float 1.0"),
    ("reward-words", "eval {gen} --reward {r}:words", "it returned a list holding str 'good'"),
    ("reward-short", "eval {gen} --reward {r}:short", "it returned 1 number for 2 completions"),
    ("reward-nan", "eval {gen} --reward {r}:nan", "returned nan for completion 0"),
    ("reward-no-function", "eval {gen} --reward {r}:missing", "'missing' is not a function in"),
    ("reward-no-file", "eval {gen} --reward {folder}/nope.py:f", "does not exist"),
    ("online-reward-one-argument", "train dpo --online --reward {r}:one --output {folder}/run", "it takes 1 argument",
     "slow"),  # loads the toy model and its prompts first
    # ---- inputs that are not there
    ("model-missing", "decode --model ./no-such-model", "model './no-such-model' does not exist"),
    ("train-model-missing", "train dpo --model {folder}/no/such/model", "does not exist: there is no such folder"),
    # a missing data file fails before the model loads (here the model is missing too, and is not what is named)
    ("train-data-missing", "train dpo --data {folder}/nope.jsonl --model {folder}/no/such/model --output {folder}/o",
     "nope.jsonl' does not exist (--data)"),
    ("train-prompts-missing", "train qempo --online --prompts {folder}/nope.jsonl --model {folder}/no/such/model "
     "--output {folder}/o", "nope.jsonl' does not exist (--prompts)"),
    ("model-empty", ["decode", "--model", ""], "--model is empty"),
    ("reward-empty", ["train", "dpo", "--online", "--reward", " "], "--reward is empty"),
    ("data-empty", ["prepare", "", "--output", "p"], "argument DATA is empty"),
    ("yaml-empty-value", "train dpo --config {yaml:empty-model}", "'model' in {yaml:empty-model} is empty"),
    ("prompts-missing", "decode --prompts {folder}/nope.jsonl", "does not exist"),
    ("prompts-empty", ["decode", "--prompts", ""], "--prompts is empty"),
    ("exact-prompts", "decode --exact --prompts {file} --output {folder}/x.json",
     "enumerates the toy world's own prompts, so --prompts"),
    # an empty stop string would stop nothing; a newline is a stop string and is kept
    ("stop-empty", ["decode", "--stop", "\n", "--stop", ""], "--stop is given an empty value"),
    ("yaml-stop-empty", "decode --config {yaml:stop-empty}", "'stop' in {yaml:stop-empty} is given an empty value"),
    ("prompts-folder", "decode --prompts {folder}", "is not a datasets save_to_disk folder"),
    ("generations-missing", "eval {folder}/nope.jsonl", "does not exist (alignkit decode writes one)"),
    ("eval-nothing", "eval", "give generation files"),
    ("eval-exact-no-model", "eval --exact", "--exact evaluates a model: give --model"),
    ("prepare-missing", "prepare {folder}/nope.jsonl --output {folder}/p", "does not exist"),
    # ---- names and modes
    ("unknown-objective", "train dpp", "did you mean 'dpo'?"),
    ("option-without-switch", "decode --conformative-weight 0.3", "applies with --conformative only"),
    ("online-option-offline", "train dpo --group-size 3", "applies to online training only; add --online"),
    ("no-online-mode", "train simpo --online", "objective 'simpo' has no online training"),
]


@pytest.fixture(scope="module")
def app():
    return build_app()


@pytest.fixture
def place(tmp_path, monkeypatch):
    """The files the rows name, in a fresh folder that is also the working directory (nothing lands elsewhere)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "r.py").write_text(REWARDS)
    (tmp_path / "gen.jsonl").write_text("".join(json.dumps({"prompt": p, "text": t}) + "\n"
                                                for p, t in (("hi", "hello there"), ("yo", "x y"))))
    values = {"file": str(tmp_path / "a-file"), "folder": str(tmp_path / "empty"), "gen": str(tmp_path / "gen.jsonl"),
              "r": str(tmp_path / "r.py")}
    for name, text in CONFIGS.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        values[f"yaml:{name}"] = str(tmp_path / f"{name}.yaml")
    return values


def fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([\w:-]+)\}", lambda m: values[m[1]], text)


@pytest.mark.parametrize("args, words", [
    pytest.param(*row[1:3], id=row[0], marks=[pytest.mark.slow] if row[3:] == ("slow",) else []) for row in MISTAKES])
def test_a_mistake_is_one_error_line_and_no_traceback(app, place, monkeypatch, args, words):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the device rows mean a CPU-only machine
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    argv = [fill(a, place) for a in args] if isinstance(args, list) else fill(args, place).split()
    result = CliRunner().invoke(app, argv)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, result.output
    assert fill(words, place) in errors[0]


def test_every_mistake_of_the_issue_has_a_row():
    """The mistakes issue #14 lists, by row id, so that a row is not dropped by accident."""
    ids = {row[0] for row in MISTAKES}
    assert len(ids) == len(MISTAKES)
    assert {"batch-size-0", "batch-size-negative", "learning-rate-negative", "device-cuda", "min-p-2",
            "reward-one-argument", "reward-scalar", "reward-words", "prepare-output-file", "train-output-file",
            "decode-output-folder", "eval-output-file", "max-steps-0", "max-steps-negative", "grad-accum-0",
            "validate-batch-size-0", "top-p-1.5", "top-k-negative", "temperature-negative", "hdpo-alpha-negative",
            "epochs-0", "save-steps-negative", "yaml-key-twice", "reward-nan"} <= ids


# ---- a reward that does not vary: one warning, and the run goes on


def test_flat_rewards_warn_once_after_five_steps(capsys):
    import torch

    from alignkit.engine.online import FLAT_REWARD_STEPS, FlatRewardWatch

    watch = FlatRewardWatch("toy")

    def step(*micro_batches):
        for values in micro_batches:
            watch.see(torch.tensor(values))
        watch.step_done()

    for _ in range(FLAT_REWARD_STEPS - 1):
        step([0.0, 0.0], [0.0])
    step([0.0, 1.0])  # one step that varies starts the count again
    step([1.0, 1.0])
    for _ in range(FLAT_REWARD_STEPS - 2):
        step([0.0, 0.0])  # the same within each step, but 1 then 0: not yet five steps at one value
    assert capsys.readouterr().err == ""
    for _ in range(FLAT_REWARD_STEPS + 3):
        step([0.0], [0.0, 0.0])
    assert capsys.readouterr().err == ("warning: reward 'toy' returned 0.0 for every completion in the last 5 steps: "
                                       "it gives the policy gradient no signal; is it the right reward for this "
                                       "model?\n")


@pytest.mark.slow
def test_the_toy_reward_on_a_model_outside_the_toy_world_warns(app, tmp_path, monkeypatch):
    """The toy verifier scores a tiny Llama's word salad 0 everywhere: six online steps, one warning, exit 0."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
    from tiny import save_tiny

    model = save_tiny(tmp_path / "tiny")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "w3 w4"}\n{"prompt": "w5 w9"}\n')
    result = CliRunner().invoke(app, ["train", "dpo", "--online", "--model", str(model), "--reward", "toy",
                                      "--prompts", str(prompts), "--max-steps", "6", "--batch-size", "1",
                                      "--group-size", "2", "--max-new-tokens", "3", "--device", "cpu",
                                      "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: reward 'toy' returned 0.0 for every completion in the last 5 steps: it gives the "
                        "policy gradient no signal; is it the right reward for this model?"]
