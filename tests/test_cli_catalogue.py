"""`actlab list` and `actlab show`, run as a user runs them."""

import actlab

from .cli_helpers import run_cli


def test_list_prints_every_activation_with_its_metadata():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "family", "trainable", "bounded", "provenance"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == set(actlab.list_activations())
    assert rows["srs"][1:] == ["srs", "yes", "both", "secondary"]
    assert rows["zorro_sloped"][4] == "reconstruction"


def test_list_filters():
    trainable = run_cli("list", "--trainable").stdout
    assert "srs" in trainable and "\nrelu " not in trainable
    zorros = run_cli("list", "--family", "zorro").stdout.splitlines()[2:]
    assert {r.split()[0] for r in zorros} == {n for n in actlab.list_activations() if actlab.info(n).family == "zorro"}
    bad = run_cli("list", "--family", "nope")
    assert bad.returncode == 2 and "no activation in family 'nope'" in bad.stderr


def test_show_prints_formula_reference_and_values():
    result = run_cli("show", "Soft-Root-Sign", "--at", "-3", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "formula:     x / (x/alpha + exp(-x/beta))" in out
    assert "arXiv:2003.00547" in out and "beta = 3.0" in out
    assert "-2.46248" in out  # SRS(-3) at (2, 3): alpha·beta/(beta - alpha·e)


def test_show_unknown_name_exits_2_with_suggestions():
    result = run_cli("show", "zoro")
    assert result.returncode == 2
    assert "Did you mean: zorro" in result.stderr and "Traceback" not in result.stderr
