"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Wrong input from the user (a name, a flag, a file). Never shown with a traceback."""

    exit_code = 2
    prefix = "error"


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'dpo'?' or '' — appended to an 'unknown X' message."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


class Interrupted(UserError):
    """The user stopped a command (Ctrl-C, SIGTERM): printed as one `interrupted:` line saying what was kept."""

    exit_code = 130
    prefix = "interrupted"
