"""Figures of activations: curves and derivatives, learned shapes per layer, evolution in training.

Every function draws data computed by :mod:`actlab.inspection` (the arrays are
available without matplotlib). matplotlib is an optional dependency
(``pip install 'actlab[plot]'``), imported only when a figure is drawn; this
module never selects a backend (the CLI and tests use Agg).

:func:`plot`
    one or several activations overlaid: the function and its derivative.
:func:`plot_sites`
    small multiples, one panel per activation site of a model
    (:func:`actlab.inspect`), with the per-channel spread as a band and,
    optionally, the recorded input distribution (:func:`actlab.record_inputs`).
:func:`plot_evolution` / :func:`animate_evolution`
    how each site's shape changed during training (:class:`actlab.ParameterRecorder`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from .inspection import InputHistogram, ParameterRecorder, SiteReport, Snapshot, report_site
from .registry import ActivationSpec, canonical_name, create

__all__ = ["plot", "plot_sites", "plot_evolution", "animate_evolution", "FONT_SIZES"]

#: Font sizes (points) used for every figure: readable at 100 dpi.
FONT_SIZES = {"title": 11, "label": 10, "ticks": 9, "legend": 9}
_BAND_ALPHA = 0.22
_HIST_COLOR = "0.55"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "actlab's figures need matplotlib, which is not installed; install it with: pip install 'actlab[plot]'"
        ) from err
    return plt


def _style_axes(ax: Any, xlabel: str | None, ylabel: str | None, zero_lines: bool = True) -> None:
    if zero_lines:  # above the grid (zorder 0.5), below the curves (2)
        ax.axhline(0.0, color="0.7", linewidth=0.8, zorder=0.8)
        ax.axvline(0.0, color="0.7", linewidth=0.8, zorder=0.8)
    ax.grid(True, color="0.92", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=FONT_SIZES["ticks"])
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=FONT_SIZES["label"])
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=FONT_SIZES["label"])


def _save(fig: Any, save: str | os.PathLike | None, dpi: int) -> None:
    if save is not None:
        fig.savefig(save, dpi=dpi, bbox_inches="tight")


# ---------------------------------------------------------------------------------------
# plot(): activations overlaid
# ---------------------------------------------------------------------------------------


def _label(spec: Any, module: nn.Module, report: SiteReport) -> str:
    if isinstance(spec, str):
        return canonical_name(spec)
    if isinstance(spec, nn.Module) or isinstance(spec, type):
        return report.registry_name or type(module).__name__
    return getattr(spec, "__name__", None) or report.registry_name or type(module).__name__


def _items(spec: Any) -> list[tuple[str | None, Any]]:
    """``[(label or None, spec), ...]`` from one spec, a sequence of specs or a ``{label: spec}`` mapping."""
    if isinstance(spec, Mapping):
        return [(str(k), v) for k, v in spec.items()]
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError("nothing to plot: the list of activations is empty")
        return [(None, s) for s in spec]
    return [(None, spec)]


def _draw_curve(ax: Any, x: np.ndarray, rows: np.ndarray, color: Any, label: str | None, linestyle: str = "-") -> None:
    """A line for one channel; for several, the channel mean and a band from min to max."""
    ax.plot(x, rows.mean(axis=0), color=color, linestyle=linestyle, linewidth=1.8, label=label)
    if rows.shape[0] > 1:
        ax.fill_between(x, rows.min(axis=0), rows.max(axis=0), color=color, alpha=_BAND_ALPHA, linewidth=0)


def plot(
    spec: ActivationSpec | Sequence[ActivationSpec] | Mapping[str, ActivationSpec],
    x_range: tuple[float, float] = (-5.0, 5.0),
    derivative: bool = True,
    ax: Any = None,
    save: str | os.PathLike | None = None,
    *,
    points: int = 401,
    title: str | None = None,
    dpi: int = 150,
):
    """Draw one or several activations and (by default) their derivatives.

    Args:
        spec: a registry name, an ``nn.Module`` class or instance (a trained
            module shows its learned shape; per-channel modules show the mean
            over channels with a min-max band), a tensor function, or a list of
            these, or a ``{label: spec}`` mapping.
        x_range: the x interval. Default: (-5, 5)
        derivative: also draw dy/dx (autograd). Default: ``True``
        ax: ``None`` (a new figure: one panel, or two side by side with the
            derivative), one Axes (the derivative is drawn dashed on it), or a
            pair of Axes (function, derivative).
        save: a file name; the format follows its extension (``.png``,
            ``.svg``, ``.pdf``).
        points: grid points. Default: 401
        title: figure title. Default: none
        dpi: resolution when saving a raster format. Default: 150

    Returns:
        ``(fig, axes)``, ``axes`` a tuple with one or two Axes.

    Example::

        >>> fig, axes = actlab.plot(["srs", "serf", "gelu"], save="activations.png")
    """
    items = _items(spec)
    plt = _pyplot()
    if ax is None:
        if derivative:
            fig, pair = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
            axes = tuple(pair)
        else:
            fig, single = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
            axes = (single,)
    else:
        axes = tuple(ax) if isinstance(ax, (list, tuple, np.ndarray)) else (ax,)
        if len(axes) not in (1, 2) or (len(axes) == 2 and not derivative):
            raise ValueError("ax must be one Axes, or a pair (function, derivative) when derivative=True")
        fig = axes[0].figure
    same_axes = derivative and len(axes) == 1
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    single = len(items) == 1
    for i, (label, item) in enumerate(items):
        module = item if isinstance(item, nn.Module) else create(item)
        report = report_site("", module, x_range, points, derivative)
        name = label or _label(item, module, report)
        color = colors[i % len(colors)]
        if same_axes:
            # One panel: the function solid, its derivative dashed; in the same colour when
            # several activations share the panel, in a second colour for a single one (so
            # that stretches where f = f', like ReLU's x < 0, stay visible).
            _draw_curve(axes[0], report.x, report.y, color, "f(x)" if single else name)
            d_color = colors[1 % len(colors)] if single else color
            _draw_curve(axes[0], report.x, report.dy, d_color, "f′(x)" if single else f"{name}, f′", linestyle="--")
        else:
            _draw_curve(axes[0], report.x, report.y, color, name)
            if derivative:
                _draw_curve(axes[1], report.x, report.dy, color, name)
    _style_axes(axes[0], "x", "f(x) and f′(x)" if same_axes else "f(x)")
    axes[0].set_xlim(*x_range)
    if derivative and not same_axes:
        _style_axes(axes[1], "x", "f′(x)")
        axes[1].set_xlim(*x_range)
        axes[0].set_title("function", fontsize=FONT_SIZES["title"])
        axes[1].set_title("derivative", fontsize=FONT_SIZES["title"])
    if not single or same_axes:
        axes[0].legend(fontsize=FONT_SIZES["legend"], frameon=False)
    if title is None and single:
        title = name
    if title:
        (fig.suptitle if len(axes) == 2 else axes[0].set_title)(title, fontsize=FONT_SIZES["title"] + 1)
    _save(fig, save, dpi)
    return fig, axes


# ---------------------------------------------------------------------------------------
# plot_sites(): learned shapes per layer
# ---------------------------------------------------------------------------------------


def _grid_of_axes(n: int, ncols: int | None, panel_size: tuple[float, float]):
    plt = _pyplot()
    ncols = min(n, 4) if ncols is None else max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, grid = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False, layout="constrained"
    )
    flat = list(grid.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n], ncols


def _overlay_histogram(ax: Any, hist: InputHistogram, x_range: tuple[float, float], right_label: bool) -> None:
    twin = ax.twinx()
    density = hist.density()
    twin.fill_between(hist.centers, density, step="mid", color=_HIST_COLOR, alpha=0.3, linewidth=0, label="inputs seen")
    twin.set_ylim(0, max(float(density.max()), 1e-12) * 2.2)  # keep the histogram in the lower half
    twin.tick_params(labelsize=FONT_SIZES["ticks"], colors=_HIST_COLOR)
    if right_label:
        twin.set_ylabel("input density", fontsize=FONT_SIZES["label"], color=_HIST_COLOR)
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    lo, hi = x_range
    total = hist.count + hist.inf_count
    outside = hist.underflow + hist.overflow + int(hist.counts[(hist.centers < lo) | (hist.centers > hi)].sum())
    if total and outside / total >= 0.005:
        ax.text(
            0.02,
            0.96,
            f"{100 * outside / total:.1f}% of inputs outside plot",
            transform=ax.transAxes,
            fontsize=FONT_SIZES["ticks"] - 1,
            va="top",
            color="0.35",
        )


def plot_sites(
    reports: Sequence[SiteReport],
    histograms: Mapping[str, InputHistogram] | None = None,
    *,
    derivative: bool = False,
    axes: Sequence[Any] | None = None,
    ncols: int | None = None,
    title: str | None = None,
    save: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Small multiples of learned activation shapes, one panel per site.

    Args:
        reports: from :func:`actlab.inspect` (use ``derivative=True`` there to
            draw derivatives).
        histograms: from :func:`actlab.record_inputs` (``recorder.histograms``):
            the input distribution each site saw, drawn on a twin axis.
        derivative: draw dy/dx dashed (needs reports with ``dy``). Default: ``False``
        axes: Axes to draw into, one per report; default: a new figure.
        ncols: panels per row. Default: up to 4
        title: figure title.
        save: file name (``.png``, ``.svg``, ``.pdf``).

    Per-channel sites show the channel mean and a band from the channel
    minimum to maximum. Returns ``(fig, axes)``.
    """
    reports = list(reports)
    if not reports:
        raise ValueError("no activation sites to plot (inspect() found none in this model)")
    if derivative and any(r.dy is None for r in reports):
        raise ValueError("derivative=True needs reports made with actlab.inspect(model, derivative=True)")
    if axes is None:
        fig, axes, ncols = _grid_of_axes(len(reports), ncols, (3.4, 2.7))
    else:
        axes = list(axes)
        if len(axes) != len(reports):
            raise ValueError(f"got {len(axes)} Axes for {len(reports)} sites; pass one Axes per site")
        fig, ncols = axes[0].figure, len(axes)
    plt = _pyplot()
    color = plt.rcParams["axes.prop_cycle"].by_key()["color"][0]
    for i, (ax, report) in enumerate(zip(axes, reports)):
        channels = report.channels
        _draw_curve(ax, report.x, report.y, color, "f(x)" if channels == 1 else f"mean of {channels} channels")
        if channels > 1:
            ax.fill_between([], [], [], color=color, alpha=_BAND_ALPHA, label="channel min–max")
        if derivative:
            _draw_curve(ax, report.x, report.dy, "C3", "f′(x)", linestyle="--")
        x_range = (float(report.x[0]), float(report.x[-1]))
        ax.set_xlim(*x_range)
        last_row = i >= len(reports) - ncols
        _style_axes(ax, "input x" if last_row else None, "output" if i % ncols == 0 else None)
        ax.set_title(report.label, fontsize=FONT_SIZES["title"] - 1)
        if not report.elementwise:
            ax.text(
                0.98,
                0.04,
                "not elementwise: this curve holds for this grid only",
                transform=ax.transAxes,
                fontsize=FONT_SIZES["ticks"] - 1,
                ha="right",
                color="C3",
            )
        if histograms is not None and report.name in histograms:
            _overlay_histogram(
                ax, histograms[report.name], x_range, right_label=(i % ncols == ncols - 1) or i == len(reports) - 1
            )
        if i == 0 and (channels > 1 or derivative):
            ax.legend(fontsize=FONT_SIZES["legend"] - 1, frameon=False, loc="best")
    if title:
        fig.suptitle(title, fontsize=FONT_SIZES["title"] + 1)
    _save(fig, save, dpi)
    return fig, axes


