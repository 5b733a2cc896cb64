"""Statistics over seeds, checked against closed forms and brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actlab.lab.stats import compare, holm, rank, summarize, wilcoxon_min_p


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| > |t|) for Student's t with ``df`` degrees of freedom, via the regularised incomplete beta."""
    x = mpmath.mpf(df) / (df + mpmath.mpf(t) ** 2)
    return float(mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, x, regularized=True))


def test_summary_mean_std_and_ci_with_two_values_uses_the_cauchy_quantile():
    # With n=2 the t distribution has 1 degree of freedom (Cauchy): t_{0.975} = tan(0.475·pi).
    s = summarize([1.0, 3.0])
    assert s.n == 2 and s.mean == 2.0
    assert s.std == pytest.approx(math.sqrt(2.0), rel=1e-15)
    half = math.tan(0.475 * math.pi) * math.sqrt(2.0) / math.sqrt(2.0)
    assert s.ci_low == pytest.approx(2.0 - half, rel=1e-12)
    assert s.ci_high == pytest.approx(2.0 + half, rel=1e-12)


def test_summary_ci_with_three_values_uses_the_closed_form_quantile_for_two_df():
    # For 2 degrees of freedom the quantile is (2p - 1) / sqrt(2 p (1 - p)).
    values = [0.90, 0.93, 0.97]
    p = 0.975
    q = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    s = summarize(values)
    assert s.mean == pytest.approx(mean, rel=1e-15)
    assert s.ci_high - s.mean == pytest.approx(q * std / math.sqrt(3), rel=1e-12)


def test_summary_of_one_value_has_no_spread():
    s = summarize([0.5])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high) == (1, 0.5, None, None, None)
    with pytest.raises(ValueError):
        summarize([])


def test_welch_matches_the_formula_with_satterthwaite_degrees_of_freedom():
    base = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}
    other = {0: 2.0, 1: 4.0, 2: 6.0, 3: 8.0, 4: 10.0}
    vb, vo = 2.5, 10.0  # sample variances
    se2 = vb / 5 + vo / 5
    t = (6.0 - 3.0) / math.sqrt(se2)
    df = se2**2 / ((vb / 5) ** 2 / 4 + (vo / 5) ** 2 / 4)
    c = compare(base, other, "welch")
    assert c.difference == pytest.approx(3.0)
    assert c.p_value == pytest.approx(student_t_two_sided_p(t, df), rel=1e-9)
    pooled = math.sqrt((4 * vb + 4 * vo) / 8)
    assert c.effect_size == pytest.approx(3.0 / pooled, rel=1e-12)
    assert c.effect_name == "Cohen's d"
    assert c.note is None


def test_paired_t_uses_only_common_seeds_and_the_differences():
    base = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.95}
    other = {0: 0.93, 1: 0.93, 2: 0.95, 7: 0.10}  # seed 7 has no partner: ignored
    diffs = [0.03, 0.01, 0.04]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    t = mean / (sd / math.sqrt(3))
    c = compare(base, other, "paired")
    assert (c.n_baseline, c.n_other) == (3, 3)
    assert c.difference == pytest.approx(mean, rel=1e-12)
    assert c.p_value == pytest.approx(student_t_two_sided_p(t, 2), rel=1e-9)
    assert c.effect_size == pytest.approx(mean / sd, rel=1e-12)


def brute_force_wilcoxon_p(diffs: list[float]) -> float:
    """Exact two-sided p by enumerating every sign assignment (no ties, no zeros)."""
    ranks = {abs(d): i + 1 for i, d in enumerate(sorted(diffs, key=abs))}
    observed = sum(ranks[abs(d)] for d in diffs if d > 0)
    n = len(diffs)
    total = n * (n + 1) / 2
    extreme = abs(observed - total / 2)
    count = 0
    for signs in itertools.product((0, 1), repeat=n):
        w = sum(r for r, s in zip(range(1, n + 1), signs) if s)
        count += abs(w - total / 2) >= extreme - 1e-12
    return count / 2**n


