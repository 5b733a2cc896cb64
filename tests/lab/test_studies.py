"""The study files in ``studies/`` and the results page generated from them.

Every study file is validated (names, options, data) and run end to end on a
tiny setting (one seed, one epoch, a few samples), so none can rot. In the
default suite the Fashion-MNIST studies run their arms on digits and the
Transformer studies train two of their activations; the slow suite runs those
files whole. The
committed ``docs/results.md`` must be what ``scripts/make_results.py`` makes of
the committed exports, and the verdict rule is checked on constructed
comparisons.
"""

from __future__ import annotations

import sys
import warnings

import pytest

from actlab.lab import SerialExecutor, load_config_file, prepare_study, run_study
from actlab.lab.stats import Comparison

from ..repo_files import REPO, load

STUDY_FILES = sorted((REPO / "studies").glob("*.toml"))
NAMES = [p.stem for p in STUDY_FILES]
#: Tiny settings: training-set size per task (enough for a stratified split and every class).
TINY_LIMIT = {"digits": 60, "sines2d": 50, "num2words": 40, "fashion_mnist": 60}
#: Studies on the installed Fashion-MNIST (a validation and test pass over 16 000 images per run):
#: by default their arms run on digits instead.
HEAVY = {"slaf_cnn", "trainable_resnet"}
#: Studies whose evaluation is slow (greedy decoding of 1 500 sequences per run): by default only
#: their first activation and the baseline run; every activation is still created by the validity test.
TRIMMED = {"zorro_transformer", "zorro_lr_stress"}


@pytest.fixture(scope="module")
def make_results():
    return load("scripts/make_results.py")


def test_there_are_study_files_and_the_page_covers_each_one(make_results):
    assert NAMES, "no study files in studies/"
    covered = {s.name for s in make_results.STUDIES} | set(make_results.COMPANIONS)
    assert covered == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_study_file_is_valid_with_five_seeds_and_its_own_output_folder(name):
    config = load_config_file(REPO / "studies" / f"{name}.toml")
    assert len(config.seeds) >= 5
    assert config.out == f"studies/results/{name}"
    specs = prepare_study(config)  # every activation created, data loaded and model built once
    assert len({s.config_hash() for s in specs}) == len(specs)


def _tiny(name: str, tmp_path, *, light: bool):
    """The study with one seed, one epoch and a few samples; ``light``: the default-suite cut."""
    config = load_config_file(REPO / "studies" / f"{name}.toml")
    tasks = ["digits"] if light and name in HEAVY else config.tasks
    activations = config.activations[:1] + [config.baseline] if light and name in TRIMMED else None
    settings = {t: {"limit": TINY_LIMIT[t], "epochs": 1} for t in tasks}
    overrides = {"tasks": tasks, "activations": activations, "seeds": [0], "epochs": 1, "task_settings": settings}
    return config.merged({**overrides, "out": str(tmp_path / name)})


def _run_tiny(config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = run_study(config, executor=SerialExecutor(threads=1), report=False)
    return outcome


def _check_outcome(name: str, outcome, tmp_path) -> None:
    assert outcome.executed == len(outcome.specs) > 0 and outcome.failed == 0
    assert (tmp_path / name / "results.sqlite").exists()
    arms = len(load_config_file(REPO / "studies" / f"{name}.toml").models)
    assert len(outcome.tables) == arms * len(outcome.config.tasks)  # one comparison per task and model arm


@pytest.mark.parametrize("name", NAMES)
def test_study_runs_end_to_end_on_a_tiny_setting(name, tmp_path):
    _check_outcome(name, _run_tiny(_tiny(name, tmp_path, light=True)), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted((HEAVY | TRIMMED) & set(NAMES)))
def test_whole_study_runs_end_to_end_on_a_tiny_setting(name, tmp_path):
    _check_outcome(name, _run_tiny(_tiny(name, tmp_path, light=False)), tmp_path)


def test_committed_results_page_is_what_the_script_generates(make_results, capsys):
    assert make_results.main(["--check"]) == 0, capsys.readouterr().err
    page = (REPO / "docs" / "results.md").read_text()
    for study in make_results.STUDIES:
        assert f"studies/{study.name}.toml" in page
    for line in page.splitlines():  # every figure the page shows is committed
        if line.startswith("![") and "](results/" in line:
            assert (REPO / "docs" / line.split("](")[1].rstrip(")")).is_file(), line


def _check(make_results, difference, p, sign=1, kind="better", tolerance=0.0):
    return make_results.Check("x", Comparison("welch", 5, 5, difference, p, None), sign, kind, tolerance)


@pytest.mark.parametrize(
    ("checks", "verdict"),
    [
        ([(0.02, 0.001), (0.03, 0.004)], "supported"),
        ([(0.02, 0.001), (0.03, 0.2)], "inconclusive at this scale"),
        ([(0.02, 0.001), (-0.03, 0.001)], "not supported"),
        # Holm: the larger p (0.03) is compared with 0.05 / 1, the smaller (0.02) with 0.05 / 2.
        ([(0.02, 0.02), (0.03, 0.03)], "supported"),
        ([(0.02, 0.03), (0.03, 0.04)], "inconclusive at this scale"),  # 0.03 * 2 > 0.05
        ([(0.02, 0.026), (0.03, 0.2)], "inconclusive at this scale"),
        ([(None, None)], "inconclusive at this scale"),
    ],
)
def test_verdict_rule_for_better_claims(make_results, checks, verdict):
    made = [_check(make_results, d if d is not None else float("nan"), p) for d, p in checks]
    assert make_results.decide(made) == verdict


def test_verdict_rule_direction_and_no_worse_claims(make_results):
    # Lower is better (sign -1): a significant decrease is what was claimed.
    assert make_results.decide([_check(make_results, -0.5, 0.001, sign=-1)]) == "supported"
    no_worse = dict(kind="no_worse", tolerance=0.01)
    assert make_results.decide([_check(make_results, -0.005, 0.4, **no_worse)]) == "supported"
    assert make_results.decide([_check(make_results, -0.05, 0.4, **no_worse)]) == "inconclusive at this scale"
    assert make_results.decide([_check(make_results, -0.005, 0.001, **no_worse)]) == "not supported"
    # Too few seeds for a test: a small difference is not evidence of "no worse".
    assert make_results.decide([_check(make_results, 0.0, None, **no_worse)]) == "inconclusive at this scale"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