# ---------------------------------------------------------------------------------------
# Evolution during training
# ---------------------------------------------------------------------------------------


def _snapshots_with_curves(source: ParameterRecorder | Sequence[Snapshot]) -> list[Snapshot]:
    snaps = list(source.snapshots if isinstance(source, ParameterRecorder) else source)
    if not snaps:
        raise ValueError("no snapshots recorded yet")
    if any(s.x is None for s in snaps):
        raise ValueError("these snapshots have no curves; create the ParameterRecorder with curves=True")
    return snaps


def _site_title(snaps: Sequence[Snapshot], name: str) -> str:
    kind = next((s.kinds[name] for s in snaps if name in s.kinds), None)
    shown = name or "(model)"
    return f"{shown} ({kind})" if kind else shown


def _sites(snaps: Sequence[Snapshot], sites: Sequence[str] | None) -> list[str]:
    known = list(dict.fromkeys(name for s in snaps for name in s.curves))
    if sites is None:
        return known
    missing = [s for s in sites if s not in known]
    if missing:
        raise ValueError(f"unknown site(s) {missing}; recorded sites: {', '.join(known)}")
    return list(sites)


def plot_evolution(
    source: ParameterRecorder | Sequence[Snapshot],
    sites: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    save: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """How each site's shape evolved: one panel per site, one curve per snapshot coloured by step.

    Per-channel sites show the channel mean; the last snapshot also shows its
    channel min–max band. Returns ``(fig, axes)``.
    """
    plt = _pyplot()
    from matplotlib import cm, colors

    snaps = _snapshots_with_curves(source)
    names = _sites(snaps, sites)
    fig, axes, ncols = _grid_of_axes(len(names), ncols, (3.4, 2.7))
    steps = [s.step for s in snaps]
    norm = colors.Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    # The pale end of most colormaps vanishes on white: keep the darker 85 %.
    colormap = colors.ListedColormap(plt.get_cmap(cmap)(np.linspace(0.0, 0.85, 256)))
    for i, (ax, name) in enumerate(zip(axes, names)):
        last = next(s for s in reversed(snaps) if name in s.curves)
        _, low, high = last.curves[name]
        if np.any(low != high):
            ax.fill_between(
                last.x, low, high, color=_HIST_COLOR, alpha=0.25, linewidth=0, label=f"channel range, step {last.step}"
            )
            ax.legend(fontsize=FONT_SIZES["legend"] - 1, frameon=False, loc="best")
        for snap in snaps:
            if name in snap.curves:
                mean, _, _ = snap.curves[name]
                ax.plot(snap.x, mean, color=colormap(norm(snap.step)), linewidth=1.4)
        ax.set_xlim(float(last.x[0]), float(last.x[-1]))
        _style_axes(ax, "input x" if i >= len(names) - ncols else None, "output" if i % ncols == 0 else None)
        ax.set_title(_site_title(snaps, name), fontsize=FONT_SIZES["title"] - 1)
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=colormap), ax=axes, shrink=0.9, pad=0.02)
    bar.set_label("training step", fontsize=FONT_SIZES["label"])
    bar.ax.tick_params(labelsize=FONT_SIZES["ticks"])
    if title:
        fig.suptitle(title, fontsize=FONT_SIZES["title"] + 1)
    _save(fig, save, dpi)
    return fig, axes


