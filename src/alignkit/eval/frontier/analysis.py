"""The two judgements a frontier makes, as pure functions of (quality, diversity) pairs.

- Pareto-optimal: no other point is at least as good on both figures and better on one (weak dominance; each
  figure's direction is its metric's higher_is_better).
- Matched quality: for shared quality levels, each method's diversity interpolated linearly along its points
  sorted by quality, so methods are compared at equal quality rather than at equal knob settings.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

Pair = tuple[float, float]  # (quality, diversity)


def _oriented(pairs: Sequence[Pair], q_higher: bool, d_higher: bool) -> list[Pair]:
    # Flip a lower-is-better figure so "more is better" holds for both below.
    return [(q if q_higher else -q, d if d_higher else -d) for q, d in pairs]


def pareto(pairs: Sequence[Pair], q_higher: bool = True, d_higher: bool = True) -> list[bool]:
    """For each pair, whether it is Pareto-optimal among `pairs`."""
    pts = _oriented(pairs, q_higher, d_higher)
    return [not any(oq >= q and od >= d and (oq > q or od > d) for oq, od in pts) for q, d in pts]


def curve(pairs: Sequence[Pair], d_higher: bool = True) -> list[Pair]:
    """A method's points sorted by quality; at a quality reached twice, the better diversity (the method can be
    run at that setting), so the curve is a function of quality."""
    best: dict[float, float] = {}
    for q, d in pairs:
        if q not in best or (d > best[q] if d_higher else d < best[q]):
            best[q] = d
    return sorted(best.items())


def interpolate(points: Sequence[Pair], level: float) -> float | None:
    """Diversity at quality `level` on a sorted curve, linear between neighbours; None outside its range."""
    if not points or level < points[0][0] or level > points[-1][0]:
        return None
    for (q0, d0), (q1, d1) in pairwise(points):
        if q0 <= level <= q1:
            return d0 if q1 == q0 else d0 + (d1 - d0) * (level - q0) / (q1 - q0)
    return points[0][1]  # a one-point curve, at its own quality


def shared_range(ranges: dict[str, tuple[float, float]]) -> tuple[float, float, list[str]]:
    """The quality interval inside the ranges of as many methods as possible, and those methods.

    Every method's range when they overlap; otherwise the largest group that does (methods that lower quality,
    such as conformative decoding, and methods that raise it rarely share a level), the widest on a tie."""
    best: tuple[tuple[int, float], float, float, list[str]] | None = None
    for q in sorted({end for r in ranges.values() for end in r}):
        members = [n for n, (lo, hi) in ranges.items() if lo <= q <= hi]
        lo, hi = max(ranges[n][0] for n in members), min(ranges[n][1] for n in members)
        key = (len(members), hi - lo)
        if best is None or key > best[0]:
            best = (key, lo, hi, members)
    assert best is not None, "no ranges"
    return best[1], best[2], best[3]


def levels(lo: float, hi: float, count: int = 5) -> list[float]:
    """`count` evenly spaced quality levels from lo to hi (one when they are equal)."""
    if hi == lo or count == 1:
        return [lo]
    # The last level is hi itself, not lo + (hi - lo) * 1.0, which rounding can put just outside a range.
    return [lo + (hi - lo) * i / (count - 1) for i in range(count - 1)] + [hi]


def matched_quality(methods: dict[str, Sequence[Pair]], d_higher: bool = True,
                    count: int = 5) -> dict[str, object]:
    """{levels, methods: those whose range holds every level, shared: whether that is all of them,
    ranges {method: [lo, hi]}, diversity: {method: [value or None per level]}} for the matched-quality table."""
    curves = {name: curve(pairs, d_higher) for name, pairs in methods.items() if pairs}
    if not curves:
        return {"levels": [], "methods": [], "shared": False, "ranges": {}, "diversity": {}}
    ranges = {name: (c[0][0], c[-1][0]) for name, c in curves.items()}
    lo, hi, members = shared_range(ranges)
    found = levels(lo, hi, count)
    return {"levels": found, "methods": members, "shared": len(members) == len(curves),
            "ranges": {n: list(r) for n, r in ranges.items()},
            "diversity": {name: [interpolate(c, q) for q in found] for name, c in curves.items()}}
