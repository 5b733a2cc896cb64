"""Generate ``docs/results.md`` (and its figures) from the studies' results.

Two steps, so the page can be rebuilt and checked from what the repository holds:

1. ``--export``: read each study's results store (``studies/results/<study>/results.sqlite``,
   written by ``actlab compare --config studies/<study>.toml``) and write a compact copy,
   ``docs/results/data/<study>.json`` (every run's configuration and result without the
   learned-shape snapshots). These files are committed; the databases are not.
2. (default) read the exports, analyse them with the lab's own statistics
   (:func:`actlab.lab.analyse`, :func:`actlab.lab.stats.compare`, Holm's correction) and write
   ``docs/results.md`` and the PNG figures under ``docs/results/``. Every verdict is computed
   here from the data by the rule printed next to it.

Usage (from the repository root)::

    PYTHONPATH=src python scripts/make_results.py --export   # after running the studies
    PYTHONPATH=src python scripts/make_results.py            # page and figures from the exports
    PYTHONPATH=src python scripts/make_results.py --check    # exit 1 if docs/results.md is stale

A study whose export is missing is listed on the page as "not run yet".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from actlab.lab import analyse, load_config_file, read_results
from actlab.lab.analysis import ComparisonTable, first_line
from actlab.lab.config import RunSpec, StudyConfig
from actlab.lab.report import caption, comparison_rows, figures_for, settings_line
from actlab.lab.runner import RunResult
from actlab.lab.stats import ALPHA, Comparison, compare, holm, summarize
from actlab.lab.store import StoredRun

REPO = Path(__file__).resolve().parent.parent
STUDIES_DIR = REPO / "studies"
RESULTS_DIR = STUDIES_DIR / "results"
DOCS = REPO / "docs"
DATA_DIR = DOCS / "results" / "data"
PAGE = DOCS / "results.md"

#: The per-epoch history keys kept in the export (the figures use them; the rest is timing detail).
HISTORY_KEYS = ("epoch", "train_loss", "train_s")


# -- export --------------------------------------------------------------------------------------
def _round(value):
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _compact_result(result: RunResult) -> dict:
    d = result.to_dict()
    d.pop("activations")  # learned-shape snapshots: large, and the page does not draw them
    d["environment"] = {k: d["environment"][k] for k in ("actlab", "torch") if k in d["environment"]}
    metric_keys = {f"val_{k}" for k in result.test_metrics} | {f"val_{result.metric}"}
    # Six significant digits are plenty for curves; the test metrics keep full precision.
    d["history"] = [
        {k: _round(v) for k, v in e.items() if k in HISTORY_KEYS or k in metric_keys} for e in result.history
    ]
    if d["error"]:
        d["error"] = first_line(d["error"])
    return d


def export(name: str) -> Path:
    """``studies/results/<name>/results.sqlite`` → ``docs/results/data/<name>.json``."""
    runs = sorted(read_results(RESULTS_DIR / name), key=lambda r: r.config_hash)
    records = [
        {"spec": r.spec.to_dict(), "result": _compact_result(r.result), "created_at": r.created_at} for r in runs
    ]
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"{name}.json"
    path.write_text(json.dumps({"study": name, "runs": records}, sort_keys=True, separators=(",", ":")) + "\n")
    return path


def load_runs(name: str) -> list[StoredRun] | None:
    path = DATA_DIR / f"{name}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return [
        StoredRun(RunSpec.from_dict(r["spec"]), RunResult.from_dict(r["result"]), r["created_at"]) for r in data["runs"]
    ]


# -- verdicts --------------------------------------------------------------------------------------
@dataclass
class Check:
    """One claimed comparison: ``other`` against ``reference`` in a claimed direction.

    ``kind`` "better": the claim holds when the difference is significant in the claimed
    direction. ``kind`` "no_worse": it fails when the difference is significant against the
    claim, and holds when it is not and the mean difference is within ``tolerance``.
    """

    text: str
    comparison: Comparison
    sign: int  # +1: the claim says other - reference > 0; -1: < 0
    kind: str = "better"
    tolerance: float = 0.0
    p_holm: float | None = None
    subject: str = ""  # the activation the check is about, where there is one

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < ALPHA

    @property
    def outcome(self) -> str:
        towards = self.comparison.difference * self.sign
        if self.comparison.p_value is None:  # no test was possible (too few seeds): nothing is decided
            return "open"
        if self.significant and towards < 0:
            return "against"
        if self.kind == "better":
            return "for" if self.significant and towards > 0 else "open"
        return "for" if towards >= -self.tolerance else "open"

    def line(self) -> str:
        c = self.comparison
        p = "n/a" if c.p_value is None else f"{c.p_value:.3g}"
        ph = "n/a" if self.p_holm is None else f"{self.p_holm:.3g}"
        mark = {"for": "as claimed", "against": "against the claim", "open": "not decided"}[self.outcome]
        d = "n/a" if math.isnan(c.difference) else f"{c.difference:+.4g}"
        return f"{self.text}: Δ = {d}, p = {p} (Holm {ph}) → {mark}"


def decide(checks: Sequence[Check]) -> str:
    """Holm's correction over the checks, then: any against → not supported; all for → supported."""
    adjusted = holm({str(i): c.comparison.p_value for i, c in enumerate(checks)})
    for i, c in enumerate(checks):
        c.p_holm = adjusted.get(str(i))
    outcomes = {c.outcome for c in checks}
    if "against" in outcomes:
        return "not supported"
    if outcomes == {"for"}:
        return "supported"
    return "inconclusive at this scale"


