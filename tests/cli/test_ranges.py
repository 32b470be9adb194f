"""Ranges declared with opt(min=, max=, above=, below=): each end open and closed, the messages, where build checks
them (flag or YAML key, before a dataclass's __post_init__), and plugin records whose range is malformed."""
import math
from dataclasses import dataclass, field

import pytest

from alignkit import config as C
from alignkit.config import opt
from alignkit.errors import UserError
from alignkit.ranges import Range, out_of_range
from alignkit.registry import Objective, Registry


@pytest.mark.parametrize("keywords, inside, outside, described", [
    ({"min": 1}, [1, 2, 10**9], [0, 0.999, -1], "at least 1"),
    ({"above": 0}, [1e-12, 0.5, 7], [0, -1e-12], "greater than 0"),
    ({"max": 1}, [1, 0, -5], [1.000001, 2], "at most 1"),
    ({"below": 1}, [0.999999, -3], [1, 1.5], "less than 1"),
    ({"above": 0, "max": 1}, [1e-9, 0.5, 1], [0, 1.0000001, -1], "(0, 1]"),
    ({"min": 0, "below": 1}, [0, 0.5, 0.999], [1, -0.001], "[0, 1)"),
    ({"min": 0, "max": 1}, [0, 1, 0.25], [-0.1, 1.1], "[0, 1]"),
    ({"above": 0, "below": 1}, [0.5], [0, 1], "(0, 1)"),
])
def test_each_end_open_and_closed(keywords, inside, outside, described):
    valid = Range.of(**keywords)
    assert [valid.contains(x) for x in inside] == [True] * len(inside)
    assert [valid.contains(x) for x in outside] == [False] * len(outside)
    assert valid.describe() == described


def test_nan_and_infinity_are_outside_every_range():
    valid = Range.of(min=0)
    assert not valid.contains(math.nan) and not valid.contains(math.inf) and not Range.of(max=0).contains(-math.inf)
    assert out_of_range("--epochs", math.inf, Range.of(above=0)) == \
        "--epochs must be a finite number (greater than 0), got inf"


def test_messages_name_the_option_the_value_and_the_range():
    assert out_of_range("--batch-size", 0, Range.of(min=1)) == "--batch-size must be at least 1, got 0"
    assert out_of_range("--top-p", 1.5, Range.of(above=0, max=1)) == "--top-p must be in (0, 1], got 1.5"
    assert out_of_range("--top-p", 1.0, Range.of(above=0, max=1)) is None
    assert out_of_range("--max-steps", None, Range.of(min=1)) is None  # unset is not a value to check


@pytest.mark.parametrize("keywords, words", [
    ({"min": 0, "above": 0}, "not both"),
    ({"max": 1, "below": 1}, "not both"),
    ({"min": 2, "max": 1}, "holds no value"),
    ({"min": 1, "below": 1}, "holds no value"),
    ({"min": "1"}, "finite numbers"),
    ({"max": True}, "finite numbers"),
    ({"above": math.nan}, "finite numbers"),
])
def test_a_malformed_range_is_a_type_error_where_it_is_declared(keywords, words):
    with pytest.raises(TypeError, match=words):
        opt(0.5, "x", **keywords)
    assert Range.of(min=1, max=1).contains(1)  # one closed point is a range


@dataclass
class Knobs:
    size: int = opt(8, "A size.", min=1)
    share: float = opt(0.5, "A share.", above=0, max=1)
    limit: int | None = opt(None, "A limit.", min=1)
    name: str = opt("a", "A name.")


def test_build_checks_flags_and_yaml_and_names_each_as_the_user_wrote_it():
    assert C.build(Knobs, {"size": 3}, {"share": 1.0}).size == 3
    with pytest.raises(UserError, match=r"^--size must be at least 1, got 0$"):
        C.build(Knobs, {}, {"size": 0})
    with pytest.raises(UserError, match=r"^'share' in run.yaml must be in \(0, 1\], got 0$"):
        C.build(Knobs, {"share": 0}, {}, "run.yaml")
    with pytest.raises(UserError, match=r"^'w_limit' in c.yaml must be at least 1, got -2$"):  # a switch's key
        C.build(Knobs, {"limit": -2}, {}, "c.yaml", key=lambda f: "w_" + f.name)
    assert C.build(Knobs, {"limit": None}, {}).limit is None
    with pytest.raises(UserError, match=r"^--name is empty; give a value, or leave it out for its default$"):
        C.build(Knobs, {}, {"name": " "})  # as a path, "" is the working folder
    # a flag beats the YAML value, and only the value that wins is checked
    assert C.build(Knobs, {"size": 0}, {"size": 2}).size == 2


def test_the_range_is_checked_before_the_dataclass_checks_itself():
    """QEMPO's own __post_init__ keeps only the check that relates two options; the range speaks first."""
    from alignkit_qempo import QEMPOOptions

    with pytest.raises(UserError, match=r"^--gamma must be in \[0, 1\], got 2$"):
        C.build(QEMPOOptions, {}, {"gamma": 2.0})
    with pytest.raises(UserError, match=r"^--tau must be greater than 0, got 0$"):
        QEMPOOptions(tau=0.0)  # made in Python: check_ranges in __post_init__
    with pytest.raises(UserError, match="--max-kl needs --constraint kl"):
        QEMPOOptions(max_kl=1.0)


def test_every_default_lies_inside_its_own_range():
    for cls in (C.PrepareConfig, C.TrainConfig, C.DecodeConfig, C.EvalConfig):
        C.check_options(cls, cls.__name__)  # raises TypeError naming the field otherwise


def _objective(options: type) -> Objective:
    return Objective(name="zap", help="z", options=options, pairwise_loss=lambda *a, **k: None,
                     needs_reference=False)


def test_plugin_loading_refuses_a_range_that_cannot_work():
    @dataclass
    class OnText:
        word: str = field(default="a", metadata={"help": "", "range": Range.of(min=1)})

    @dataclass
    class DefaultOutside:
        rate: float = opt(0.0, "A rate.", above=0)

    @dataclass
    class NotARange:
        rate: float = field(default=1.0, metadata={"help": "", "range": (0, 1)})

    for options, words in ((OnText, "has a range but is not a number"),
                           (DefaultOutside, "defaults to 0.0, outside its own range greater than 0"),
                           (NotARange, "which is not an alignkit.ranges.Range")):
        with pytest.raises(TypeError, match=words):
            Registry().check(_objective(options), "zap-plugin")


def test_a_plugin_with_a_malformed_range_is_skipped_with_one_warning(tmp_path, monkeypatch, capsys):
    """A range that raises inside opt() fails the plugin's import, which loading isolates like any other bug."""
    from alignkit import plugins

    (tmp_path / "badrange.py").write_text(
        "from dataclasses import dataclass\nfrom alignkit.config import opt\n"
        "@dataclass\nclass O:\n    x: float = opt(1.0, 'x', min=2, max=1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    plugins._load_third_party(plugins.pluggy.PluginManager("alignkit"), registry, "badrange",
                              lambda: __import__("badrange"))
    assert registry.failures == [("badrange", "TypeError: the range [2, 1] holds no value")]
    assert "plugin 'badrange' failed to load and was skipped" in capsys.readouterr().err
