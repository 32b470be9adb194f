"""Plugins: in-test registration, entry-point loading, failure isolation, allow-list, duplicates."""
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from alignkit import hookimpl, plugins
from alignkit.cli import build_app
from alignkit.config import opt
from alignkit.errors import UserError
from alignkit.registry import Objective, Registry


@dataclass
class ZapOptions:
    zap_strength: float = opt(0.25, "How hard to zap.")


class ZapPlugin:
    @staticmethod
    @hookimpl
    def register_objectives(register):
        register(Objective(name="zap", help="Zap objective for tests.", options=ZapOptions,
                           pairwise_loss=lambda *a, **k: None, needs_reference=False))


@pytest.fixture
def zap():
    plugins.register_plugin(ZapPlugin, "zap-plugin")
    yield
    plugins.unregister_plugin("zap-plugin")


def test_plugin_defined_in_a_test_appears_in_train_help(zap):
    runner = CliRunner()
    listing = runner.invoke(build_app(), ["train", "--help"])
    assert "zap" in listing.output
    detail = runner.invoke(build_app(), ["train", "zap", "--help"])
    assert "--zap-strength" in detail.output
    resolved = runner.invoke(build_app(), ["train", "zap", "--zap-strength", "0.75", "--print-config"])
    assert resolved.exit_code == 0, resolved.output
    assert "zap_strength: 0.75" in resolved.output
    assert "objective: zap" in resolved.output


def test_plugin_is_gone_after_unregistering(zap):
    plugins.unregister_plugin("zap-plugin")
    assert ("objective", "zap") not in plugins.registry()
    plugins.register_plugin(ZapPlugin, "zap-plugin")  # the fixture unregisters it again


def test_plugins_command_lists_first_party_plugins():
    out = CliRunner().invoke(build_app(), ["plugins", "--all"])
    assert out.exit_code == 0
    for name in ("qempo", "hdpo", "poet", "conformative"):
        assert name in out.output


def test_duplicate_names_are_an_error_naming_both_plugins():
    registry = Registry()
    record = Objective(name="same", help="x", pairwise_loss=lambda: None)
    registry.add(record, "first")
    with pytest.raises(UserError, match="'first' and plugin 'second'"):
        registry.add(record, "second")


def test_unknown_name_suggests_the_nearest():
    registry = Registry()
    registry.add(Objective(name="dpo", help="x", pairwise_loss=lambda: None), "p")
    with pytest.raises(UserError, match="unknown objective 'dpp'; did you mean 'dpo'"):
        registry.get("objective", "dpp")


def _fake_distribution(tmp_path, name, body):
    """A module plus a dist-info declaring it in the `alignkit` entry-point group, importable from tmp_path."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    info = tmp_path / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[alignkit]\n{name} = {name}\n")


LIST_OBJECTIVES = "from alignkit import plugins; r = plugins.registry(); print(r.names('objective'))"


def _run(tmp_path, code, **env):
    full = {**os.environ, "PYTHONPATH": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full)


GOOD = """
from dataclasses import dataclass
from alignkit import hookimpl
from alignkit.registry import Objective

@hookimpl
def register_objectives(register):
    register(Objective(name="goodobj", help="x", pairwise_loss=lambda *a, **k: None))
"""


def test_entry_point_plugin_loads_and_a_broken_one_is_skipped_with_one_warning(tmp_path):
    _fake_distribution(tmp_path, "goodplug", GOOD)
    _fake_distribution(tmp_path, "badplug", "raise ImportError('no such thing as badplug_dep')\n")
    out = _run(tmp_path, LIST_OBJECTIVES)
    assert out.returncode == 0, out.stderr
    assert "goodobj" in out.stdout
    warnings = [line for line in out.stderr.splitlines() if "badplug" in line]
    assert len(warnings) == 1 and "skipped" in warnings[0] and "badplug_dep" in warnings[0]


def test_strict_mode_makes_a_broken_plugin_fatal(tmp_path):
    _fake_distribution(tmp_path, "badplug", "raise ImportError('boom')\n")
    out = _run(tmp_path, LIST_OBJECTIVES, ALIGNKIT_STRICT_PLUGINS="1")
    assert out.returncode != 0
    assert "plugin 'badplug' failed to load" in out.stderr


def test_allow_list_limits_which_entry_points_load(tmp_path):
    _fake_distribution(tmp_path, "goodplug", GOOD)
    _fake_distribution(tmp_path, "badplug", "raise ImportError('boom')\n")
    out = _run(tmp_path, "from alignkit import plugins; print(plugins.registry().plugins)",
               ALIGNKIT_LOAD_PLUGINS="goodplug")
    assert "goodplug" in out.stdout and "badplug" not in out.stdout + out.stderr
    out = _run(tmp_path, "from alignkit import plugins; print(plugins.registry().plugins)",
               ALIGNKIT_LOAD_PLUGINS="")
    assert "goodplug" not in out.stdout and "qempo" not in out.stdout


# ---- every plugin's loading happens inside its isolation: `alignkit --help` works and names the bad one

CLASHING_OPTION = """
from dataclasses import dataclass
from alignkit import hookimpl
from alignkit.config import opt
from alignkit.registry import Objective