RULE = (
    "each claimed comparison is tested with the lab's Welch t-test (test metric over seeds), "
    f"p-values Holm-corrected over the study's claimed comparisons; **supported** when every one is "
    f'significant (p < {ALPHA}) in the claimed direction (for a "no worse than" claim: not significantly '
    "worse and the mean within the stated tolerance), **not supported** when any is significant against "
    "the claim, **inconclusive** otherwise"
)


@dataclass
class Verdict:
    verdict: str
    checks: list[Check]
    rule: str = RULE
    extra: list[str] = field(default_factory=list)


# -- helpers over tables -----------------------------------------------------------------------------
def values(table: ComparisonTable, label: str) -> dict[int, float]:
    row = next((r for r in table.rows if r.label == label), None)
    return dict(row.values) if row else {}


def versus(table: ComparisonTable, other: str, reference: str, sign: int, **kw) -> Check:
    """``other`` against ``reference`` in one table (reference may differ from the table's baseline)."""
    comparison = compare(values(table, reference), values(table, other), table.test)
    return Check(f"{other} vs {reference} ({table.title})", comparison, sign, subject=other, **kw)


def arm(tables: Sequence[ComparisonTable], task: str | None = None, **options) -> ComparisonTable:
    """The table whose model options include ``options`` (and of ``task``)."""
    for t in tables:
        opts = t.settings.get("model_options", {})
        if (task is None or t.task == task) and all(opts.get(k) == v for k, v in options.items()):
            return t
    raise LookupError(f"no comparison with task={task} and options {options}")


