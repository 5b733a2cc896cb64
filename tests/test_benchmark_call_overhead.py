"""benchmarks/call_overhead.py: the fixed cost of one small call, with and without Function.apply."""

from __future__ import annotations

import json

import pytest

from actlab.kernels import dispatch

from .repo_files import load

benchmark = load("benchmarks/call_overhead.py")


def test_only_activations_with_a_fused_function_can_be_timed():
    with pytest.raises(SystemExit, match=r"no fused elementwise Function for \['ditac', 'relu'\]"):
        benchmark.elementwise_names("swish,ditac,relu")
    everything = benchmark.elementwise_names(None)
    assert {"srs", "serf", "pau", "zorro"} <= set(everything) and "slaf" not in everything


def test_the_benchmark_reports_every_path_and_restores_the_call(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    args = ["--activations", "swish,serf", "--rounds", "1", "--repeats", "3", "--json", str(out)]
    assert benchmark.main(args) == 0
    report = json.loads(out.read_text())
    assert report["size"] == 16 and report["silu_us"] > 0
    assert set(report["activations"]) == {"swish", "serf"}
    for row in report["activations"].values():
        assert set(row) == {"reference_us", "fused_us", "fused_function_apply_us"}
        assert all(v > 0 for v in row.values())
    assert dispatch.apply_function.__module__ == "actlab.kernels.dispatch"  # the timed detour is undone
    printed = capsys.readouterr().out
    assert "swish" in printed and "serf" in printed
