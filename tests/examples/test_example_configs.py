"""Every alignkit config under examples/ (any YAML with a `command:` key, in any folder; accelerate's own configs
and other YAML have none) resolves with `alignkit validate`, offline, and says in its first line how to run it."""
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alignkit.cli import build_app

ROOT = Path(__file__).parents[2]


def alignkit_configs():
    for path in sorted((ROOT / "examples").rglob("*.y*ml")):
        if path.suffix in (".yaml", ".yml") and "command" in (yaml.safe_load(path.read_text()) or {}):
            yield path


CONFIGS = list(alignkit_configs())


def test_there_is_one_per_algorithm_and_recipe():
    names = {p.stem for p in CONFIGS}
    assert {"dpo", "simpo", "hdpo", "qempo", "qempo-quality", "dpo-poet", "qempo-online-target", "conformative",
            "lora-hub"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_validates_and_its_first_line_runs_it(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the first line's path is relative to the checkout, as a user types it
    data = yaml.safe_load(path.read_text())
    words = [data["command"], *([data["objective"]] if data["command"] == "train" else [])]
    first = path.read_text().splitlines()[0]
    assert first == f"# alignkit {' '.join(words)} --config {path.relative_to(ROOT)}"

    result = CliRunner().invoke(build_app(), ["validate", str(path.relative_to(ROOT))])
    assert result.exit_code == 0, result.output
    assert f"is a valid config for 'alignkit {' '.join(words)}'" in result.output
    # keys exactly as --print-config writes them (underscores), so a user can diff a file against a dump
    printed = set(re.findall(r"^([a-z_]+):", result.output, re.M))
    assert set(data) <= printed, set(data) - printed