@dataclass
class Options:
    temperature: float = opt(0.5, "clashes with train --temperature")

@hookimpl
def register_objectives(register):
    register(Objective(name="hotobj", help="x", options=Options, pairwise_loss=lambda *a, **k: None))
"""

MISSPELT_HOOK = """
from alignkit import hookimpl
from alignkit.registry import Objective

@hookimpl
def register_objective(register):
    register(Objective(name="typoobj", help="x", pairwise_loss=lambda *a, **k: None))
"""

RAISES_IN_REGISTER = """
from alignkit import hookimpl

@hookimpl
def register_decoders(register):
    raise RuntimeError("decoder table is on fire")
"""

EXITS_ON_IMPORT = "import sys\nsys.exit(3)\n"

BAD_PLUGINS = {
    "clashplug": (CLASHING_OPTION, "option 'temperature' has the name of a train flag"),
    "typoplug": (MISSPELT_HOOK, "'register_objective', which is no alignkit hook; did you mean 'register_objectives'"),
    "raiseplug": (RAISES_IN_REGISTER, "RuntimeError: decoder table is on fire"),
    "exitplug": (EXITS_ON_IMPORT, "SystemExit(3)"),
}


@pytest.mark.parametrize("name", sorted(BAD_PLUGINS))
def test_a_bad_plugin_is_skipped_with_one_warning_naming_it_and_help_still_works(tmp_path, name):
    body, reason = BAD_PLUGINS[name]
    _fake_distribution(tmp_path, name, body)
    _fake_distribution(tmp_path, "goodplug", GOOD)
    help_out = _run(tmp_path, "import sys; sys.argv=['alignkit', '--help']; from alignkit.cli import main; main()",
                    ALIGNKIT_LOAD_PLUGINS=f"{name},goodplug")
    assert help_out.returncode == 0 and "Traceback" not in help_out.stderr, help_out.stderr
    assert "train" in help_out.stdout and "decode" in help_out.stdout
    warnings = [line for line in help_out.stderr.splitlines() if name in line]
    assert len(warnings) == 1, help_out.stderr
    assert "skipped" in warnings[0] and reason in warnings[0], warnings[0]
    listed = _run(tmp_path, LIST_OBJECTIVES, ALIGNKIT_LOAD_PLUGINS=f"{name},goodplug")
    assert "goodobj" in listed.stdout  # the good plugin beside it still loads
    assert "hotobj" not in listed.stdout and "typoobj" not in listed.stdout  # nothing of the bad one stays


@pytest.mark.parametrize("name", ["typoplug", "exitplug"])
def test_strict_mode_turns_a_bad_plugin_into_one_error_line(tmp_path, name):
    body, reason = BAD_PLUGINS[name]
    _fake_distribution(tmp_path, name, body)
    out = _run(tmp_path, "import sys; sys.argv=['alignkit', '--help']; from alignkit.cli import main; main()",
               ALIGNKIT_LOAD_PLUGINS=name, ALIGNKIT_STRICT_PLUGINS="1")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == [f"error: plugin '{name}' failed to load: " + lines[0].split("failed to load: ", 1)[1]]
    assert reason in lines[0]


def test_the_kinds_table_and_the_hookspecs_agree():
    from alignkit import hookspecs
    from alignkit.registry import KINDS

    register_hooks = {n for n in dir(hookspecs) if n.startswith("register_") and n != "register_commands"}
    assert {k.hook for k in KINDS.values()} == register_hooks


class ThirdPartyObjective:
    """An objective nobody at alignkit knows by name: POET must compose with it because it is pairwise."""

    @staticmethod
    @hookimpl
    def register_objectives(register):
        register(Objective(name="zapzap", help="x", pairwise_loss=lambda *a, **k: None, needs_reference=False))


def test_poet_composes_with_a_third_party_pairwise_objective():
    plugins.register_plugin(ThirdPartyObjective, "zapzap-plugin")
    try:
        out = CliRunner().invoke(build_app(), ["train", "zapzap", "--poet", "--print-config"])
        assert out.exit_code == 0, out.output
        assert "poet: true" in out.output
    finally:
        plugins.unregister_plugin("zapzap-plugin")
