"""The commands and python in the user-facing docs run.

- Every `alignkit …` line of a ```bash block (and every command in the algorithms index's table) resolves: it runs
  with `--print-config` appended, which parses every flag and resolves the config exactly as the real run would,
  without running it (`plugins` and `validate` run as they are). A command of a plugin that is not installed (the
  example package's `train ipo`) is skipped.
- Every ```python block executes.
- A ```bash block under `<!-- test: run -->` really runs, in order, in a temporary folder (slow lane; training
  commands get `--max-steps 2` appended so that they stay short); lines marked `# downloads` only resolve.
- README's test command is .ci/run's.
"""
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignkit import plugins
from alignkit.cli import build_app

ROOT = Path(__file__).parents[2]
DOCS = ["README.md", "examples/README.md", "docs/getting-started.md", "docs/footguns.md", "docs/logging.md",
        "docs/algorithms/README.md", "examples/alignkit-plugin-example/README.md"]
BLOCK = re.compile(r"(?P<marker><!-- test: run -->\s*)?```(?P<lang>bash|python)\n(?P<body>.*?)```", re.S)
# The flag that makes each command resolve everything (flags, files, plugins) and stop before the work itself.
RESOLVE_ONLY = {"prepare": "--print-config", "train": "--print-config", "decode": "--print-config",
                "eval": "--print-config", "frontier": "--dry-run"}


def blocks(lang):
    for doc in DOCS:
        for m in BLOCK.finditer((ROOT / doc).read_text()):
            if m["lang"] == lang:
                yield doc, m["body"], bool(m["marker"])


def command_args(line):
    """The argv after `alignkit` of one doc line (its trailing comment dropped), or None for other lines."""
    line = line.split(" #", 1)[0].strip()
    return shlex.split(line)[1:] if line.startswith("alignkit ") else None


def doc_commands():
    for doc, body, _ in blocks("bash"):
        for line in body.splitlines():
            args = command_args(line)
            if args:
                yield doc, args
    index = (ROOT / "docs/algorithms/README.md").read_text()
    for cell in re.findall(r"\| `(alignkit [^`]+)`", index):
        yield "docs/algorithms/README.md", shlex.split(cell)[1:]


COMMANDS = list(doc_commands())


def test_the_docs_have_commands_to_check():
    assert len(COMMANDS) > 25 and sum(doc == "docs/algorithms/README.md" for doc, _ in COMMANDS) >= 10


@pytest.mark.parametrize("doc,args", COMMANDS, ids=[f"{d}:{' '.join(a)[:60]}" for d, a in COMMANDS])
def test_command_resolves(doc, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that did run would write here, not into the checkout
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # paths in the docs are relative to the checkout
    if args[:1] == ["train"] and args[1] not in plugins.registry().names("objective"):
        pytest.skip(f"objective '{args[1]}' is a plugin that is not installed here")
    extra = [RESOLVE_ONLY[args[0]]] if args[0] in RESOLVE_ONLY else []
    result = CliRunner().invoke(build_app(), [*args, *extra])
    assert result.exit_code == 0, f"{doc}: alignkit {' '.join(args)}\n{result.output}"


@pytest.mark.parametrize("index,doc,code", [(i, d, c) for i, (d, c, _) in enumerate(blocks("python"))],
                         ids=lambda v: str(v)[:40])
def test_python_block_runs(index, doc, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{doc} python block {index}", "exec"), {"__name__": "__docs__"})


RUN_BLOCKS = [(doc, body) for doc, body, marked in blocks("bash") if marked]


@pytest.mark.slow
@pytest.mark.parametrize("doc,body", RUN_BLOCKS, ids=[d for d, _ in RUN_BLOCKS])
def test_marked_block_runs(doc, body, tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    for line in body.splitlines():
        args = command_args(line)
        if not args:
            continue
        extra = ["--print-config"] if "# downloads" in line else []
        if args[0] == "train" and not extra:
            extra = ["--max-steps", "2"]
        result = CliRunner().invoke(build_app(), [*args, *extra])
        assert result.exit_code == 0, f"{doc}: alignkit {' '.join(args)}\n{result.output}"
    if (tmp_path / "eval-templates").is_dir():  # footguns.md states these figures
        import json

        report = json.loads((tmp_path / "eval-templates" / "report.json").read_text())
        rewards = {f["label"]: round(f["metrics"]["reward"]["mean"], 3) for f in report["files"]}
        assert rewards == {"plain": 0.79, "chat": 0.72}


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"\n{ci}\n" in (ROOT / "README.md").read_text()
