"""docs/cli.md's "Values" table is the ranges the dataclasses declare: one row per numeric flag, nothing missing,
nothing stale. `python tests/cli/test_values_doc.py` prints the table to paste after a change."""
import dataclasses
import re
from pathlib import Path

from alignkit import config as C
from alignkit import plugins
from alignkit.options import flag_type
from alignkit.ranges import Range

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
FIRST_PARTY = {"alignkit.builtins.objectives", "alignkit.builtins.decoders", "qempo", "hdpo", "poet", "conformative"}
# Numeric options where every number means something: a pass mark and a reward target are on the reward's scale.
ANY_NUMBER = {"pass_threshold", "min_reward"}


def sections():
    """(commands label, flag prefix, dataclass) for the core commands and the first-party plugins' options."""
    out = [("prepare", "", C.PrepareConfig), ("train", "", C.TrainConfig), ("decode", "", C.DecodeConfig),
           ("eval", "", C.EvalConfig)]
    reg = plugins.registry()
    for kind, label, prefix in (("objective", "train {}", ""), ("transform", "train --{}", "{}-"),
                                ("decoder", "decode --{}", "{}-")):
        for record in reg.all(kind):
            if record.plugin in FIRST_PARTY:
                out.append((label.format(record.name), prefix.format(record.name), record.options))
    return out


def expected_rows():
    """{(flag, valid values): sorted commands}: options with one range in several commands share a row."""
    rows: dict[tuple[str, str], list[str]] = {}
    for label, prefix, cls in sections():
        types = C.field_types(cls)
        for f in dataclasses.fields(cls):
            kind = flag_type(types[f.name])
            if kind not in (int, float):
                continue
            valid: Range | None = f.metadata.get("range")
            if valid is None:
                assert f.name in ANY_NUMBER, f"{label} --{f.name} is a number without a range: declare one in opt()"
                text = "any number"
            else:
                text = valid.requirement() + (", or unset" if f.default is None else "")
            flag = "--" + prefix + C.flag_name(f)[2:]
            rows.setdefault((flag, text), []).append(label)
    return rows


def table() -> str:
    lines = ["| option | valid values | in |", "|---|---|---|"]
    for (flag, text), where in sorted(expected_rows().items()):
        lines.append(f"| `{flag}` | {text} | {', '.join(where)} |")
    return "\n".join(lines)


def documented_rows():
    text = DOC.read_text()
    section = text.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in section.splitlines():
        m = re.match(r"^\| `(--[\w-]+)` \| (.+?) \| (.+?) \|$", line)
        if m:
            found[(m[1], m[2])] = m[3].split(", ")
    return found


def test_the_values_table_matches_the_dataclasses():
    documented, expected = documented_rows(), expected_rows()
    assert documented, "docs/cli.md has no '## Values' table"
    assert {k: sorted(v) for k, v in documented.items()} == {k: sorted(v) for k, v in expected.items()}, (
        "docs/cli.md's Values table is stale; paste the output of `python tests/cli/test_values_doc.py`")


def test_the_ranges_issue_14_asks_for():
    """Spot checks of the declared ranges themselves: both ends of --top-p, an optional --max-steps, a plugin's."""
    rows = expected_rows()
    assert rows[("--top-p", "in (0, 1]")] == ["decode"]
    assert rows[("--max-steps", "at least 1, or unset")] == ["train"]
    assert rows[("--eval-split", "in [0, 1)")] == ["train"]
    assert rows[("--conformative-weight", "in [0, 1]")] == ["decode --conformative"]
    assert sorted(rows[("--beta", "greater than 0")]) == ["train dpo", "train hdpo", "train qempo", "train simpo"]


if __name__ == "__main__":
    print(table())