def animate_evolution(
    source: ParameterRecorder | Sequence[Snapshot],
    path: str | os.PathLike,
    sites: Sequence[str] | None = None,
    *,
    fps: int = 4,
    ncols: int | None = None,
    dpi: int = 100,
) -> str:
    """Write a GIF: one frame per snapshot, every site's shape at that step over its initial shape (dotted).

    Uses matplotlib's Pillow writer (Pillow is a dependency of matplotlib).
    Returns the path written.
    """
    plt = _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    snaps = _snapshots_with_curves(source)
    names = _sites(snaps, sites)
    fig, axes, ncols = _grid_of_axes(len(names), ncols, (3.2, 2.5))
    lines, bands = {}, {}
    for i, (ax, name) in enumerate(zip(axes, names)):
        first = next(s for s in snaps if name in s.curves)
        ax.plot(first.x, first.curves[name][0], color="0.6", linestyle=":", linewidth=1.2, label=f"step {first.step}")
        lows = np.concatenate([s.curves[name][1] for s in snaps if name in s.curves])
        highs = np.concatenate([s.curves[name][2] for s in snaps if name in s.curves])
        pad = 0.05 * (highs.max() - lows.min() + 1e-12)
        ax.set_ylim(lows.min() - pad, highs.max() + pad)
        ax.set_xlim(float(first.x[0]), float(first.x[-1]))
        (lines[name],) = ax.plot([], [], color="C0", linewidth=1.8, label="current")
        bands[name] = None
        _style_axes(ax, "input x" if i >= len(names) - ncols else None, "output" if i % ncols == 0 else None)
        ax.set_title(_site_title(snaps, name), fontsize=FONT_SIZES["title"] - 1)
        if i == 0:
            ax.legend(fontsize=FONT_SIZES["legend"] - 1, frameon=False, loc="upper left")
    heading = fig.suptitle("", fontsize=FONT_SIZES["title"])

    def draw(k: int):
        snap = snaps[k]
        for ax, name in zip(axes, names):
            if name not in snap.curves:
                continue
            mean, low, high = snap.curves[name]
            lines[name].set_data(snap.x, mean)
            if bands[name] is not None:
                bands[name].remove()
            bands[name] = (
                ax.fill_between(snap.x, low, high, color="C0", alpha=_BAND_ALPHA, linewidth=0)
                if np.any(low != high)
                else None
            )
        heading.set_text(f"training step {snap.step}")
        return list(lines.values())

    animation = FuncAnimation(fig, draw, frames=len(snaps), blit=False)
    animation.save(os.fspath(path), writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return os.fspath(path)
