"""Every plugin example in docs/plugins.md runs: each ```python block is registered as a plugin, then the command in
the `<!-- run: ARGS => EXPECTED -->` line under it runs through the CLI and must print EXPECTED."""
import json
import re
import shutil
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignkit import plugins
from alignkit.cli import build_app

DOC = Path(__file__).parents[2] / "docs" / "plugins.md"
EXAMPLE = re.compile(r"```python\n(?P<code>.*?)```\s*\n<!-- run: (?P<args>.*?) => (?P<expect>.*?) -->", re.S)
EXAMPLES = [(m["code"], m["args"], m["expect"]) for m in EXAMPLE.finditer(DOC.read_text())]


def test_every_hook_of_the_contract_has_a_runnable_example():
    code = "\n".join(c for c, _, _ in EXAMPLES)
    hooks = [n for n in plugins.HOOK_NAMES]
    missing = [h for h in hooks if f"def {h}(" not in code]
    assert missing == [] and len(EXAMPLES) == 10


@pytest.fixture
def inputs(tmp_path):
    """The files the examples' commands read."""
    generations = tmp_path / "gens.jsonl"
    generations.write_text("".join(json.dumps({"prompt_id": p, "prompt": f"describe the {t} :", "sample_id": s,
                                               "text": text}) + "\n"
                                   for p, t, texts in ((0, "apple", ("red and sweet", "red and sweet")),
                                                       (1, "sky", ("blue", "bright")))
                                   for s, text in enumerate(texts)))
    goodbad = tmp_path / "goodbad.jsonl"
    goodbad.write_text('{"question": "describe the sky :", "good": " blue", "bad": " red"}\n'
                       '{"question": "describe the sky :", "good": 3, "bad": " red"}\n')
    toy3 = tmp_path / "toy3-model"
    shutil.copytree(plugins.resolve_resource("toy:instruct", "model"), toy3)
    (toy3 / "alignkit-model.json").write_text(json.dumps({"world": "toy3"}))
    return {"tmp": str(tmp_path), "generations": str(generations), "goodbad": str(goodbad), "toy3_model": str(toy3)}


def _params():
    for i, (code, args, expect) in enumerate(EXAMPLES):
        slow = args.startswith(("train", "decode"))  # a few seconds each on 2 cores
        yield pytest.param(i, code, args, expect, id=args.split()[0] + f"-{i}",
                           marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("index,code,args,expect", list(_params()))
def test_docs_example_runs(index, code, args, expect, inputs):
    module = types.ModuleType(f"alignkit_docs_example_{index}")
    exec(compile(code, f"docs/plugins.md example {index}", "exec"), module.__dict__)
    plugins.register_plugin(module, f"docs-example-{index}")
    try:
        assert not plugins.registry().failures, plugins.registry().failures
        result = CliRunner().invoke(build_app(), args.format(**inputs).split())
    finally:
        plugins.unregister_plugin(f"docs-example-{index}")
    assert result.exit_code == 0, result.output
    text, _, check = expect.partition("; file ")
    assert text.format(**inputs) in result.output
    if check:  # "; file PATH has N lines"
        path, lines = re.fullmatch(r"(\S+) has (\d+) lines", check.format(**inputs)).groups()
        assert len(Path(path).read_text().splitlines()) == int(lines)
