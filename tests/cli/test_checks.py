"""The checks that run before any work: duplicate YAML keys, --output, --device, and a python reward's shape."""
import os
from pathlib import Path

import pytest

from alignkit.builtins.rewards import load_python_reward
from alignkit.config import load_yaml
from alignkit.errors import UserError
from alignkit.outputs import check_output

# ---- duplicate keys in a --config file


def test_a_key_twice_names_the_key_the_file_and_both_lines(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("batch_size: 2\nmax_steps: 3\nseed: 1\nmax_steps: 4\n")
    with pytest.raises(UserError) as err:
        load_yaml(cfg)
    assert str(err.value) == f"key 'max_steps' appears twice in {cfg}: line 4 (already on line 2); keep one"


def test_dash_and_underscore_spellings_are_one_key(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("# a comment\nmax_steps: 3\n\nmax-steps: 4\n")
    with pytest.raises(UserError, match=r"key 'max-steps' appears twice in .*: line 4 \(the same option as "
                                        r"'max_steps' on line 2\); keep one"):
        load_yaml(cfg)


def test_distinct_keys_nested_values_and_merges_still_load(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("base: &b {seed: 1}\nmerged:\n  <<: *b\n  seed: 2\nstop: [a, a]\nmax-steps: 3\n")
    assert load_yaml(cfg) == {"base": {"seed": 1}, "merged": {"seed": 2}, "stop": ["a", "a"], "max_steps": 3}


def test_a_config_that_is_empty_a_folder_or_not_text(tmp_path):
    with pytest.raises(UserError, match="^--config is empty"):
        load_yaml("")
    with pytest.raises(UserError, match="is a folder; give a YAML file"):
        load_yaml(tmp_path)
    (tmp_path / "b.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="cannot read config file .*utf-8"):
        load_yaml(tmp_path / "b.yaml")


# ---- --output


def test_output_of_the_wrong_kind(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"^--output '.*f' is a file, but this command writes a folder there"):
        check_output(tmp_path / "f", "folder")
    with pytest.raises(UserError, match=r"^--output '.*' is a folder, but this command writes a file there; give "
                                        r"a file path, e.g. '.*generations.jsonl'$"):
        check_output(tmp_path, "file")
    with pytest.raises(UserError, match=r"^cannot create --output '.*f/run': '.*f' is a file, not a folder$"):
        check_output(tmp_path / "f" / "run", "folder")
    with pytest.raises(UserError, match="^--output is empty; give a file path$"):
        check_output("", "file")
    with pytest.raises(ValueError):
        check_output(tmp_path, "dir")


def test_outputs_that_can_be_written_pass_and_nothing_is_created(tmp_path):
    check_output(tmp_path / "a" / "b" / "run", "folder")
    check_output(tmp_path / "a" / "gen.jsonl", "file")
    (tmp_path / "gen.jsonl").write_text("kept\n")
    check_output(tmp_path / "gen.jsonl", "file")  # decode resumes into it
    check_output(tmp_path, "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.jsonl"]
    assert (tmp_path / "gen.jsonl").read_text() == "kept\n"


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: read-only for a normal user; root writes anywhere it may, so /sys."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    try:
        open("/sys/.alignkit-probe", "w").close()
    except OSError:
        return Path("/sys")
    pytest.skip("no folder here refuses writes")


def test_an_output_where_the_user_may_not_write(tmp_path):
    folder = _unwritable_folder(tmp_path)
    with pytest.raises(UserError, match=rf"^cannot write --output '{folder}/run/gen.jsonl': .* in '{folder}'; choose "
                                        "a path you can write$"):
        check_output(folder / "run" / "gen.jsonl", "file")


# ---- --device


def test_devices_this_machine_lacks(monkeypatch):
    import torch

    from alignkit.engine.models import pick_device

    assert pick_device("CPU") == torch.device("cpu")
    for name in ("gpu", "cuda:x", "cuda:-1", "mps:1", ""):
        with pytest.raises(UserError, match=f"^unknown --device '{name}'; use auto, cpu, cuda, cuda:N or mps$"):
            pick_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match=r"^--device cuda:0: this machine has no CUDA GPU .*; use --device cpu"):
        pick_device("cuda:0")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match="^--device mps: this machine has no Apple MPS GPU"):
        pick_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UserError, match=r"^--device cuda:2: this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\); pick "
                                        "one of them, or --device cpu$"):
        pick_device("cuda:2")


# ---- python rewards


REWARDS = '''
def one(prompts):
    return [0.0] * len(prompts)
def three(a, b, c):
    return []
def keyword(prompts, completions, *, scale):
    return []
def flexible(prompts, completions, scale=1.0, *rest, **extra):
    return (len(c) * scale for c in completions)
def scalar(prompts, completions):
    return 1.0
def words(prompts, completions):
    return ["good" for _ in completions]
def holes(prompts, completions):
    return [None for _ in completions]
def short(prompts, completions):
    return [1.0]
def nan(prompts, completions):
    return [1.0, float("nan")]
def inf(prompts, completions):
    return [float("-inf"), 1.0]
class Scorer:
    def __call__(self, prompts, completions):
        return [2] * len(completions)
scorer = Scorer()
'''


@pytest.fixture
def rewards_file(tmp_path):
    path = tmp_path / "r.py"
    path.write_text(REWARDS)
    return path


SHAPE = "must take \\(prompts, completions\\) and return one number per completion; "


@pytest.mark.parametrize("name, at_load, words", [
    ("one", True, SHAPE + "it takes 1 argument$"),
    ("three", True, SHAPE + r"it needs 3 arguments \(a, b, c\)$"),
    ("keyword", True, SHAPE + r"it needs 3 arguments \(prompts, completions, scale\)$"),
    ("scalar", False, SHAPE + "it returned float 1.0$"),
    ("words", False, SHAPE + "it returned a list holding str 'good'$"),
    ("holes", False, SHAPE + "it returned a list holding NoneType None$"),
    ("short", False, SHAPE + "it returned 1 number for 2 completions$"),
    ("nan", False, r"returned nan for completion 1 \('b'\); rewards must be finite numbers$"),
    ("inf", False, r"returned -inf for completion 0 \('a'\); rewards must be finite numbers$"),
])
def test_a_reward_of_the_wrong_shape_is_one_line_naming_the_spec(rewards_file, name, at_load, words):
    spec = f"{rewards_file}:{name}"
    pattern = f"^reward '{spec}' {words}"
    if at_load:  # before any model is loaded or any sample drawn
        with pytest.raises(UserError, match=pattern):
            load_python_reward(spec)
        return
    reward = load_python_reward(spec)
    with pytest.raises(UserError, match=pattern):
        reward(["p", "q"], ["a", "b"])


def test_rewards_of_the_right_shape_keep_working(rewards_file):
    assert load_python_reward(f"{rewards_file}:flexible")(["p", "q"], ["ab", "c"]) == [2.0, 1.0]  # a generator
    assert load_python_reward(f"{rewards_file}:scorer")(["p"], ["a"]) == [2.0]  # a callable object, ints
    with pytest.raises(UserError, match=r"'missing' is not a function in .*r\.py$"):
        load_python_reward(f"{rewards_file}:missing")