def per_seed_difference(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    """``a[s] - b[s]`` over the seeds both have (seed s shares data split and batch order)."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def _sign(higher_is_better: bool) -> int:
    return 1 if higher_is_better else -1


# -- the studies ---------------------------------------------------------------------------------
@dataclass
class Study:
    name: str
    title: str
    claim: str
    verdict: Callable[[list[ComparisonTable], list[StoredRun]], Verdict]
    caveats: str  # may name settings: {config.epochs}, or a companion study's: {zorro_lr_stress.lr}
    curves: bool = False
    times: bool = False
    extra_figure: Callable[[list[ComparisonTable]], tuple[str, bytes] | None] | None = None


def ditac_verdict(tables, runs) -> Verdict:
    (t,) = tables
    sign = _sign(t.higher_is_better)
    checks = [versus(t, "ditac", ref, sign) for ref in ("gelu", "relu")]
    r2 = {}
    for r in runs:
        if r.result.ok and "r2" in r.result.test_metrics:
            r2.setdefault(r.spec.activation.label, []).append(r.result.test_metrics["r2"])
    extra = [
        "test R² (mean ± std over seeds): "
        + ", ".join(f"{label} {_mean_std(v)}" for label, v in sorted(r2.items(), key=lambda kv: -summarize(kv[1]).mean))
    ]
    others = [row.label for row in t.rows if row.label not in ("ditac", "gelu", "relu")]
    extra.append(
        "DiTAC against the other trainable activations (not part of the verdict): "
        + "; ".join(f"vs {o}:{_short(versus(t, 'ditac', o, sign))}" for o in others)
    )
    return Verdict(decide(checks), checks, extra=extra)


def _mean_std(values: Sequence[float]) -> str:
    s = summarize(values)
    return f"{s.mean:.3f}" if s.std is None else f"{s.mean:.3f} ± {s.std:.3f}"


def _short(check: Check) -> str:
    c = check.comparison
    return f" Δ {c.difference:+.4g}, p {'n/a' if c.p_value is None else f'{c.p_value:.3g}'}"


def serf_verdict(tables, runs) -> Verdict:
    depths = sorted(t.settings["model_options"]["depth"] for t in tables)
    shallow, deep = arm(tables, depth=depths[0]), arm(tables, depth=depths[-1])
    sign = _sign(deep.higher_is_better)
    margin_shallow = per_seed_difference(values(shallow, "serf"), values(shallow, "relu"))
    margin_deep = per_seed_difference(values(deep, "serf"), values(deep, "relu"))
    checks = [
        versus(deep, "serf", "relu", sign),
        Check(
            f"Serf's margin over ReLU at depth {depths[-1]} vs at depth {depths[0]}",
            compare(margin_shallow, margin_deep, deep.test),
            sign,
        ),
    ]
    extra = []
    for label in ("serf", "mish", "silu"):
        margins = []
        for d in depths:
            m = per_seed_difference(values(arm(tables, depth=d), label), values(arm(tables, depth=d), "relu"))
            margins.append(f"{d}: {summarize(list(m.values())).mean:+.4f}" if m else f"{d}: n/a")
        extra.append(f"margin of {label} over ReLU by depth (mean of per-seed differences): " + ", ".join(margins))
    return Verdict(decide(checks), checks, extra=extra)


def serf_margin_figure(tables) -> tuple[str, bytes] | None:
    import numpy as np

    depths = sorted(t.settings["model_options"]["depth"] for t in tables)
    fig, ax = _figure(5.5, 3.6)
    for i, label in enumerate(("serf", "mish", "silu")):
        means, lows, highs = [], [], []
        for d in depths:
            t = arm(tables, depth=d)
            m = list(per_seed_difference(values(t, label), values(t, "relu")).values())
            s = summarize(m)
            means.append(s.mean)
            lows.append(s.mean - (s.ci_low if s.ci_low is not None else s.mean))
            highs.append((s.ci_high if s.ci_high is not None else s.mean) - s.mean)
        x = np.arange(len(depths)) + (i - 1) * 0.08
        ax.errorbar(x, means, yerr=[lows, highs], marker="o", capsize=3, label=label)
    ax.axhline(0.0, color="k", lw=1, ls="--")
    ax.set_xticks(np.arange(len(depths)), [str(d) for d in depths])
    ax.set_xlabel("MLP depth (hidden layers)")
    ax.set_ylabel(f"test {tables[0].metric} − ReLU's (per seed)")
    ax.set_title("Margin over ReLU by depth: mean and 95% CI over seeds")
    ax.legend(fontsize=8)
    return "margin-by-depth", _png(fig)


def srs_verdict(tables, runs) -> Verdict:
    checks = []
    sign = _sign(tables[0].higher_is_better)
    for init in ("kaiming", "normal"):
        checks.append(
            versus(arm(tables, batch_norm=True, init=init), "srs", "relu", sign, kind="no_worse", tolerance=0.01)
        )
    for bn in (True, False):
        good, poor = arm(tables, batch_norm=bn, init="kaiming"), arm(tables, batch_norm=bn, init="normal")
        # Sensitivity: how far a seed's accuracy moves when only the initialisation changes, either way.
        change = {
            a: {s: abs(d) for s, d in per_seed_difference(values(good, a), values(poor, a)).items()}
            for a in ("srs", "relu")
        }
        checks.append(
            Check(
                f"|accuracy change| from kaiming to N(0, 0.01²) init, SRS vs ReLU ({'with' if bn else 'without'} BN)",
                compare(change["relu"], change["srs"], good.test),
                -1,
            )
        )
    return Verdict(decide(checks), checks, extra=['tolerance of the "no worse" checks: 0.01 accuracy (1 point)'])


def slaf_verdict(tables, runs) -> Verdict:
    checks = [versus(t, "slaf", "relu", _sign(t.higher_is_better)) for t in tables]
    extra = [
        "the lab scores the test split at the best validation epoch; the paper's figure is the best test "
        "accuracy over training, which is higher by construction"
    ]
    return Verdict(decide(checks), checks, extra=extra)


def zorro_verdict(tables, runs, stress_tables=None) -> Verdict:
    (t,) = tables
    sign = _sign(t.higher_is_better)
    variants = [row.label for row in t.rows if row.label.startswith("zorro")]
    checks = [versus(t, v, ref, sign, kind="no_worse", tolerance=0.02) for v in variants for ref in ("gelu", "relu")]
    verdict = decide(checks)
    extra = ['tolerance of the "no worse" checks: 0.02 exact match (2 points)']
    stress = _in_grid("zorro_lr_stress", load_runs("zorro_lr_stress") or [])
    if not stress:
        extra.append("learning-rate stress: not run yet")
        return Verdict(verdict, checks, extra=extra)
    failed: dict[str, list[int]] = {}
    for r in stress:
        failed.setdefault(r.spec.activation.label, [0, 0])
        failed[r.spec.activation.label][1] += 1
        failed[r.spec.activation.label][0] += not r.result.ok
    lr = stress[0].spec.lr
    counts = ", ".join(f"{label} {f}/{n}" for label, (f, n) in sorted(failed.items()))
    extra.append(f"learning-rate stress (lr {lr:g}): diverged runs {counts}")
    fixed = min(failed.get(a, [0, 0])[0] for a in ("gelu", "relu"))
    worst_zorro = max(failed[v][0] for v in variants if v in failed)
    if fixed == 0 and worst_zorro == 0:
        stress_verdict = "inconclusive (nothing diverged at this learning rate)"
    elif worst_zorro <= fixed:
        stress_verdict = "supported (no Zorro variant diverged more often than GELU or ReLU)"
    else:
        stress_verdict = "not supported (a Zorro variant diverged more often than GELU or ReLU)"
    extra.append(
        "stress rule: supported when every Zorro variant diverged in no more runs than the better of GELU and "
        "ReLU and something diverged at all; stress verdict: " + stress_verdict
    )
    if stress_verdict.startswith("not") and verdict == "supported":
        verdict = "not supported"
    elif stress_verdict.startswith("inconclusive") and verdict == "supported":
        verdict = "supported for accuracy; stability inconclusive"
    return Verdict(verdict, checks, extra=extra)


def resnet_verdict(tables, runs) -> Verdict:
    (t,) = tables
    sign = _sign(t.higher_is_better)
    checks = [versus(t, row.label, "relu", sign) for row in t.rows if row.label != "relu"]
    if not checks:
        return Verdict("inconclusive (no activation besides ReLU has finished runs yet)", [], rule="")
    decide(checks)  # fills in the Holm-corrected p-values
    better = [c.subject for c in checks if c.outcome == "for"]
    worse = [c.subject for c in checks if c.outcome == "against"]
    verdict = (
        f"{len(better)} of {len(checks)} trainable activations significantly beat ReLU"
        + (f" ({', '.join(better)})" if better else "")
        + f"; {len(worse)} significantly worse"
        + (f" ({', '.join(worse)})" if worse else "")
    )
    rule = (
        "each trainable activation against ReLU with the lab's Welch t-test, Holm-corrected over the "
        f"{len(checks)} comparisons, significant at p < {ALPHA}; cost is the table's time/epoch and saved-memory "
        "ratio to ReLU (one study, one worker layout)"
    )
    base = t.baseline_row
    rss = [
        f"{row.label} {row.peak_rss_bytes / base.peak_rss_bytes:.2f}x"
        for row in t.rows
        if base is not None and base.peak_rss_bytes and row.peak_rss_bytes
    ]
    extra = ["peak resident memory of the worker process relative to ReLU (max over seeds): " + ", ".join(rss)]
    return Verdict(verdict, checks, rule=rule, extra=extra if rss else [])


STUDIES = [
    Study(
        "ditac_regression",
        "DiTAC on the 2-D sum-of-sines regression",
        "DiTAC (Chelly et al., 2024): a 2→50→1 network with DiTAC fits the paper's sum-of-sines target "
        "better than with fixed activations (GELU, ReLU).",
        ditac_verdict,
        "the paper's demo draws 98 fresh points per step for 10 000 steps; here 5 000 fixed training points "
        "for about half that many steps. DiTAC's released regulariser on the transformation (λ_reg) is not "
        "added to the loss. Only the seed papers' trainable activations are in the grid.",
        curves=True,
    ),
    Study(
        "serf_depth",
        "Serf's margin over ReLU as networks get deeper",
        "Serf (Nag & Bhattacharyya, 2023): Serf's advantage over ReLU grows with depth.",
        serf_verdict,
        "digits (8×8 images, 1 078 training samples) and MLPs of width 64 stand in for the paper's "
        "image benchmarks; 20 epochs.",
        extra_figure=serf_margin_figure,
    ),
    Study(
        "srs_bn_init",
        "SRS with BatchNorm and under a poor initialisation",
        "SRS (Zhou et al., 2020): SRS is compatible with batch normalisation and less sensitive to weight "
        "initialisation than ReLU.",
        srs_verdict,
        "a 2-conv CNN on digits' 1×8×8 view, 15 epochs; the poor initialisation is N(0, 0.01²) weights.",
    ),
    Study(
        "slaf_cnn",
        "SLAF in the MNIST CNN",
        "SLAF (Goyal et al., 2019): in the TF Deep-MNIST CNN, SLAF reaches a higher test accuracy than ReLU "
        "(official logs: 99.55 % vs 99.34 % best test accuracy on full MNIST), also as a hybrid with ReLU at "
        "the fully connected layer.",
        slaf_verdict,
        "MNIST is not available offline: digits and a 1 000-image Fashion-MNIST subset (2 epochs) stand in. "
        "The hybrid routine (`slaf_cnn(act_layers='conv')`, ReLU at the FC site) is left out for compute.",
    ),
    Study(
        "zorro_transformer",
        "Zorro in a Transformer, and under a learning-rate stress",
        "Zorro (Roodschild et al., 2024): Zorro functions are a stable replacement for ReLU and GELU in Transformers.",
        lambda tables, runs: zorro_verdict(tables, runs),
        "num2words (1 000 training pairs) and a 2+2-layer Transformer of width 64, {config.epochs} epochs; "
        "the stress study (`zorro_lr_stress.toml`) trains the same grid for {zorro_lr_stress.epochs} epochs at lr "
        "{zorro_lr_stress.lr:g} instead of {config.lr:g}, without gradient clipping.",
        curves=True,
    ),
    Study(
        "trainable_resnet",
        "All trainable activations head to head in a small ResNet",
        "Trainable activations improve on ReLU; what they cost in time and memory.",
        resnet_verdict,
        "ResNet-8 of widths 8/16/32 on 1 000 Fashion-MNIST training images for 2 epochs: far from "
        "convergence, so this ranks early learning speed as much as final accuracy. SAU, Swish, APA, EELU "
        "and Sqish are left out for compute (add them to the file to include them). Times come from a "
        "shared 2-core machine running two studies' runs at once, so they are noisy; they are medians over "
        "seeds (one ReLU run was timed on a much busier machine). At this size (about 0.4 M elements per "
        "activation call) the activations run their eager fused paths; `benchmarks/speed.py` measures "
        "the kernels alone.",
        times=True,
    ),
]

#: Studies whose runs are reported inside another study's section.
COMPANIONS = {"zorro_lr_stress": "zorro_transformer"}


# -- rendering -----------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


#: Captions of the lab's per-comparison figures on this page.
FIGURE_CAPTIONS = {
    "metric": "test {t.metric} per activation: mean, 95% CI and each seed",
    "curves": "training loss and validation {t.metric} per epoch, mean ± std over seeds",
    "time": "time per training epoch relative to {t.baseline}",
}


def _drawable(table: ComparisonTable, name: str, study: Study) -> bool:
    """Whether the page shows figure ``name`` of ``table`` (the conditions under which the lab draws it)."""
    if name == "metric":
        return any(r.summary is not None for r in table.rows)
    if name == "curves":
        return study.curves and any(r.result.ok and r.result.history for row in table.rows for r in row.runs)
    return study.times and any(r.time_ratio is not None for r in table.rows)


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def _config(name: str) -> StudyConfig:
    return load_config_file(STUDIES_DIR / f"{name}.toml")


def _in_grid(name: str, runs: list[StoredRun]) -> list[StoredRun]:
    """The runs of the study file's current grid, in its order (tables then follow the file's arms)."""
    position = {spec.config_hash(): i for i, spec in enumerate(_config(name).run_specs())}
    return sorted((r for r in runs if r.config_hash in position), key=lambda r: position[r.config_hash])


def _tables(name: str, runs: list[StoredRun]) -> list[ComparisonTable]:
    config = _config(name)
    order = [c.label for c in config.activation_choices()]
    return analyse(runs, baseline=config.baseline_choice().label, test=config.test, order=order)


def _compute_line(runs: list[StoredRun]) -> str:
    total = sum(r.result.total_time_s for r in runs)
    failed = sum(not r.result.ok for r in runs)
    config = runs[0].spec
    return (
        f"{len(runs)} run{'s' * (len(runs) != 1)} ({failed} failed), {total / 60:.1f} min of run time in all "
        f"(device {config.device}; several runs in parallel on a shared 2-core machine)"
    )


def render_study(study: Study, figures: bool, lines: list[str]) -> str:
    """Append the study's section to ``lines``; write its PNGs when ``figures``. Returns the verdict."""
    config = _config(study.name)
    lines += [f"## {study.title}", "", f"**Claim.** {study.claim}", ""]
    runs = load_runs(study.name)
    runs = _in_grid(study.name, runs) if runs else runs
    command = f"actlab compare --config studies/{study.name}.toml"
    companions = [c for c, parent in COMPANIONS.items() if parent == study.name]
    lines += [
        "**Setup.** "
        f"`{command}`" + "".join(f" and `actlab compare --config studies/{c}.toml`" for c in companions) + "; "
        f"tasks {', '.join(config.tasks)}; models {', '.join(config.models or ['task default'])}; "
        f"activations {', '.join(c.label for c in config.activation_choices())}; baseline {config.baseline}; "
        f"{len(config.seeds)} seeds.",
        "",
        "**Scale and caveats.** " + study.caveats.format(config=config, **{c: _config(c) for c in companions}),
        "",
    ]
    if not runs:
        lines += [
            "**Not run yet**: no export in `docs/results/data/`. Run the command above, then "
            "`scripts/make_results.py --export`.",
            "",
        ]
        return "not run yet"
    tables = _tables(study.name, runs)
    companion_runs = [r for c in companions for r in _in_grid(c, load_runs(c) or [])]
    lines += [f"**Compute.** {_compute_line(runs + companion_runs)}.", ""]
    try:
        verdict = study.verdict(tables, runs)
    except LookupError as err:  # an arm is missing from the data: say so rather than guess
        verdict = Verdict(f"inconclusive (incomplete data: {err})", [])
    planned = len(_config(study.name).run_specs()) + sum(len(_config(c).run_specs()) for c in companions)
    done = len(runs) + len(companion_runs)
    if done < planned:
        verdict.verdict += f" (partial data: {done} of {planned} runs finished)"
        lines += [
            f"**Incomplete.** Only {done} of the {planned} planned runs finished in the time this page was "
            "made with; the study resumes from where it stopped when run again.",
            "",
        ]
    lines += [f"**Verdict: {verdict.verdict}.**", ""] + ([f"Rule: {verdict.rule}.", ""] if verdict.rule else [])
    lines += [f"- {c.line()}" for c in verdict.checks] + [f"- {e}" for e in verdict.extra] + [""]
    for index, table in enumerate(tables, 1):
        lines += [f"### {caption(table)}", "", settings_line(table) + ".", ""]
        lines += _markdown_table(*comparison_rows(table)) + [""]
        lines += [f"- note: {n}" for n in table.notes] + ([""] if table.notes else [])
        wanted = [n for n in ("metric", "curves", "time") if _drawable(table, n, study)]
        for name in wanted:
            lines += [f"![{FIGURE_CAPTIONS[name].format(t=table)}](results/{study.name}-{index}-{name}.png)", ""]
        if figures:
            drawn = {fig.name: fig for fig in figures_for(table)}
            missing = [n for n in wanted if n not in drawn]
            if missing:
                raise RuntimeError(f"{table.title}: the lab drew no {missing} figure; update _drawable")
            for name in wanted:
                (DOCS / f"results/{study.name}-{index}-{name}.png").write_bytes(drawn[name].png)
    if study.extra_figure is not None:
        made = study.extra_figure(tables)
        if made is not None:
            stem, png = made
            path = f"results/{study.name}-{stem}.png"
            if figures:
                (DOCS / path).write_bytes(png)
            lines += [f"![{stem}]({path})", ""]
    return verdict.verdict