def test_wilcoxon_is_exact_for_seven_pairs():
    diffs = [0.5, -0.1, 0.7, 0.2, 0.9, 0.35, -0.05]
    base = {i: 1.0 for i in range(7)}
    other = {i: 1.0 + d for i, d in enumerate(diffs)}
    c = compare(base, other, "wilcoxon")
    assert c.p_value == pytest.approx(brute_force_wilcoxon_p(diffs), rel=1e-12)
    ranks = {abs(d): i + 1 for i, d in enumerate(sorted(diffs, key=abs))}
    w_plus = sum(ranks[abs(d)] for d in diffs if d > 0)
    w_minus = sum(ranks[abs(d)] for d in diffs if d < 0)
    assert c.effect_size == pytest.approx((w_plus - w_minus) / (w_plus + w_minus))
    assert c.note is None


def test_wilcoxon_with_three_seeds_says_it_cannot_reach_significance():
    c = compare({0: 1.0, 1: 1.0, 2: 1.0}, {0: 2.0, 1: 3.0, 2: 4.0}, "wilcoxon")
    assert c.p_value == pytest.approx(0.25)  # all three positive: 2/2^3
    assert not c.significant
    assert "too few seeds" in c.note and "0.25" in c.note


def test_wilcoxon_min_p_is_two_over_two_to_the_n():
    assert wilcoxon_min_p(5) == 2 / 32
    assert wilcoxon_min_p(6) == 2 / 64
    assert wilcoxon_min_p(0) == 1.0


@pytest.mark.parametrize("test", ["welch", "paired"])
def test_two_seeds_are_too_few_for_a_t_test(test):
    c = compare({0: 0.9, 1: 0.91}, {0: 0.95, 1: 0.96}, test)
    assert c.p_value is None and c.effect_size is None
    assert "too few seeds" in c.note and "need >= 3" in c.note
    assert c.difference == pytest.approx(0.05)


def test_identical_groups_give_p_one_and_constant_shift_has_no_t_test():
    same = {0: 0.5, 1: 0.5, 2: 0.5}
    assert compare(same, same, "welch").p_value == 1.0
    assert compare(same, same, "paired").p_value == 1.0
    assert compare(same, same, "wilcoxon").p_value == 1.0
    shifted = {k: v + 0.1 for k, v in same.items()}
    c = compare(same, shifted, "welch")
    assert c.p_value is None and "undefined" in c.note
    c = compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.0, 2: 4.0}, "paired")
    assert c.p_value is None and "same for every seed" in c.note


def test_unknown_test_is_rejected():
    with pytest.raises(ValueError, match="welch"):
        compare({0: 1.0}, {0: 1.0}, "anova")


def test_rank_direction_and_ties():
    means = {"a": 0.9, "b": 0.95, "c": 0.9, "d": 0.8}
    assert rank(means, higher_is_better=True) == {"b": 1, "a": 2, "c": 2, "d": 4}
    assert rank(means, higher_is_better=False) == {"d": 1, "a": 2, "c": 2, "b": 4}
    assert rank({}, True) == {}


def test_holm_adjustment_by_hand():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    assert adjusted["a"] == pytest.approx(0.03)
    assert adjusted["c"] == pytest.approx(0.06)
    assert adjusted["b"] == pytest.approx(0.06)  # monotone: never below an earlier adjusted value
    assert adjusted["d"] is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=8))
def test_holm_is_monotone_and_at_least_the_raw_p(ps):
    raw = {str(i): p for i, p in enumerate(ps)}
    adjusted = holm(raw)
    for k, p in raw.items():
        assert p <= adjusted[k] + 1e-15 <= 1.0 + 1e-15
    order = sorted(raw, key=raw.get)
    assert all(adjusted[a] <= adjusted[b] + 1e-15 for a, b in zip(order, order[1:]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=-1e3, max_value=1e3), min_size=2, max_size=10))
def test_ci_contains_the_mean_and_is_symmetric(values):
    s = summarize(values)
    assert s.ci_low <= s.mean + 1e-9 and s.mean <= s.ci_high + 1e-9
    assert (s.mean - s.ci_low) == pytest.approx(s.ci_high - s.mean, rel=1e-9, abs=1e-9)
