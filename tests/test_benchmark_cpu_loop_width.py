"""benchmarks/cpu_loop_width.py: the measurement behind ElementwiseOp.cpu_vectors."""

from __future__ import annotations

import json

import pytest

from .repo_files import load

benchmark = load("benchmarks/cpu_loop_width.py")


def test_unsupported_widths_are_refused_before_any_work():
    with pytest.raises(SystemExit, match="each must be 1, 2, 4 or 8, got '1,3'"):
        benchmark.main(["--widths", "1,3"])


def test_only_elementwise_activations_can_be_measured():
    with pytest.raises(SystemExit, match=r"not elementwise .*\['ditac'\]"):
        benchmark.elementwise_names("swish,ditac")
    assert "serf" in benchmark.elementwise_names(None) and "ditac" not in benchmark.elementwise_names(None)


@pytest.mark.compile
def test_the_benchmark_reports_each_width_and_the_one_actlab_picks(tmp_path, capsys):
    out = tmp_path / "width.json"
    args = ["--activations", "swish", "--widths", "1,2", "--log2-size", "12", "--repeats", "1", "--json", str(out)]
    assert benchmark.main(args + ["--layout", "cols", "--channels", "4"]) == 0
    report = json.loads(out.read_text())
    row = report["results"]["swish"]
    assert report["shape"] == [1024, 4] and report["layout"] == "cols"
    assert set(row["forward"]) == set(row["backward"]) == {"1", "2"}
    assert all(r > 0 for r in [*row["forward"].values(), *row["backward"].values()])
    assert row["chosen_width"] == 1  # 4 channels: at most one vector on every ISA inductor knows
    assert "swish" in capsys.readouterr().out
