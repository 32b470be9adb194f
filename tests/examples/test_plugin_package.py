"""examples/alignkit-plugin-example is a package a third party could publish: pip installs it (into a temporary
target, so the test environment is left as it was), `alignkit plugins` lists it, and `alignkit train ipo --poet`
trains on the toy world, each in a fresh process that finds the plugin through its entry point only."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import alignkit

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "examples" / "alignkit-plugin-example"
PREFS = Path(alignkit.__file__).parent / "toy" / "artifacts" / "prefs.jsonl"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """PYTHONPATH of a process that sees the package as installed (dist-info with its entry point)."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PACKAGE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # --no-build-isolation: build with this environment's setuptools, no download; a copy keeps build files out of
    # the checkout
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(tmp / "site"), str(source)], check=True)
    return os.pathsep.join([str(tmp / "site"), os.environ.get("PYTHONPATH", "")])


def alignkit_cli(pythonpath, *args, cwd=None):
    # strict: a plugin that fails to load must fail the test, not warn; wide: rich must not wrap the names
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "ALIGNKIT_STRICT_PLUGINS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "alignkit", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_plugins_lists_it(installed):
    result = alignkit_cli(installed, "plugins")
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if "ipo" in ln.split())
    assert "distinct-openings" in result.stdout, result.stdout
    assert "ipo" in line


@pytest.mark.skipif(not PREFS.is_file(), reason="toy world not built")
def test_train_ipo_with_poet_on_the_toy_world(installed, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(PREFS.read_text().splitlines(keepends=True)[:40]))
    result = alignkit_cli(installed, "train", "ipo", "--poet", "--max-steps", "5", "--data", str(data),
                          "--output", str(tmp_path / "ipo"))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "ipo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["loss"] == pytest.approx(25.0, rel=1e-5)  # policy = reference: (0 − 1/(2·0.1))², β default 0.1
    assert all(r["loss"] == r["loss"] and r["grad_norm"] > 0 for r in rows)  # finite, and it trains
    assert "toy world, exact over all responses" in result.stdout
