"""Config precedence (defaults <- YAML <- flags), unknown keys, validate."""
import yaml
from typer.testing import CliRunner

from alignkit.cli import build_app


def invoke(*args):
    return CliRunner().invoke(build_app(), list(args))


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_samples: 3\nmax-new-tokens: 7\n")
    out = invoke("decode", "--config", str(cfg), "--num-samples", "5", "--print-config")
    assert out.exit_code == 0, out.output
    assert "num_samples: 5" in out.output          # flag beats YAML
    assert "max_new_tokens: 7" in out.output       # YAML beats default (128)
    assert "temperature: 1.0" in out.output        # default


def test_unknown_yaml_key_names_key_file_and_suggestion(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_sample: 3\n")
    out = invoke("decode", "--config", str(cfg))
    assert out.exit_code == 2
    assert f"unknown key 'num_sample' in {cfg}; did you mean 'num_samples'?" in out.output


def test_wrong_type_and_bad_choice_in_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_samples: many\n")
    assert "'num_samples' in" in invoke("decode", "--config", str(cfg)).output
    cfg.write_text("template: chatt\n")
    out = invoke("decode", "--config", str(cfg))
    assert out.exit_code == 2 and "did you mean 'chat'?" in out.output


def test_required_value_missing_is_one_line(tmp_path):
    out = invoke("prepare", "data.jsonl")
    assert out.exit_code == 2
    assert "missing --output" in out.output


def test_validate_accepts_a_good_config_and_rejects_a_bad_one(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("command: decode\nnum_samples: 4\n")
    out = invoke("validate", str(good))
    assert out.exit_code == 0, out.output
    assert "num_samples: 4" in out.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("command: decode\nnum_smples: 4\n")
    out = invoke("validate", str(bad))
    assert out.exit_code == 2 and "did you mean 'num_samples'" in out.output
    none = tmp_path / "none.yaml"
    none.write_text("num_samples: 4\n")
    assert "must say which command" in invoke("validate", str(none)).output


def test_a_config_for_another_command_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("command: prepare\n")
    out = invoke("decode", "--config", str(cfg))
    assert out.exit_code == 2 and "is a config for 'command: prepare'" in out.output


def test_learning_rate_default_follows_the_model(tmp_path):
    """A Hub model without --learning-rate gets TRL's 1e-6, never the toy world's 3e-4; a flag or YAML wins."""
    rate = lambda *args: yaml.safe_load(invoke("train", "dpo", *args, "--print-config").output)["learning_rate"]
    assert rate() == 3e-4  # toy:instruct
    assert rate("--model", "Qwen/Qwen2.5-0.5B-Instruct") == 1e-6
    assert rate("--model", "Qwen/Qwen2.5-0.5B-Instruct", "--learning-rate", "5e-6") == 5e-6
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: 2.0e-5\n")
    assert rate("--model", "some/model", "--config", str(cfg)) == 2e-5


def test_a_float_written_without_a_dot_is_the_number(tmp_path):
    """YAML 1.1 (PyYAML) reads `5e-4` as the string '5e-4'; a float option takes it as 0.0005, and a word stays an
    error that names the key."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: 5e-4\nbeta: 1E-1\nmax_grad_norm: 2\n")
    out = invoke("train", "dpo", "--config", str(cfg), "--print-config")
    assert out.exit_code == 0, out.output
    printed = yaml.safe_load(out.output)
    assert (printed["learning_rate"], printed["beta"], printed["max_grad_norm"]) == (5e-4, 0.1, 2.0)
    cfg.write_text("learning_rate: fast\n")
    out = invoke("train", "dpo", "--config", str(cfg))
    assert out.exit_code == 2 and "'learning_rate' in" in out.output and "should be float" in out.output
