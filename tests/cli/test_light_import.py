"""`alignkit --help` must stay fast: building the CLI (and loading every plugin) imports no torch."""
import subprocess
import sys


def test_building_the_cli_imports_no_torch_or_transformers():
    code = (
        "import sys, alignkit.cli as c; c.build_app();"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'peft') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_runs_through_the_console_script():
    out = subprocess.run([sys.executable, "-m", "alignkit.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("prepare", "train", "decode", "eval", "plugins", "validate"):
        assert command in out.stdout



def test_python_dash_m_alignkit_is_the_cli():
    """`python -m alignkit` (what torchrun and accelerate launch run) is the same CLI."""
    out = subprocess.run([sys.executable, "-m", "alignkit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for command in ("prepare", "train", "decode", "eval", "plugins", "validate"):
        assert command in out.stdout
