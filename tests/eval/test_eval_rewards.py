"""Reward SPECs: python callables, the registry lookup and its error."""
import pytest

from alignkit.errors import UserError
from alignkit.builtins.rewards import is_python_spec, is_reward_model_spec, load_python_reward
from alignkit.plugins import load_reward


def test_python_reward_from_module_function(tmp_path, monkeypatch):
    (tmp_path / "eval_reward_mod.py").write_text("def count_words(prompts, completions):\n"
                                                 "    return [len(c.split()) + (0.5 if p.endswith('?') else 0.0)\n"
                                                 "            for p, c in zip(prompts, completions)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = load_reward("eval_reward_mod:count_words")
    assert fn(["Why?", "Say."], ["a b c", "d"]) == [3.5, 1.0]


def test_python_reward_from_file(tmp_path):
    (tmp_path / "my_reward.py").write_text("def score(prompts, completions):\n"
                                           "    return [float('yes' in c) for c in completions]\n")
    fn = load_reward(f"{tmp_path / 'my_reward.py'}:score")
    assert fn(["p", "p"], ["yes sir", "no"]) == [1.0, 0.0]


def test_python_reward_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot be imported"):
        load_python_reward("no_such_module_xyz:fn")
    with pytest.raises(UserError, match="not a function"):
        load_python_reward(f"{__file__}:missing")
    with pytest.raises(UserError, match="does not exist"):
        load_python_reward(f"{tmp_path}/nope.py:fn")


def test_spec_matching():
    assert is_python_spec("pkg.mod:fn") and is_python_spec("rewards/mine.py:score")
    assert not is_python_spec("toy") and not is_python_spec("toy:base")
    assert is_reward_model_spec("OpenAssistant/reward-model-deberta-v3-large-v2")
    assert not is_reward_model_spec("pkg.mod:fn") and not is_reward_model_spec("toy")


def test_unknown_spec_names_the_choices():
    with pytest.raises(UserError, match="no reward source understands 'not a spec'; use toy, module:function"):
        load_reward("not a spec")
