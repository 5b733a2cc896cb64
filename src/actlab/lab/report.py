"""Rendering comparisons: the terminal table, ``report.md`` and ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables,
figures) and rendered twice: Markdown with the figures as PNG files beside it,
and one self-contained HTML file with the same figures embedded (base64).
Figures are drawn with matplotlib's object API on the Agg canvas, so the
caller's pyplot state and backend are never touched. Files are written
atomically (temporary file, then rename): a kill leaves the old report or the
new one, never half of one.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import ActivationRow, ComparisonTable

__all__ = [
    "format_comparison",
    "comparison_rows",
    "caption",
    "settings_line",
    "write_report",
    "Figure",
    "figures_for",
    "atomic_write",
]

_DASH = "-"


# -- numbers -----------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 4) -> str:
    if value is None or not np.isfinite(value):
        return _DASH
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.{digits}f}"
    return f"{value:.{digits - 1}e}"


def _signed(value: float | None, digits: int = 4) -> str:
    text = _num(value, digits)
    return text if text == _DASH or text.startswith("-") else f"+{text}"


def _p(value: float | None) -> str:
    if value is None:
        return _DASH
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


def _ratio(value: float | None) -> str:
    return _DASH if value is None else f"{value:.2f}x"


def _bytes(value: float | None) -> str:
    if value is None:
        return _DASH
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _seconds(value: float | None) -> str:
    if value is None:
        return _DASH
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


# -- the table -----------------------------------------------------------------------------------
def _headers(table: ComparisonTable) -> list[str]:
    effect = {"welch": "Cohen's d", "paired": "d_z", "wilcoxon": "r"}[table.test]
    return [
        "rank",
        "activation",
        f"{table.metric} (mean ± std)",
        "95% CI",
        f"Δ vs {table.baseline}",
        "p",
        effect,
        "time/epoch",
        "saved mem",
        "runs",
    ]


def _cells(row: ActivationRow) -> list[str]:
    s, c = row.summary, row.comparison
    label = f"{row.label} (baseline)" if row.is_baseline else row.label
    if s is None:
        value, ci = "failed", _DASH
    else:
        value = _num(s.mean) if s.std is None else f"{_num(s.mean)} ± {_num(s.std)}"
        ci = _DASH if s.ci_low is None else f"[{_num(s.ci_low)}, {_num(s.ci_high)}]"
    p = _p(c.p_value if c else None) + ("*" if row.significant else "")
    ok = len(row.values)
    runs = f"{ok}" if not row.failures else f"{ok}/{row.n_runs}"
    return [
        _DASH if row.rank is None else str(row.rank),
        label,
        value,
        ci,
        _signed(c.difference) if c else _DASH,
        p,
        _num(c.effect_size, 2) if c else _DASH,
        _ratio(row.time_ratio),
        _ratio(row.memory_ratio),
        runs,
    ]


def comparison_rows(table: ComparisonTable) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of one comparison (shared by terminal, Markdown and HTML)."""
    return _headers(table), [_cells(r) for r in table.rows]


def caption(table: ComparisonTable) -> str:
    """``task / model: test metric (direction), n seeds, test against baseline``."""
    direction = "higher is better" if table.higher_is_better else "lower is better"
    n = len(table.seeds)
    test = {"welch": "Welch's t-test", "paired": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}[table.test]
    return (
        f"{table.title}: test {table.metric} ({direction}), {n} seed{'s' * (n != 1)}, {test} against {table.baseline}"
    )


def settings_line(table: ComparisonTable) -> str:
    """The training settings of one comparison, on one line."""
    s = table.settings
    parts = [f"epochs {s['epochs']}", f"batch {s['batch_size']}", f"{s['optimizer']} lr {s['lr']:g}"]
    if s.get("weight_decay"):
        parts.append(f"weight decay {s['weight_decay']:g}")
    if s.get("grad_clip"):
        parts.append(f"grad clip {s['grad_clip']:g}")
    if s.get("limit"):
        parts.append(f"limit {s['limit']}")
    if s.get("model_options"):
        parts.append("model " + ", ".join(f"{k}={v}" for k, v in s["model_options"].items()))
    parts.append(f"device {s['device']}")
    return "; ".join(parts)


