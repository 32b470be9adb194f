"""Pareto marks and the matched-quality interpolation of `alignkit frontier`, against numbers worked by hand."""
import pytest

from alignkit.eval.frontier.analysis import curve, interpolate, levels, matched_quality, pareto, shared_range


def test_pareto_marks_the_points_no_other_beats_on_both():
    """(quality, diversity): A (0.9, 3.0), B (0.8, 4.0), C (0.7, 3.5), D (0.85, 2.0), E (0.9, 2.5).
    C is beaten by B (0.8 > 0.7, 4.0 > 3.5); D by A (0.9 > 0.85, 3.0 > 2.0); E ties A in quality and has less
    diversity, so A weakly dominates it. A and B remain."""
    pairs = [(0.9, 3.0), (0.8, 4.0), (0.7, 3.5), (0.85, 2.0), (0.9, 2.5)]
    assert pareto(pairs) == [True, True, False, False, False]


def test_pareto_follows_each_figures_direction():
    """Same pairs with diversity lower-is-better (self-BLEU): now low diversity values win. D (0.85, 2.0) beats
    C and B (lower quality, higher value); A (0.9, 3.0) is beaten by E (0.9, 2.5); E is beaten by no one."""
    pairs = [(0.9, 3.0), (0.8, 4.0), (0.7, 3.5), (0.85, 2.0), (0.9, 2.5)]
    assert pareto(pairs, d_higher=False) == [False, False, False, True, True]
    # Quality lower-is-better too: the lowest quality with the lowest value wins, C (0.7, 3.5) and D (0.85, 2.0).
    assert pareto(pairs, q_higher=False, d_higher=False) == [False, False, True, True, False]


def test_identical_points_are_both_pareto_optimal():
    """Conformative at weight 0 and the start can tie exactly: neither beats the other."""
    assert pareto([(0.8, 4.1), (0.8, 4.1), (0.7, 4.0)]) == [True, True, False]


def test_interpolation_is_linear_between_neighbours_sorted_by_quality():
    """Points given out of order (sweep order is not quality order): sorted they are (0.80, 4.0), (0.85, 3.5),
    (0.90, 3.0). At 0.82: 4.0 + (3.5 - 4.0) * 0.02 / 0.05 = 3.8; at 0.875: 3.5 - 0.5 * 0.5 = 3.25."""
    c = curve([(0.85, 3.5), (0.90, 3.0), (0.80, 4.0)])
    assert c == [(0.80, 4.0), (0.85, 3.5), (0.90, 3.0)]
    assert interpolate(c, 0.82) == pytest.approx(3.8)
    assert interpolate(c, 0.875) == pytest.approx(3.25)
    assert interpolate(c, 0.80) == 4.0 and interpolate(c, 0.90) == 3.0
    assert interpolate(c, 0.79) is None and interpolate(c, 0.91) is None


def test_a_quality_reached_twice_keeps_the_better_diversity():
    assert curve([(0.8, 3.0), (0.8, 3.6), (0.9, 2.0)]) == [(0.8, 3.6), (0.9, 2.0)]
    assert curve([(0.8, 3.0), (0.8, 3.6)], d_higher=False) == [(0.8, 3.0)]


def test_levels_lie_inside_the_range_most_methods_share():
    """Ranges [0.80, 0.90] and [0.84, 0.95] share [0.84, 0.90]: 5 levels 0.84, 0.855, 0.87, 0.885, 0.90.
    Add c [0.5, 0.7], below both: the largest overlapping group is still {a, b}, c is left out."""
    lo, hi, members = shared_range({"a": (0.80, 0.90), "b": (0.84, 0.95)})
    assert (lo, hi, members) == (0.84, 0.90, ["a", "b"])
    found = levels(lo, hi)
    assert found == pytest.approx([0.84, 0.855, 0.87, 0.885, 0.90])
    assert found[-1] == 0.90  # exactly the range's end, so the method that ends there is not cut off by rounding
    assert shared_range({"a": (0.80, 0.90), "b": (0.84, 0.95), "c": (0.5, 0.7)}) == (0.84, 0.90, ["a", "b"])
    # Two disjoint singles: the wider one wins the tie; a one-point range gives one level.
    assert shared_range({"a": (0.5, 0.6), "b": (0.8, 0.9001)})[2] == ["b"]
    assert levels(0.8, 0.8) == [0.8]


def test_matched_quality_table_by_hand():
    """a: (0.80, 4.0), (0.90, 3.0); b: (0.85, 3.9), (0.95, 3.1). Shared range [0.85, 0.90], 3 levels
    0.85, 0.875, 0.90. a: 3.5, 3.25, 3.0. b: 3.9, 3.9 - 0.8 * 0.25 = 3.7, 3.9 - 0.8 * 0.5 = 3.5."""
    table = matched_quality({"a": [(0.90, 3.0), (0.80, 4.0)], "b": [(0.85, 3.9), (0.95, 3.1)]}, count=3)
    assert table["shared"] and table["methods"] == ["a", "b"]
    assert table["levels"] == pytest.approx([0.85, 0.875, 0.90])
    assert table["diversity"]["a"] == pytest.approx([3.5, 3.25, 3.0])
    assert table["diversity"]["b"] == pytest.approx([3.9, 3.7, 3.5])


def test_matched_quality_leaves_out_a_method_that_reaches_no_shared_level():
    """a: (0.80, 3.0), (0.90, 2.0); b: (0.82, 3.5), (0.88, 2.9); c (a decoder that lowers quality):
    (0.60, 5.0), (0.80, 4.1). {a, b} share [0.82, 0.88] (c touches a only at 0.80): levels 0.82, 0.85, 0.88.
    a: 3.0 - 10 * 0.02 = 2.8, 2.5, 2.2; b: 3.5, 3.2, 2.9; c reaches none of them."""
    table = matched_quality({"a": [(0.80, 3.0), (0.90, 2.0)], "b": [(0.82, 3.5), (0.88, 2.9)],
                             "c": [(0.60, 5.0), (0.80, 4.1)]}, count=3)
    assert not table["shared"] and table["methods"] == ["a", "b"]
    assert table["levels"] == pytest.approx([0.82, 0.85, 0.88])
    assert table["diversity"]["a"] == pytest.approx([2.8, 2.5, 2.2])
    assert table["diversity"]["b"] == pytest.approx([3.5, 3.2, 2.9])
    assert table["diversity"]["c"] == [None, None, None] and table["ranges"]["c"] == [0.60, 0.80]
