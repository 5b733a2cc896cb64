"""From stored runs to comparison tables: group, summarise, rank, test against the baseline.

A *comparison* is a set of runs that differ only in activation and seed (same
task, model, training settings); :meth:`RunSpec.group_key` identifies it. Each
comparison becomes a :class:`ComparisonTable` with one :class:`ActivationRow`
per activation, which the terminal table, the CSV/JSON export and the report
all render.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import call_label
from .stats import Comparison, Summary, compare, holm, rank, summarize
from .store import StoredRun

__all__ = ["ActivationRow", "ComparisonTable", "analyse", "first_line"]


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


@dataclass
class ActivationRow:
    """One activation in one comparison."""

    label: str
    is_baseline: bool
    values: dict[int, float]
    failures: dict[int, str]
    summary: Summary | None
    rank: int | None = None
    comparison: Comparison | None = None
    p_holm: float | None = None
    epoch_time_s: float | None = None
    time_ratio: float | None = None
    saved_tensor_bytes: float | None = None
    memory_ratio: float | None = None
    peak_rss_bytes: float | None = None
    runs: list[StoredRun] = field(default_factory=list, repr=False)

    @property
    def n_runs(self) -> int:
        return len(self.values) + len(self.failures)

    @property
    def significant(self) -> bool:
        """Significant after Holm's correction over the comparison's tests."""
        from .stats import ALPHA

        return self.p_holm is not None and self.p_holm < ALPHA


@dataclass
class ComparisonTable:
    """All activations of one task/model/settings combination."""

    key: str
    task: str
    model: str
    metric: str
    higher_is_better: bool
    settings: dict[str, Any]
    baseline: str
    test: str
    rows: list[ActivationRow]
    notes: list[str]

    @property
    def title(self) -> str:
        """``task / model``, with the model's options when it has any (they tell the arms of a sweep apart)."""
        return f"{self.task} / {call_label(self.model, self.settings.get('model_options', {}))}"

    @property
    def baseline_row(self) -> ActivationRow | None:
        return next((r for r in self.rows if r.is_baseline), None)

    @property
    def seeds(self) -> list[int]:
        return sorted({s for r in self.rows for s in (*r.values, *r.failures)})


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def _ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value is not None and reference else None


_SETTING_KEYS = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "grad_clip", "limit", "device")


def _table(key: str, runs: list[StoredRun], baseline: str, test: str, order: Sequence[str] | None) -> ComparisonTable:
    spec0 = runs[0].spec
    ok = [r for r in runs if r.result.ok]
    metric = next((r.result.metric for r in runs if r.result.metric), "metric")
    higher = next((r.result.higher_is_better for r in runs if r.result.higher_is_better is not None), True)
    by_label: dict[str, list[StoredRun]] = defaultdict(list)
    for r in runs:
        by_label[r.spec.activation.label].append(r)

    rows: dict[str, ActivationRow] = {}
    for label, label_runs in by_label.items():
        good = [r for r in label_runs if r.result.ok and r.result.test_value is not None]
        values = {r.spec.seed: float(r.result.test_value) for r in good}
        rows[label] = ActivationRow(
            label=label,
            is_baseline=label == baseline,
            values=values,
            failures={r.spec.seed: first_line(r.result.error) for r in label_runs if not r.result.ok},
            summary=summarize(list(values.values())) if values else None,
            # Median over seeds: one run timed while the machine was busy (another study,
            # a resumed run from another day) must not move the time ratio.
            epoch_time_s=_median(r.result.epoch_time_s for r in good),
            saved_tensor_bytes=_mean(r.result.saved_tensor_bytes for r in good),
            peak_rss_bytes=max((r.result.peak_rss_bytes for r in good if r.result.peak_rss_bytes), default=None),
            runs=sorted(label_runs, key=lambda r: r.spec.seed),
        )

    notes: list[str] = []
    ranks = rank({k: r.summary.mean for k, r in rows.items() if r.summary}, higher)
    for k, r in rows.items():
        r.rank = ranks.get(k)
    base = rows.get(baseline)
    if base is None or not base.values:
        notes.append(f"the baseline {baseline} has no finished run here: no comparison against it")
    else:
        for r in rows.values():
            r.time_ratio = _ratio(r.epoch_time_s, base.epoch_time_s)
            r.memory_ratio = _ratio(r.saved_tensor_bytes, base.saved_tensor_bytes)
            if not r.is_baseline and r.values:
                r.comparison = compare(base.values, r.values, test)
        adjusted = holm({k: r.comparison.p_value for k, r in rows.items() if r.comparison})
        for k, p in adjusted.items():
            rows[k].p_holm = p
        for r in rows.values():
            if r.comparison and r.comparison.note and r.comparison.note not in notes:
                notes.append(r.comparison.note)
    for r in rows.values():
        if r.failures:
            reasons = sorted(set(r.failures.values()))
            notes.append(f"{r.label}: {len(r.failures)} of {r.n_runs} runs failed ({'; '.join(reasons)})")
    versions = sorted({r.result.environment.get("actlab", "?") for r in ok})
    if len(versions) > 1:
        notes.append(f"runs come from several actlab versions ({', '.join(versions)})")

    position = {label: i for i, label in enumerate(order or [])}
    ordered = sorted(
        rows.values(),
        key=lambda r: (r.rank is None, r.rank or 0, position.get(r.label, len(position)), r.label),
    )
    settings = {k: getattr(spec0, k) for k in _SETTING_KEYS}
    settings["model_options"] = dict(spec0.model_options)
    return ComparisonTable(key, spec0.task, spec0.model, metric, bool(higher), settings, baseline, test, ordered, notes)


def analyse(
    runs: Iterable[StoredRun], baseline: str = "relu", test: str = "welch", order: Sequence[str] | None = None
) -> list[ComparisonTable]:
    """One :class:`ComparisonTable` per comparison found in ``runs``, in order of first appearance.

    ``baseline`` is an activation label; ``order`` breaks ties between equally
    ranked rows (e.g. the order the study listed the activations in).
    """
    groups: dict[str, list[StoredRun]] = defaultdict(list)
    for r in runs:
        groups[r.spec.group_key()].append(r)
    return [_table(key, group, baseline, test, order) for key, group in groups.items()]