def _footnotes(table: ComparisonTable) -> list[str]:
    """What the marks and ratios mean (the table's notes come separately)."""
    lines = []
    tested = sum(1 for r in table.rows if r.p_holm is not None)
    if tested:
        lines.append(f"* significant at 0.05 after Holm's correction over {tested} comparison{'s' * (tested != 1)}")
    base = table.baseline_row
    if base is not None and base.epoch_time_s is not None:
        lines.append(
            f"time/epoch and saved mem are relative to {table.baseline}: {_seconds(base.epoch_time_s)} per epoch "
            f"(median over epochs and seeds), {_bytes(base.saved_tensor_bytes)} saved for backward per training step"
        )
    return lines


def format_comparison(table: ComparisonTable) -> str:
    """The terminal rendering: caption, settings, table, footnotes and notes."""
    from ..cli.catalogue import format_table

    headers, rows = comparison_rows(table)
    out = [caption(table), settings_line(table), "", format_table(headers, rows)]
    extra = _footnotes(table) + [f"note: {n}" for n in table.notes]
    if extra:
        out += [""] + extra
    return "\n".join(out)


# -- figures -------------------------------------------------------------------------------------
@dataclass
class Figure:
    """A rendered figure: a file-name stem, a caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def _colours(labels: Sequence[str], baseline: str) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    others = [label for label in labels if label != baseline]
    out = {label: cmap(i % 10) for i, label in enumerate(others)}
    out[baseline] = "black"
    return out


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # constrained layout already fits the figure
    return buf.getvalue()


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(figsize=(width, height), layout="constrained")


def _bars(table: ComparisonTable, colours) -> Figure | None:
    rows = [r for r in table.rows if r.summary is not None]
    if not rows:
        return None
    fig = _new_figure(1.2 + 0.7 * len(rows), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    means = [r.summary.mean for r in rows]
    low = [r.summary.mean - r.summary.ci_low if r.summary.ci_low is not None else 0 for r in rows]
    high = [r.summary.ci_high - r.summary.mean if r.summary.ci_high is not None else 0 for r in rows]
    ax.bar(x, means, yerr=[low, high], capsize=4, color=[colours[r.label] for r in rows], alpha=0.75)
    for i, r in enumerate(rows):
        ax.scatter([i] * len(r.values), list(r.values.values()), color="k", s=10, zorder=3)
    lo = min(min(r.values.values()) for r in rows)
    hi = max(max(r.values.values()) for r in rows)
    ci_lo = min(m - d for m, d in zip(means, low))
    ci_hi = max(m + d for m, d in zip(means, high))
    lo, hi = min(lo, ci_lo), max(hi, ci_hi)
    pad = 0.15 * (hi - lo) or 0.01 * abs(hi) or 0.01
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(x, [r.label + (" *" if r.is_baseline else "") for r in rows], rotation=30, ha="right")
    ax.set_ylabel(f"test {table.metric}")
    ax.set_title(f"{table.title}: mean, 95% CI and each seed")
    return Figure(
        "metric", f"Test {table.metric}: bars are means, error bars 95% CIs, dots single seeds (* baseline).", _png(fig)
    )


def _curves(table: ComparisonTable, colours) -> Figure | None:
    val_key = f"val_{table.metric}"
    fig = _new_figure(10, 3.6)
    axes = fig.subplots(1, 2)
    drawn = False
    for row in table.rows:
        histories = [r.result.history for r in row.runs if r.result.ok and r.result.history]
        if not histories:
            continue
        for ax, key in zip(axes, ("train_loss", val_key)):
            length = min(len(h) for h in histories)
            values = np.array([[e.get(key, np.nan) for e in h[:length]] for h in histories], dtype=float)
            epochs = np.arange(1, length + 1)
            mean, std = values.mean(axis=0), values.std(axis=0)
            ax.plot(epochs, mean, color=colours[row.label], label=row.label, lw=1.5)
            if len(histories) > 1:
                ax.fill_between(epochs, mean - std, mean + std, color=colours[row.label], alpha=0.15, lw=0)
        drawn = True
    if not drawn:
        return None
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel(f"validation {table.metric}")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend(fontsize=8, ncols=2)
    fig.suptitle(f"{table.title}: training curves (mean ± std over seeds)")
    return Figure(
        "curves",
        "Training loss and validation metric per epoch; bands are ± one standard deviation over seeds.",
        _png(fig),
    )


def _times(table: ComparisonTable, colours) -> Figure | None:
    rows = [r for r in table.rows if r.time_ratio is not None]
    if not rows:
        return None
    fig = _new_figure(6, 0.8 + 0.35 * len(rows))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y, [r.time_ratio for r in rows], color=[colours[r.label] for r in rows], alpha=0.75)
    ax.axvline(1.0, color="k", lw=1, ls="--")
    ax.set_yticks(y, [r.label for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"time per training epoch relative to {table.baseline}")
    return Figure("time", f"Median time per training epoch, relative to {table.baseline} (dashed line).", _png(fig))


def _initial_curve(row: ActivationRow) -> np.ndarray | None:
    """The activation's shape before training (the same at every site)."""
    from .runner import initial_shape

    try:
        return np.asarray(initial_shape(row.runs[0].spec.activation)["y"])[0]
    except (TypeError, ValueError):  # no longer registered, or options this version rejects
        return None


