"""Machine-readable exports of a results store: CSV and JSON, per activation or per run."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .analysis import ComparisonTable, first_line
from .store import StoredRun

__all__ = ["summary_records", "run_records", "to_csv", "to_json"]


def summary_records(tables: Sequence[ComparisonTable]) -> list[dict[str, Any]]:
    """One flat record per activation per comparison (what the table shows, unformatted)."""
    out = []
    for t in tables:
        for r in t.rows:
            s, c = r.summary, r.comparison
            out.append(
                {
                    "task": t.task,
                    "model": t.model,
                    "comparison": t.key,
                    "metric": t.metric,
                    "higher_is_better": t.higher_is_better,
                    "activation": r.label,
                    "is_baseline": r.is_baseline,
                    "rank": r.rank,
                    "n": len(r.values),
                    "n_failed": len(r.failures),
                    "mean": s.mean if s else None,
                    "std": s.std if s else None,
                    "ci95_low": s.ci_low if s else None,
                    "ci95_high": s.ci_high if s else None,
                    "baseline": t.baseline,
                    "test": t.test,
                    "difference": c.difference if c else None,
                    "p_value": c.p_value if c else None,
                    "p_holm": r.p_holm,
                    "effect_size": c.effect_size if c else None,
                    "effect_name": c.effect_name if c else None,
                    "test_note": c.note if c else None,
                    "epoch_time_s": r.epoch_time_s,
                    "time_ratio": r.time_ratio,
                    "saved_tensor_bytes": r.saved_tensor_bytes,
                    "memory_ratio": r.memory_ratio,
                    "peak_rss_bytes": r.peak_rss_bytes,
                    **{f"setting_{k}": v for k, v in t.settings.items() if k != "model_options"},
                    "model_options": json.dumps(t.settings.get("model_options", {}), sort_keys=True),
                    "values": json.dumps({str(k): v for k, v in sorted(r.values.items())}),
                }
            )
    return out


def run_records(runs: Iterable[StoredRun]) -> list[dict[str, Any]]:
    """One flat record per stored run."""
    out = []
    for run in runs:
        s, r = run.spec, run.result
        out.append(
            {
                "config_hash": r.config_hash,
                "task": s.task,
                "model": s.model,
                "activation": s.activation.label,
                "seed": s.seed,
                "status": r.status,
                "metric": r.metric,
                "test_value": r.test_value,
                "best_epoch": r.best_epoch,
                "best_val": r.best_val,
                "epochs_run": r.epochs_run,
                "total_time_s": r.total_time_s,
                "epoch_time_s": r.epoch_time_s,
                "peak_rss_bytes": r.peak_rss_bytes,
                "saved_tensor_bytes": r.saved_tensor_bytes,
                "cuda_peak_bytes": r.cuda_peak_bytes,
                "error": first_line(r.error) or None,
                "epochs": s.epochs,
                "batch_size": s.batch_size,
                "lr": s.lr,
                "optimizer": s.optimizer,
                "weight_decay": s.weight_decay,
                "limit": s.limit,
                "device": s.device,
                "actlab_version": r.environment.get("actlab"),
                "created_at": run.created_at,
            }
        )
    return out


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_json(records: Any) -> str:
    return json.dumps(_json_safe(records), indent=2, sort_keys=False, allow_nan=False) + "\n"


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    if not records:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: "" if v is None else v for k, v in rec.items()})
    return buf.getvalue()
