"""`alignkit frontier` specs: one-line errors through the CLI, the grid, point identity and each point's commands.
Nothing here trains: a spec is checked before any point runs, and --dry-run prints the commands."""
import dataclasses
import textwrap

import pytest
from typer.testing import CliRunner

from alignkit import config as C
from alignkit import plugins
from alignkit.cli import build_app
from alignkit.eval.frontier import commands, grid, spec
from alignkit.eval.frontier.sections import Section, flag_for

BASE = """\
model: toy:instruct
data: toy:prefs-onpolicy
eval: {exact: true}
methods:
"""


def write(tmp_path, methods, base=BASE):
    path = tmp_path / "spec.yaml"
    path.write_text(base + textwrap.indent(textwrap.dedent(methods), "  "))
    return path


def frontier(*args):
    return CliRunner().invoke(build_app(), ["frontier", *map(str, args)])


def one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_unknown_method_key_names_it_and_the_choices(tmp_path):
    path = write(tmp_path, """\
        - name: dpo
          train: {objective: dpo}
          swep: {beta: [1, 2]}
        """)
    line = one_line_error(frontier(path, "--output", tmp_path / "out"))
    assert "unknown key 'swep'" in line and "did you mean 'sweep'?" in line
    assert "(choices: decode, name, sweep, train)" in line
    assert not (tmp_path / "out").exists()  # nothing ran


def test_sweep_knob_the_objective_does_not_have(tmp_path):
    path = write(tmp_path, """\
        - name: qempo-kl
          train: {objective: qempo, constraint: kl}
          sweep: {gama: [0.25, 0.5]}
        """)
    line = one_line_error(frontier(path))
    assert "unknown sweep knob 'gama' in method 'qempo-kl'" in line and "did you mean 'gamma'?" in line
    # The choices are the objective's own options, read from its registered dataclass, then any train flag.
    assert "the qempo options beta, constraint, dual_lr, gamma, length_normalize, max_kl, min_reward, tau" in line
    assert "alignkit train qempo --help" in line


def test_a_decoder_knob_is_checked_against_the_decoder(tmp_path):
    base = BASE.replace("{exact: true}", "{reward: toy}")
    path = write(tmp_path, """\
        - name: conf
          decode: {decoder: conformative}
          sweep: {wieght: [0, 0.5]}
        """, base)
    line = one_line_error(frontier(path))
    assert "unknown sweep knob 'wieght'" in line and "did you mean 'weight'?" in line
    assert "the conformative options base_model, mix, truncate_on, weight" in line


@pytest.mark.parametrize("sweep, says", [("{}", "has an empty grid"),
                                         ("{beta: []}", "sweep knob 'beta' in method 'dpo' of"),
                                         ("{beta: 2}", "should be a list of values")])
def test_empty_grid_is_an_error(tmp_path, sweep, says):
    path = write(tmp_path, f"""\
        - name: dpo
          train: {{objective: dpo}}
          sweep: {sweep}
        """)
    line = one_line_error(frontier(path))
    assert says in line
    if sweep == "{beta: []}":
        assert "has no values: an empty grid" in line


@pytest.mark.parametrize("body, says", [
    ("train: {objective: dpp}\n  sweep: {beta: [1]}",
     "has objective 'dpp', which is no registered objective; did you mean 'dpo'? (choices: dpo, hdpo, "),
    ("train: {objective: dpo, output: x}\n  sweep: {beta: [1]}", "'output' in train: of method 'dpo'"),
    ("train: {objective: dpo, betta: 1}\n  sweep: {epochs: [1]}", "unknown key 'betta' in train: of method 'dpo'"),
    ("train: {objective: dpo, beta: 1}\n  sweep: {beta: [1, 2]}", "is both fixed under train: and swept"),
    ("train: {objective: qempo, constraint: kl}\n  sweep: {gamma: [0.5, 1.5]}",
     "'gamma' in method 'dpo' at gamma=1.5 must be in [0, 1], got 1.5"),
    ("train: {objective: qempo}\n  sweep: {min_reward: [0.8]}",
     "--min-reward applies to online training only; add --online"),
    ("train: {objective: dpo}\n  sweep: {lr_schedule: [linear, cosin]}",
     "'lr_schedule' must be one of constant, linear, cosine; got 'cosin'; did you mean 'cosine'?"),
    ("train: {objective: dpo}\n  sweep: {beta: [1, 1.0]}", "are the same point"),
])
def test_bad_method_bodies(tmp_path, body, says):
    path = write(tmp_path, f"- name: dpo\n  {body}\n")
    assert says in one_line_error(frontier(path))


def test_a_name_yaml_reads_as_a_boolean(tmp_path):
    path = write(tmp_path, "- {name: on, train: {objective: dpo}, sweep: {beta: [1]}}\n")
    assert "got True (YAML reads on/off/yes/no as booleans: quote it)" in one_line_error(frontier(path))


