"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, say how to resume.

The first signal only raises a flag the loop reads after each optimizer step (every process agrees on it, so all
stop at the same step); a second Ctrl-C stops at once, as Python would.
"""
from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any


class StopRequest:
    """`with StopRequest() as stop:` ... `if stop.requested:` — installed on the main thread only."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint (Ctrl-C again to stop "
              "at once)", file=sys.stderr)

    def __enter__(self) -> StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (a notebook's worker): no handling, as before
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
