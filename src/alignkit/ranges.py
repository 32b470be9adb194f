"""Valid ranges of numeric options: declared beside the option (`opt(..., min=1)`), checked in one place.

    batch_size: int = opt(8, "Pairs per micro-batch.", min=1)           # [1, ∞)
    top_p: float = opt(1.0, "Nucleus mass.", above=0, max=1)            # (0, 1]
    eval_split: float = opt(0.0, "Held-out fraction.", min=0, below=1)  # [0, 1)

`min`/`max` are closed ends, `above`/`below` open ones. `alignkit.config.build` checks every value the user gave
(flag, YAML or a model's defaults) before the dataclass is made, so `train`, `decode`, `eval`, `prepare` and
`alignkit validate` refuse the same values with the same line: `--top-p must be in (0, 1], got 1.5`. A field that
may be None (`--max-steps`) is checked only when set. Plugin loading refuses a malformed range (see `check_field`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """The interval an option's value must lie in; None for an end that is unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False   # True: the value must be greater than `low`, not equal to it
    high_open: bool = False

    @classmethod
    def of(cls, min: Any = None, max: Any = None, above: Any = None, below: Any = None) -> Range | None:
        """The Range behind `opt`'s keywords, or None when none is given; TypeError for a malformed one."""
        if min is not None and above is not None:
            raise TypeError("give min= (closed) or above= (open) for the lower end, not both")
        if max is not None and below is not None:
            raise TypeError("give max= (closed) or below= (open) for the upper end, not both")
        low, high = (min if above is None else above), (max if below is None else below)
        if low is None and high is None:
            return None
        for end in (low, high):
            if end is not None and (isinstance(end, bool) or not isinstance(end, (int, float))
                                    or not math.isfinite(end)):
                raise TypeError(f"a range's ends are finite numbers, got {end!r}")
        made = cls(low, high, above is not None, below is not None)
        if low is not None and high is not None and (low > high or (low == high and (made.low_open
                                                                                     or made.high_open))):
            raise TypeError(f"the range {made.describe()} holds no value")
        return made

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False  # nan compares false anyway; inf would overflow a step count or a sampler
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """'(0, 1]', or 'at least 1' / 'greater than 0' / 'at most 1' / 'less than 1' for one end."""
        if self.low is not None and self.high is not None:
            return f"{'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'greater than' if self.low_open else 'at least'} {_num(self.low)}"
        return f"{'less than' if self.high_open else 'at most'} {_num(self.high)}"

    def requirement(self) -> str:
        """What the value must be, as the error says it: 'in (0, 1]' or 'at least 1'."""
        both = self.low is not None and self.high is not None
        return ("in " if both else "") + self.describe()


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def out_of_range(name: str, value: Any, valid: Range) -> str | None:
    """The one-line complaint about `value` of the option called `name` (a flag or a YAML key), or None if it
    lies in `valid`: '--batch-size must be at least 1, got 0'."""
    if value is None or valid.contains(value):
        return None
    shown = _num(value) if isinstance(value, float) else value
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be a finite number ({valid.requirement()}), got {shown}"
    return f"{name} must be {valid.requirement()}, got {shown}"


def check_field(name: str, valid: Range, annotation_type: Any, default: Any, where: str) -> None:
    """A range on a field that is not a number, or whose default lies outside it, is a plugin's bug: TypeError
    (raised at loading, inside the plugin's isolation)."""
    if annotation_type not in (int, float):
        raise TypeError(f"{where}: option '{name}' has a range but is not a number ({annotation_type})")
    if default is not None and not (isinstance(default, (int, float)) and not isinstance(default, bool)
                                    and valid.contains(default)):
        raise TypeError(f"{where}: option '{name}' defaults to {default!r}, outside its own range {valid.describe()}")
