"""Statistics over seeds: summaries, confidence intervals, ranks and tests against a baseline.

Everything here works on plain numbers. What counts as "too few seeds":

* a t-test (Welch or paired) needs at least :data:`MIN_SEEDS_T_TEST` values per
  activation; with fewer, no p-value is reported and the note says so;
* the exact two-sided Wilcoxon signed-rank test on n non-zero paired
  differences cannot give p below ``2 / 2**n``, so with n <= 5 it can never
  reach 0.05 -- the p-value is still reported, with a note saying so.

Effect sizes: Cohen's d (pooled standard deviation) for Welch, d_z (mean
difference / standard deviation of the differences) for the paired t-test, the
matched-pairs rank-biserial correlation for Wilcoxon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Summary",
    "Comparison",
    "summarize",
    "compare",
    "rank",
    "holm",
    "MIN_SEEDS_T_TEST",
    "ALPHA",
    "wilcoxon_min_p",
]

#: Significance level used for the "significant" flags.
ALPHA = 0.05
#: Values per group below which no t-test is run.
MIN_SEEDS_T_TEST = 3

_EFFECT_NAMES = {"welch": "Cohen's d", "paired": "d_z", "wilcoxon": "rank-biserial r"}


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and t-based confidence interval of ``n`` values."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Summary of ``values``; std and CI are ``None`` for a single value."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("summarize needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return Summary(1, mean, None, None, None, confidence)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * std / math.sqrt(x.size)
    return Summary(int(x.size), mean, std, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class Comparison:
    """``other`` against ``baseline``: difference of means, p-value, effect size, caveat.

    ``p_value`` is ``None`` when no test could be run; ``note`` says why (or, for
    Wilcoxon with few pairs, why the p-value cannot be small).
    """

    test: str
    n_baseline: int
    n_other: int
    difference: float
    p_value: float | None
    effect_size: float | None
    note: str | None = None

    @property
    def effect_name(self) -> str:
        return _EFFECT_NAMES[self.test]

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give with ``n`` pairs."""
    return min(1.0, 2.0 / 2**n)


def _paired(baseline: Mapping[int, float], other: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    seeds = sorted(set(baseline) & set(other))
    return (
        np.array([baseline[s] for s in seeds], dtype=np.float64),
        np.array([other[s] for s in seeds], dtype=np.float64),
    )


def _welch(b: np.ndarray, o: np.ndarray) -> tuple[float | None, float | None, str | None]:
    from scipy import stats

    sb, so = b.std(ddof=1), o.std(ddof=1)
    pooled = math.sqrt(((b.size - 1) * sb**2 + (o.size - 1) * so**2) / (b.size + o.size - 2))
    d = (o.mean() - b.mean()) / pooled if pooled > 0 else None
    if sb == 0 and so == 0:
        if o.mean() == b.mean():
            return 1.0, None, "identical values in both groups"
        return None, None, "no variation within either group: a t-test is undefined"
    return float(stats.ttest_ind(o, b, equal_var=False).pvalue), d, None


def _paired_t(b: np.ndarray, o: np.ndarray) -> tuple[float | None, float | None, str | None]:
    from scipy import stats

    diff = o - b
    sd = diff.std(ddof=1)
    if sd == 0:
        if diff.mean() == 0:
            return 1.0, None, "identical values for every seed"
        return None, None, "the difference is the same for every seed: a t-test is undefined"
    return float(stats.ttest_rel(o, b).pvalue), float(diff.mean() / sd), None


def _wilcoxon(b: np.ndarray, o: np.ndarray) -> tuple[float | None, float | None, str | None]:
    from scipy import stats

    diff = o - b
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        return 1.0, None, "identical values for every seed"
    ranks = stats.rankdata(np.abs(nonzero))
    w_plus, w_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    r = float((w_plus - w_minus) / (w_plus + w_minus))
    p = float(stats.wilcoxon(nonzero, alternative="two-sided").pvalue)  # zeros dropped (Wilcoxon's convention)
    note = None
    if wilcoxon_min_p(nonzero.size) > ALPHA:
        note = (
            f"too few seeds for Wilcoxon: with {nonzero.size} non-zero paired differences the smallest possible "
            f"p is {wilcoxon_min_p(nonzero.size):.3g} > {ALPHA} (needs >= 6 seeds)"
        )
    return p, r, note


def compare(baseline: Mapping[int, float], other: Mapping[int, float], test: str = "welch") -> Comparison:
    """Compare per-seed values (``seed -> metric``) of ``other`` against ``baseline``.

    ``welch`` uses every value of each group; ``paired`` and ``wilcoxon`` use the
    seeds present in both. ``difference`` is mean(other) - mean(baseline) over
    the values the test used.
    """
    if test not in _EFFECT_NAMES:
        raise ValueError(f"test must be one of {', '.join(_EFFECT_NAMES)}, got {test!r}")
    if test == "welch":
        b = np.array(list(baseline.values()), dtype=np.float64)
        o = np.array(list(other.values()), dtype=np.float64)
    else:
        b, o = _paired(baseline, other)
    difference = float(o.mean() - b.mean()) if b.size and o.size else math.nan
    n_needed = MIN_SEEDS_T_TEST if test != "wilcoxon" else 1
    if min(b.size, o.size) < n_needed:
        unit = "values per activation" if test == "welch" else "seeds present for both activations"
        note = f"too few seeds for a significance test: {min(b.size, o.size)} {unit}, need >= {n_needed}"
        return Comparison(test, int(b.size), int(o.size), difference, None, None, note)
    p, effect, note = {"welch": _welch, "paired": _paired_t, "wilcoxon": _wilcoxon}[test](b, o)
    return Comparison(test, int(b.size), int(o.size), difference, p, effect, note)


def rank(means: Mapping[str, float], higher_is_better: bool) -> dict[str, int]:
    """Rank 1 = best mean; ties share the better rank (1, 1, 3)."""
    from scipy import stats

    labels = list(means)
    if not labels:
        return {}
    key = np.array([means[k] for k in labels], dtype=np.float64)
    ranks = stats.rankdata(-key if higher_is_better else key, method="min")
    return {k: int(r) for k, r in zip(labels, ranks)}


def holm(p_values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the given comparisons)."""
    tested = sorted(((p, k) for k, p in p_values.items() if p is not None), key=lambda t: t[0])
    m = len(tested)
    adjusted: dict[str, float | None] = {k: None for k in p_values}
    running = 0.0
    for i, (p, k) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[k] = running
    return adjusted