def test_bad_top_level_and_eval_keys(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("modle: toy:instruct\nmethods: []\n")
    line = one_line_error(frontier(path))
    assert "unknown key 'modle'" in line and "did you mean 'model'?" in line
    assert "(choices: data, eval, methods, model, prompts)" in line
    path.write_text("eval: {exact: true, reward: toy}\nmethods: [{name: a, train: {objective: dpo}, "
                    "sweep: {beta: [1]}}]\n")
    line = one_line_error(frontier(path))
    assert "unknown key 'reward' in eval:" in line and "sampling keys need exact: false" in line
    path.write_text("eval: {num_samples: 4}\nmethods: [{name: a, train: {objective: dpo}, sweep: {beta: [1]}}]\n")
    assert "metric 'reward' in eval:" in one_line_error(frontier(path))  # sampled quality needs a reward
    path.write_text("eval: {reward: toy, diversity: distinct-7}\nmethods: [{name: a, train: {objective: dpo}, "
                    "sweep: {beta: [1]}}]\n")
    line = one_line_error(frontier(path))
    assert "'diversity: distinct-7'" in line and "is no diversity metric" in line and "distinct-2" in line


def load(tmp_path, methods, base=BASE):
    return spec.load(str(write(tmp_path, methods, base)), plugins.registry())


def test_grid_is_the_product_in_spec_order_with_typed_values(tmp_path):
    s = load(tmp_path, """\
        - name: hdpo
          train: {objective: hdpo, epochs: 1}
          sweep: {beta: [1, 2], alpha: [0.8, 0.9, 1.1]}
        """)
    points = grid.expand(s)
    assert points[0].method == grid.START and points[0].values == {"model": "toy:instruct"}
    hdpo = points[1:]
    assert [tuple(p.params.values()) for p in hdpo] == [(1.0, 0.8), (1.0, 0.9), (1.0, 1.1),
                                                       (2.0, 0.8), (2.0, 0.9), (2.0, 1.1)]
    assert all(isinstance(p.params["beta"], float) for p in hdpo)  # beta: 1 is typed as the option, 1.0
    assert hdpo[0].values == {"model": "toy:instruct", "data": "toy:prefs-onpolicy", "epochs": 1.0,
                              "beta": 1.0, "alpha": 0.8}
    assert hdpo[0].label == "hdpo beta=1 alpha=0.8"
    assert hdpo[0].folder == f"runs/hdpo-beta1-alpha0.8-{hdpo[0].id}" and len(hdpo[0].id) == 10
    assert len({p.id for p in points}) == 7


def test_identity_covers_every_input_and_nothing_else(tmp_path):
    one = grid.expand(load(tmp_path, "- {name: dpo, train: {objective: dpo}, sweep: {beta: [1, 2]}}\n"))
    same = grid.expand(load(tmp_path, "- {name: dpo, train: {objective: dpo}, sweep: {beta: [1.0, 2, 5]}}\n"))
    assert [p.id for p in one] == [p.id for p in same[:3]]  # 1 and 1.0 are one point; adding 5 adds one
    epochs = grid.expand(load(tmp_path, "- {name: dpo, train: {objective: dpo, epochs: 2}, sweep: {beta: [1]}}\n"))
    data = grid.expand(load(tmp_path, "- {name: dpo, train: {objective: dpo}, sweep: {beta: [1]}}\n",
                            BASE.replace("toy:prefs-onpolicy", "toy:prefs")))
    sampled = grid.expand(load(tmp_path, "- {name: dpo, train: {objective: dpo}, sweep: {beta: [1]}}\n",
                               BASE.replace("{exact: true}", "{reward: toy}")))
    ids = {one[1].id, epochs[1].id, data[1].id, sampled[1].id}
    assert len(ids) == 4  # a train key, the data and the eval settings each make another point
    assert data[0].id == one[0].id != sampled[0].id  # the start does not read the pairs, but is measured by eval
    # a trained point's model: another eval setting shares it, another train key does not
    assert sampled[1].model_id == one[1].model_id and len({one[1].model_id, epochs[1].model_id, data[1].model_id}) == 3


def test_commands_of_exact_and_sampled_points(tmp_path):
    s = load(tmp_path, """\
        - name: online
          train: {objective: qempo, constraint: kl, online: true, max_steps: 5}
          sweep: {min_reward: [0.85]}
        - name: poet
          train: {objective: dpo, poet: true}
          sweep: {beta: [2]}
        """, BASE.replace("model: toy:instruct\n", "model: toy:instruct\nprompts: my.jsonl\n"))
    start, online, poet = grid.expand(s)
    out = tmp_path / "out"
    (train, ev) = commands.steps(online, out)
    # Online training reads the spec's prompts, not its pairs; the spec's keys come as the command's own flags.
    # The model goes to its own folder (shared by points measured another way), the figures to the point's.
    model = out / online.model_folder
    assert online.model_folder == f"models/online-min_reward0.85-{online.model_id}" != online.folder
    assert train.argv == ["train", "qempo", "--model", "toy:instruct", "--max-steps", "5", "--online",
                          "--prompts", "my.jsonl", "--constraint", "kl", "--min-reward", "0.85",
                          "--output", str(model)]
    assert ev.argv == ["eval", "--output", str(out / online.folder / "eval"), "--model", str(model), "--exact"]
    assert commands.steps(poet, out)[0].argv[2:] == ["--model", "toy:instruct", "--data", "toy:prefs-onpolicy",
                                                     "--beta", "2.0", "--poet", "--output",
                                                     str(out / poet.model_folder)]
    assert start.model_folder == "" and [st.argv for st in commands.steps(start, out)] == [
        ["eval", "--output", str(out / start.folder / "eval"), "--model", "toy:instruct", "--exact"]]


def test_sampled_decoder_commands(tmp_path):
    base = BASE.replace("{exact: true}", "{reward: toy, num_samples: 4, prompts: p.jsonl, top_p: 0.9, seed: 3}")
    s = load(tmp_path, "- {name: c, decode: {decoder: conformative, top_p: 0.95}, sweep: {weight: [0.5]}}\n", base)
    _, point = grid.expand(s)
    decode, ev = commands.steps(point, tmp_path)
    folder = tmp_path / point.folder
    # The decoder's own top_p overrides eval's; prompts, sample count and seed come from eval: for every point.
    assert decode.argv == ["decode", "--conformative", "--model", "toy:instruct", "--prompts", "p.jsonl",
                           "--num-samples", "4", "--top-p", "0.95", "--seed", "3", "--conformative-weight", "0.5",
                           "--output", str(folder / "generations.jsonl")]
    assert ev.argv == ["eval", str(folder / "generations.jsonl"), "--output", str(folder / "eval"),
                       "--metrics", "reward,distinct-2", "--reward", "toy", "--seed", "3"]


def test_flags_come_from_the_dataclasses():
    """flag_for reads config.flag_name (a field's own `flag=` wins over its name) and scopes a switch's options."""
    @dataclasses.dataclass
    class Options:
        top_n: int = C.opt(1, "n")
        odd: int = C.opt(1, "o", flag="--very-odd")

    assert flag_for(Section("decoder", Options, "sample"), "top_n") == "--top-n"
    assert flag_for(Section("decoder", Options, "x", switch="x"), "odd") == "--x-very-odd"
    assert flag_for(Section("switch", Options, "poet"), "poet") == "--poet"


def _click_flags(*path):
    """Every option string of `alignkit <path>`, read from the real command the CLI builds."""
    import typer

    command = typer.main.get_command(build_app())
    for name in path:
        command = command.commands[name]
    return {opt for param in command.params for opt in param.opts + param.secondary_opts}


def test_every_flag_frontier_writes_is_a_flag_of_the_real_command():
    """The spec's keys become flags through flag_for alone; each one must exist on the command, for every
    registered objective (its options, train's flags, every transform's switch and options) and decoder."""
    from alignkit.eval.frontier.sections import decode_sections, train_sections

    registry = plugins.registry()
    for objective in registry.all("objective"):
        flags = _click_flags("train", objective.name)
        for section in train_sections(registry, objective):
            for name in section.names():
                assert flag_for(section, name) in flags, (objective.name, section.key, name)
    flags = _click_flags("decode")
    for decoder in registry.all("decoder"):
        for section in decode_sections(decoder):
            for name in section.names():
                assert flag_for(section, name) in flags, (decoder.name, name)
    for cls, path in ((C.EvalConfig, ("eval",)), (C.FrontierConfig, ("frontier",))):
        flags = _click_flags(*path)
        for name in Section("eval", cls).names():
            field = next(f for f in dataclasses.fields(cls) if f.name == name)
            assert field.metadata.get("argument") or flag_for(Section("eval", cls), name) in flags


def test_exact_decoder_point_runs_decode_exact(tmp_path):
    s = load(tmp_path, "- {name: c, decode: {decoder: conformative, base_model: toy:base}, "
                       "sweep: {weight: [0.25]}}\n")
    _, point = grid.expand(s)
    (step,) = commands.steps(point, tmp_path)
    assert step.argv == ["decode", "--conformative", "--model", "toy:instruct", "--exact",
                         "--conformative-base-model", "toy:base", "--conformative-weight", "0.25",
                         "--output", str(tmp_path / point.folder / "exact.json")]


def test_dry_run_prints_the_commands_and_runs_nothing(tmp_path):
    path = write(tmp_path, "- {name: dpo, train: {objective: dpo, max_steps: 3}, sweep: {beta: [1, 2]}}\n")
    result = frontier(path, "--output", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.count(": to run (") == 3
    assert "alignkit train dpo --model toy:instruct --data toy:prefs-onpolicy --max-steps 3 --beta 2.0" in result.output
    assert not (tmp_path / "out").exists()
