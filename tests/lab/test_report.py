"""Comparison tables and reports, from synthetic stored runs (no training)."""

from __future__ import annotations

import base64
import re

import pytest
import torch
from torch import nn

import actlab
from actlab.lab.analysis import analyse
from actlab.lab.config import ActivationChoice
from actlab.lab.export import run_records, summary_records, to_csv, to_json
from actlab.lab.report import atomic_write, format_comparison, write_report
from actlab.lab.runner import snapshot_activations

from .factories import make_result, make_spec, stored

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def study_runs(seeds=(0, 1, 2), srs_values=(0.95, 0.96, 0.97), relu_values=(0.90, 0.91, 0.92)):
    """relu (baseline), srs (better, 2x slower), gelu (one failed run)."""
    model = nn.Sequential(nn.Linear(2, 3), actlab.create("srs"), nn.Linear(3, 2), actlab.create("srs"))
    with torch.no_grad():
        model[1].raw_alpha.add_(0.5)
    shapes = snapshot_activations(model)
    runs = []
    for i, seed in enumerate(seeds):
        s = make_spec(seed, "relu")
        runs.append(stored(s, make_result(s, relu_values[i], epoch_time_s=0.1, saved_bytes=1000)))
        s = make_spec(seed, "srs")
        runs.append(stored(s, make_result(s, srs_values[i], epoch_time_s=0.2, saved_bytes=1500, activations=shapes)))
        s = make_spec(seed, "gelu")
        if i == 0:
            runs.append(stored(s, make_result(s, status="failed", error="diverged at epoch 2: training loss is nan")))
        else:
            runs.append(stored(s, make_result(s, 0.905 + 0.01 * i, epoch_time_s=0.12, saved_bytes=1200)))
    return runs


def test_the_time_ratio_is_robust_to_one_run_timed_on_a_busy_machine():
    runs = []
    for seed, relu_time in enumerate((0.1, 0.1, 2.0)):  # one baseline run 20x slower (a loaded machine)
        s = make_spec(seed, "relu")
        runs.append(stored(s, make_result(s, 0.9, epoch_time_s=relu_time)))
        s = make_spec(seed, "srs")
        runs.append(stored(s, make_result(s, 0.9, epoch_time_s=0.2)))
    (table,) = analyse(runs, baseline="relu", test="welch", order=["relu", "srs"])
    srs = next(r for r in table.rows if r.label == "srs")
    assert srs.time_ratio == pytest.approx(2.0)  # the median; the mean would give 0.27
    assert "per epoch (median over epochs and seeds)" in format_comparison(table)


def test_table_ranks_marks_the_baseline_and_reports_ratios():
    (table,) = analyse(study_runs(), baseline="relu", test="welch", order=["relu", "srs", "gelu"])
    assert [r.label for r in table.rows] == ["srs", "gelu", "relu"]
    assert [r.rank for r in table.rows] == [1, 2, 3]
    srs = table.rows[0]
    assert srs.summary.mean == pytest.approx(0.96)
    assert srs.comparison.difference == pytest.approx(0.05)
    assert srs.time_ratio == pytest.approx(2.0)
    assert srs.memory_ratio == pytest.approx(1.5)
    assert srs.p_holm is not None and srs.p_holm >= srs.comparison.p_value
    gelu = table.rows[1]
    assert len(gelu.values) == 2 and list(gelu.failures) == [0]
    text = format_comparison(table)
    lines = text.splitlines()
    assert lines[0].startswith("digits / mlp: test accuracy (higher is better), 3 seeds, Welch's t-test against relu")
    row = {line.split()[1]: line for line in lines if re.match(r"^\d+\s", line)}
    assert (
        "0.9600 ± 0.0100" in row["srs"] and "+0.0500" in row["srs"] and "2.00x" in row["srs"] and "1.50x" in row["srs"]
    )
    assert "relu (baseline)" in row["relu"] and "1.00x" in row["relu"]
    assert "2/3" in row["gelu"]  # 2 of 3 runs finished
    assert "gelu: 1 of 3 runs failed (diverged at epoch 2: training loss is nan)" in text
    # gelu's 2 finished seeds are too few for a t-test: said plainly, no p-value shown.
    assert "too few seeds for a significance test" in text


def test_significance_star_follows_holm_adjusted_p():
    runs = study_runs(srs_values=(0.95, 0.951, 0.952), relu_values=(0.90, 0.901, 0.902))
    (table,) = analyse(runs, baseline="relu", test="welch")
    srs = next(r for r in table.rows if r.label == "srs")
    assert srs.significant
    assert re.search(r"\d\*", next(line for line in format_comparison(table).splitlines() if line.startswith("1 ")))
    assert "* significant at 0.05 after Holm's correction over 1 comparison" in format_comparison(table)


def test_missing_baseline_is_reported_not_invented():
    runs = [r for r in study_runs() if r.spec.activation.label != "relu"]
    (table,) = analyse(runs, baseline="relu")
    assert all(r.comparison is None for r in table.rows)
    assert any("baseline relu has no finished run" in n for n in table.notes)


def test_runs_with_different_settings_are_separate_comparisons():
    a = make_spec(0, "relu", epochs=2)
    b = make_spec(0, "relu", epochs=3)
    tables = analyse([stored(a, make_result(a)), stored(b, make_result(b))])
    assert len(tables) == 2
    assert {t.settings["epochs"] for t in tables} == {2, 3}


def test_report_files_embed_every_figure(tmp_path):
    tables = analyse(study_runs(), baseline="relu")
    md, html = write_report(tmp_path, tables, command="actlab compare --quiet")
    text = html.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    # metric bars, training curves, time per epoch, shapes of srs (the only trainable one)
    assert len(images) == 4
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    md_text = md.read_text()
    linked = re.findall(r"\]\((figures/[^)]+\.png)\)", md_text)
    assert len(linked) == 4
    assert all((tmp_path / p).read_bytes().startswith(PNG_MAGIC) for p in linked)
    assert any("shapes-srs" in p for p in linked)
    assert "| 1 | srs | 0.9600 ± 0.0100 |" in md_text and "0.004\\*" in md_text
    assert "actlab compare --quiet" in md_text and "relu (baseline)" in text
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")
    atomic_write(target, "new content")
    assert target.read_text() == "new content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_exports_are_valid_csv_and_json_without_nan():
    import csv
    import io
    import json

    runs = study_runs()
    tables = analyse(runs, baseline="relu")
    summary = summary_records(tables)
    assert {r["activation"] for r in summary} == {"relu", "srs", "gelu"}
    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    assert len(rows) == 3 and rows[0]["activation"] == "srs" and float(rows[0]["mean"]) == pytest.approx(0.96)
    per_run = run_records(runs)
    per_run[0]["test_value"] = float("nan")
    decoded = json.loads(to_json(per_run))
    assert len(decoded) == 9 and decoded[0]["test_value"] is None
    failed = [r for r in decoded if r["status"] == "failed"]
    assert failed[0]["error"] == "diverged at epoch 2: training loss is nan"


def test_activation_labels_with_arguments_are_canonical():
    a = ActivationChoice("srs", {"beta": 3.0, "alpha": 5.0})
    assert a.label == "srs(alpha=5.0,beta=3.0)"