HEADER = """# Measured results: the papers' claims at lab scale

Generated by `scripts/make_results.py` from `docs/results/data/*.json` (exports of the studies'
results stores); do not edit by hand. Each section is one study file in `studies/`, runnable
with one command. The numbers are from small CPU runs (subsets, few epochs, small models, five
seeds) on a shared 2-core machine, far smaller than the papers' experiments: a verdict says
what these runs show at this scale, not what the paper's full setting would show.

**Statistics** are the lab's own (`actlab.lab.analyse`, see [lab.md](lab.md#statistics)): mean ± sample
standard deviation over seeds, a t-based 95 % CI, Welch's t-test against the study's baseline,
`*` = significant at 0.05 after Holm's correction within the table. A run's test metric is
taken at its best validation epoch. `time/epoch` and `saved mem` are relative to the baseline.
The committed runs shared an oversubscribed 2-core machine (several studies and test suites at
once), so their times are indicative only; `saved mem` (bytes autograd keeps for backward) does
not depend on load.

**Regenerating.** Run the studies, export and rebuild the page:

```console
$ for s in studies/*.toml; do actlab compare --config "$s"; done
$ PYTHONPATH=src python scripts/make_results.py --export && PYTHONPATH=src python scripts/make_results.py
```

Every study resumes where it stopped. To scale up, add flags (they override the file):
`--device cuda`; `--data-dir DIR` for MNIST or CIFAR-10 (`--task mnist --data-dir DIR` runs the
SLAF study on real MNIST); `--limit 60000` (or a larger value than the data) to train on a full
set; `--epochs N`; `--seeds N`; `--workers N`. Flags change the runs' configuration, so the new
runs are stored next to the old ones, never mixed into the same table; give `--out` a new folder
to keep them apart.
"""


def render(figures: bool = True) -> str:
    if figures:
        (DOCS / "results").mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    verdicts = [render_study(study, figures, sections) for study in STUDIES]
    summary = ["## Summary", ""] + _markdown_table(
        ["study", "claim", "verdict"],
        [[f"[{s.title}](#{_anchor(s.title)})", s.claim, v] for s, v in zip(STUDIES, verdicts)],
    )
    return "\n".join([HEADER, *summary, "", *sections]).rstrip() + "\n"


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", action="store_true", help="export the studies' databases to docs/results/data")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/results.md differs from the data (writes nothing)"
    )
    args = parser.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", message=".*Tight layout.*")
    if args.export:
        for name in [s.name for s in STUDIES] + list(COMPANIONS):
            if (RESULTS_DIR / name / "results.sqlite").exists():
                print(f"exported {export(name).relative_to(REPO)}")
            else:
                print(f"skipped {name}: no results in {RESULTS_DIR / name}")
        return 0
    if args.check:
        fresh = render(figures=False)
        if PAGE.read_text() != fresh:
            print(f"{PAGE.relative_to(REPO)} is stale: run scripts/make_results.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(render(figures=True))
    print(f"wrote {PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