def _shapes(table: ComparisonTable, colours) -> list[Figure]:
    """Per trainable activation: :func:`actlab.plot_sites` of the first seed, the other seeds and the initial shape over it."""
    from ..plotting import plot_sites
    from .runner import site_report

    figures = []
    for row in table.rows:
        snapshots = [r.result.activations for r in row.runs if r.result.ok and r.result.activations]
        if not snapshots or not any(site.get("trainable") for site in snapshots[0]):
            continue  # fixed activations: nothing was learned
        reports = [site_report(record) for record in snapshots[0]]
        cols = min(4, len(reports))
        fig = _new_figure(3.4 * cols, 2.7 * -(-len(reports) // cols))
        axes = list(np.asarray(fig.subplots(-(-len(reports) // cols), cols, squeeze=False)).ravel())
        for ax in axes[len(reports) :]:
            ax.set_visible(False)
        axes = axes[: len(reports)]
        seeds = len(snapshots)
        plot_sites(reports, axes=axes, title=f"{row.label}: learned shape per layer ({seeds} seed{'s' * (seeds != 1)})")
        initial = _initial_curve(row)
        for i, ax in enumerate(axes):
            for snapshot in snapshots[1:]:  # the other seeds, thinner (channel mean)
                if i < len(snapshot):
                    other = np.asarray(snapshot[i]["y"]).mean(axis=0)
                    ax.plot(reports[i].x, other, color=colours[row.label], lw=0.9, alpha=0.6)
            if initial is not None:
                ax.plot(reports[i].x, initial, color="0.45", ls="--", lw=1, label="initial")
        axes[0].legend(fontsize=8, frameon=False, loc="best")
        safe = "".join(ch if ch.isalnum() else "_" for ch in row.label)
        figures.append(
            Figure(
                f"shapes-{safe}",
                f"{row.label}: shape at the end of training at each activation site (first seed, with the "
                "channel range when parameters are per channel; thin lines: the other seeds; dashed: the initial shape).",
                _png(fig),
            )
        )
    return figures


def figures_for(table: ComparisonTable) -> list[Figure]:
    """Every figure of one comparison (requires matplotlib)."""
    colours = _colours([r.label for r in table.rows], table.baseline)
    figs = [_bars(table, colours), _curves(table, colours), _times(table, colours)]
    return [f for f in figs if f is not None] + _shapes(table, colours)


# -- documents -----------------------------------------------------------------------------------
@dataclass
class _Document:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, kind: str, value: Any) -> None:
        self.blocks.append((kind, value))


def _md_escape(text: str) -> str:
    """Escape Markdown emphasis characters (the significance star, underscores in names)."""
    return text.replace("*", "\\*").replace("_", "\\_")


def _markdown(doc: _Document, figure_paths: dict[int, str]) -> str:
    out = [f"# {doc.title}", ""]
    for kind, value in doc.blocks:
        if kind == "h2":
            out += [f"## {value}", ""]
        elif kind == "p":
            out += [value, ""]
        elif kind == "list":
            out += [f"- {_md_escape(v)}" for v in value] + [""]
        elif kind == "table":
            headers, rows = value
            esc = lambda c: _md_escape(str(c)).replace("|", "\\|")  # noqa: E731
            out.append("| " + " | ".join(map(esc, headers)) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
            out.append("")
        elif kind == "figure":
            out += [f"![{value.caption}]({figure_paths[id(value)]})", "", f"*{value.caption}*", ""]
        elif kind == "code":
            out += ["```", value, "```", ""]
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
td:nth-child(2),th:nth-child(2){text-align:left}th{background:#f3f3f3}figure{margin:1.5em 0}
img{max-width:100%}figcaption{font-size:.9em;color:#555}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}"""


def _html(doc: _Document) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
    for kind, value in doc.blocks:
        if kind == "h2":
            out.append(f"<h2>{e(value)}</h2>")
        elif kind == "p":
            out.append(f"<p>{e(value)}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{e(v)}</li>" for v in value) + "</ul>")
        elif kind == "table":
            headers, rows = value
            out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</tbody></table>")
        elif kind == "figure":
            data = base64.b64encode(value.png).decode("ascii")
            out.append(
                f'<figure><img alt="{e(value.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(value.caption)}</figcaption></figure>"
            )
        elif kind == "code":
            out.append(f"<pre>{e(value)}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``path`` so that a crash leaves the old file or the new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _environment_lines(tables: Sequence[ComparisonTable]) -> list[str]:
    envs = {}
    for t in tables:
        for row in t.rows:
            for r in row.runs:
                env = r.result.environment
                if env:
                    key = (
                        env.get("actlab"),
                        env.get("torch"),
                        env.get("python"),
                        env.get("platform"),
                        env.get("threads"),
                        env.get("device"),
                    )
                    envs[key] = env
    return [
        f"actlab {k[0]}, torch {k[1]}, Python {k[2]}, {k[3]}, {k[4]} thread(s) per run, device {k[5]}" for k in envs
    ]


def write_report(
    out_dir: str | os.PathLike, tables: Sequence[ComparisonTable], *, command: str | None = None
) -> tuple[Path, Path]:
    """Write ``report.md`` (figures under ``figures/``) and a self-contained ``report.html``.

    Without matplotlib the report is written without figures and says how to get them.
    """
    out = Path(out_dir)
    doc = _Document("actlab comparison report")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc.add("p", f"Generated {stamp}" + (" by:" if command else "."))
    if command:
        doc.add("code", command)
    env = _environment_lines(tables)
    if env:
        doc.add("list", env)
    try:
        import matplotlib  # noqa: F401

        have_plots = True
    except ImportError:
        have_plots = False
        doc.add("p", "Figures are missing: matplotlib is not installed (pip install 'actlab[lab]').")
    figure_paths: dict[int, str] = {}
    figures_dir = out / "figures"
    for index, table in enumerate(tables, 1):
        doc.add("h2", caption(table))
        doc.add("p", settings_line(table))
        doc.add("table", comparison_rows(table))
        notes = _footnotes(table) + [f"Note: {n}" for n in table.notes]
        if notes:
            doc.add("list", notes)
        if have_plots:
            for fig in figures_for(table):
                figures_dir.mkdir(parents=True, exist_ok=True)
                name = f"{index:02d}-{table.task}-{table.model}-{fig.name}.png"
                atomic_write(figures_dir / name, fig.png)
                figure_paths[id(fig)] = f"figures/{name}"
                doc.add("figure", fig)
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write(md_path, _markdown(doc, figure_paths))
    atomic_write(html_path, _html(doc))
    return md_path, html_path
