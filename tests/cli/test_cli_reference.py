"""docs/cli-reference.md is the live `--help` of every command: regenerated here, in a fresh process (so that no
plugin a test registered in-process leaks in), it must equal the file. After changing a flag:
`python -m alignkit.clidoc > docs/cli-reference.md`."""
import os
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "cli-reference.md"


def test_cli_reference_is_current():
    env = {k: v for k, v in os.environ.items() if k not in ("ALIGNKIT_LOAD_PLUGINS", "ALIGNKIT_STRICT_PLUGINS")}
    fresh = subprocess.run([sys.executable, "-m", "alignkit.clidoc"], env=env, capture_output=True, text=True,
                           check=True).stdout
    assert fresh == DOC.read_text(), ("docs/cli-reference.md is stale: run "
                                      "`python -m alignkit.clidoc > docs/cli-reference.md`")


def test_it_documents_every_command_and_objective():
    text = DOC.read_text()
    for title in ("alignkit prepare", "alignkit decode", "alignkit eval", "alignkit validate", "alignkit train dpo",
                  "alignkit train qempo", "alignkit train hdpo", "alignkit train simpo"):
        assert f"\n## {title}\n" in text
    assert "--conformative-weight" in text and "--poet" in text and "--report-to" in text
    assert "train ipo" not in text  # a third-party plugin, even when installed, is not alignkit's reference
