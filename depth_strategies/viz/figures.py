"""Figures from ``results.json``: training curves, bar charts with bootstrap intervals, per-view scatter against
the baseline, hyper-parameter sweeps, and image panels (RGB | depth | depth error) per test view.

Everything is drawn on explicit :class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot, so no
global state is shared between calls) and written atomically as PNG. Each public function returns the paths it
wrote; :func:`make_all_figures` runs them all and turns a failing figure into a warning.

Only numpy and matplotlib are needed here (no torch), so figures can be remade on any machine from an output folder.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps as mpl_colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

# --------------------------------------------------------------------------------------------------- constants

DPI = 150
"""Resolution of every written PNG."""
DEFAULT_BASELINE = "depth-baseline"
"""Baseline method when the protocol does not name one."""
CURVE_METRICS = ("psnr", "depth_l1")
"""Metrics of the training curves, the scatter plots and the sweeps by default."""
SWEEP_METRICS = ("psnr", "depth_l1")
"""Metrics drawn against a swept value (each only when present)."""

CI_LEVEL = 0.95
"""Confidence level of the bars' error bars."""
BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the percentile bootstrap."""
BOOTSTRAP_SEED = 0
"""Seed of the bootstrap's generator: the same data always gives the same interval."""

SWEEP_SEPARATOR = "@"
"""A swept method's name is ``<base method>@<sweep name>=<value>``."""
LOG_SPAN = 10.0
"""A sweep axis is logarithmic when all values are positive and max / min reaches this ratio."""

BASELINE_COLOUR = "0.25"
"""Colour of the baseline in every figure (dark grey)."""
METHOD_COLOURS = "tab10"
"""Qualitative colour map of the other methods, assigned in order of first appearance."""
FAILED_COLOUR = "tab:red"
"""Colour of the "failed" labels."""

DEPTH_CMAP = "turbo"
"""Colour map of depth (the same as the model's tensorboard images)."""
ERROR_CMAP = "inferno"
"""Colour map of |depth error|."""
DEPTH_ERROR_RANGE = 0.5
"""|depth error| (Blender units) that saturates the error colour map; as in :mod:`depth_strategies.core.colour`."""
DEPTH_PERCENTILES = (2.0, 98.0)
"""Percentiles of the depths that set a panel's shared depth colour range."""
ACCUMULATION_THRESHOLD = 0.5
"""Rendered pixels with accumulation below this are background (drawn white) and do not set the depth range."""
GT_UNKNOWN, GT_SURFACE, GT_EMPTY = 0, 1, 2
"""Values of ``gt_state``: unknown depth, a surface at known depth, empty background."""
WHITE = 1.0
"""Background and blank cells of the panels."""
UNKNOWN_GREY = 0.8
"""Ground-truth depth cells where the depth is unknown (``gt_state == 0``)."""
PANEL_ROWS = ("RGB", "depth", "|depth error|")
"""Row labels of a panel."""
GT_COLUMN = "ground truth"
"""Title of a panel's first column."""
DEPTH_UNIT = "Blender units"
"""Unit of depth in the panels' colour bars."""
MAX_PANEL_WIDTH_PX = 2000
"""A panel is at most this many pixels wide."""
PANEL_CELL_MAX_IN = 3.0
"""Widest image cell of a panel, inches."""
PANEL_LEFT_IN, PANEL_RIGHT_IN, PANEL_TOP_IN = 0.4, 1.2, 0.75
"""Margins of a panel, inches: row labels, colour bars, suptitle and column titles."""
DEFAULT_PANEL_VIEWS = 3
"""Views per scene in the panels unless told otherwise."""

Cell = np.ndarray
"""One image of a panel: ``[H, W, 3]`` float in [0, 1]."""
Job = Tuple[str, Callable[[], Path]]
"""A figure to draw: its file name and the function that writes it."""


# --------------------------------------------------------------------------------------------------- helpers

def bootstrap_ci(
    values: Iterable[float], level: float = CI_LEVEL, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Optional[Tuple[float, float]]:
    """Percentile-bootstrap confidence interval of the mean of ``values`` (non-finite values dropped).

    Returns ``None`` when fewer than two values remain: one value has no interval.
    """
    data = np.asarray([v for v in (_number(x) for x in values) if v is not None], dtype=np.float64)
    if data.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // data.size)  # bounded memory for long samples
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        means[start:stop] = data[rng.integers(0, data.size, size=(stop - start, data.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(means, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def _number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None (missing, NaN, infinite, not a number, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _safe_name(text: Any) -> str:
    """``text`` usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_") or "unnamed"


def _baseline(results: Mapping[str, Any]) -> str:
    return str((results.get("protocol") or {}).get("baseline") or DEFAULT_BASELINE)


def _runs(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [r for r in (results.get("runs") or []) if isinstance(r, dict)]


def _is_sweep(run: Mapping[str, Any]) -> bool:
    return bool(run.get("sweep")) or SWEEP_SEPARATOR in str(run.get("method", ""))


def _is_ok(run: Mapping[str, Any]) -> bool:
    return run.get("status") == "ok"


def _scenes(results: Mapping[str, Any]) -> List[str]:
    """Scenes in order of first appearance."""
    return list(dict.fromkeys(str(r.get("scene")) for r in _runs(results)))


def _methods(results: Mapping[str, Any], scene: Optional[str] = None) -> List[str]:
    """Non-sweep methods (of ``scene``, or of all scenes), the baseline first, then in order of appearance."""
    names = [str(r.get("method")) for r in _runs(results)
             if not _is_sweep(r) and (scene is None or str(r.get("scene")) == scene)]
    names = list(dict.fromkeys(names))
    baseline = _baseline(results)
    return ([baseline] if baseline in names else []) + [n for n in names if n != baseline]


def _method_colours(results: Mapping[str, Any]) -> Dict[str, Any]:
    """A fixed colour per non-sweep method across all figures of a results file."""
    cmap = mpl_colormaps[METHOD_COLOURS]
    baseline = _baseline(results)
    colours: Dict[str, Any] = {baseline: BASELINE_COLOUR}
    others = [m for m in _methods(results) if m != baseline]
    # sweeps of methods that did not run unswept still need a colour
    others += [m for m in dict.fromkeys(_base_method(r) for r in _runs(results) if _is_sweep(r))
               if m not in others and m != baseline]
    for i, method in enumerate(others):
        colours[method] = cmap(i % cmap.N)
    return colours


def _base_method(run: Mapping[str, Any]) -> str:
    return str(run.get("method", "")).split(SWEEP_SEPARATOR)[0]


def _scene_runs(results: Mapping[str, Any], scene: str, method: str) -> List[Dict[str, Any]]:
    return [r for r in _runs(results) if str(r.get("scene")) == scene and str(r.get("method")) == method]


def _view_values(runs: Iterable[Mapping[str, Any]], metric: str) -> List[float]:
    """Every finite per-view value of ``metric`` over the ok runs (views x seeds)."""
    values = []
    for run in runs:
        if not _is_ok(run):
            continue
        for view in run.get("views") or []:
            value = _number((view.get("metrics") or {}).get(metric))
            if value is not None:
                values.append(value)
    return values


def _metric_info(results: Mapping[str, Any], metric: str) -> Dict[str, Any]:
    return dict((results.get("metrics") or {}).get(metric) or {})


def _metric_label(results: Mapping[str, Any], metric: str) -> str:
    """``psnr [dB] (higher is better)``: name, unit and direction, as far as they are known."""
    info = _metric_info(results, metric)
    label = metric
    if info.get("unit"):
        label += f" [{info['unit']}]"
    if info.get("better") in ("higher", "lower"):
        label += f" ({info['better']} is better)"
    return label


def _new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas with constrained layout; nothing global is touched."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _grid(n: int, max_cols: int = 3) -> Tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return int(math.ceil(n / cols)) if n else 1, cols


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _run_jobs(jobs: Iterable[Job]) -> List[Path]:
    return [draw() for _, draw in jobs]


def _no_data(ax: Any, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.5")


# --------------------------------------------------------------------------------------------------- curves

def _curve_jobs(results: Mapping[str, Any], out_dir: Path, metrics: Sequence[str]) -> Iterator[Job]:
    for scene in _scenes(results):
        runs = [r for r in _runs(results) if str(r.get("scene")) == scene and not _is_sweep(r) and _is_ok(r)]
        if not any(r.get("curve") for r in runs):
            continue
        path = Path(out_dir) / f"curves_{_safe_name(scene)}.png"
        yield path.name, (lambda s=scene, p=path: _draw_curves(results, s, p, metrics))


def _mean_curve(runs: Sequence[Mapping[str, Any]], metric: str) -> Tuple[List[int], List[float]]:
    """Steps and the mean over seeds at each step (steps where no seed has a value are left out)."""
    by_step: Dict[int, List[float]] = defaultdict(list)
    for run in runs:
        for point in run.get("curve") or []:
            step, value = _number(point.get("step")), _number(point.get(metric))
            if step is not None and value is not None:
                by_step[int(step)].append(value)
    steps = sorted(by_step)
    return steps, [float(np.mean(by_step[s])) for s in steps]


def _draw_curves(results: Mapping[str, Any], scene: str, path: Path, metrics: Sequence[str]) -> Path:
    colours, baseline = _method_colours(results), _baseline(results)
    rows, cols = _grid(len(metrics))
    fig = _new_figure(5.0 * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        drawn = False
        for method in _methods(results, scene):
            runs = [r for r in _scene_runs(results, scene, method) if _is_ok(r)]
            steps, means = _mean_curve(runs, metric)
            if not steps:
                continue
            ax.plot(steps, means, marker="o", markersize=3, color=colours.get(method),
                    linewidth=2.2 if method == baseline else 1.4, linestyle="--" if method == baseline else "-",
                    label=f"{method} (baseline)" if method == baseline else method)
            drawn = True
        ax.set_xlabel("training step")
        ax.set_ylabel(_metric_label(results, metric))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize="small")
        else:
            _no_data(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: evaluation during training (mean over seeds)")
    return _save(fig, path)


def plot_curves(results: dict, out_dir: Path, metrics: Sequence[str] = CURVE_METRICS) -> List[Path]:
    """Per scene, ``curves_<scene>.png``: each metric against the training step for every non-sweep method.

    A method's curve is the mean over its seeds at each evaluated step. Scenes without any curve are skipped.
    """
    return _run_jobs(_curve_jobs(results, out_dir, tuple(metrics)))


# --------------------------------------------------------------------------------------------------- bars

def _reported_metrics(results: Mapping[str, Any], scene: str, metrics: Optional[Sequence[str]]) -> List[str]:
    """``metrics``, or the reported metrics that have at least one value in ``scene``."""
    if metrics is not None:
        return list(metrics)
    candidates = list(results.get("metrics") or {})
    runs = [r for r in _runs(results) if str(r.get("scene")) == scene]
    if not candidates:  # no metric table: whatever the views report
        candidates = list(dict.fromkeys(k for r in runs for v in r.get("views") or [] for k in v.get("metrics") or {}))
    return [m for m in candidates if _view_values(runs, m)]


def _bar_jobs(results: Mapping[str, Any], out_dir: Path, metrics: Optional[Sequence[str]]) -> Iterator[Job]:
    for scene in _scenes(results):
        if not _methods(results, scene):
            continue
        path = Path(out_dir) / f"bars_{_safe_name(scene)}.png"
        yield path.name, (lambda s=scene, p=path: _draw_bars(results, s, p, metrics))


def _draw_bars(results: Mapping[str, Any], scene: str, path: Path, metrics: Optional[Sequence[str]]) -> Path:
    colours, baseline = _method_colours(results), _baseline(results)
    methods = _methods(results, scene)
    names = _reported_metrics(results, scene, metrics)
    rows, cols = _grid(max(1, len(names)))
    width = max(4.0, 0.7 * len(methods) + 1.5)
    fig = _new_figure(width * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, names):
        transform = blended_transform_factory(ax.transData, ax.transAxes)
        for x, method in enumerate(methods):
            runs = _scene_runs(results, scene, method)
            values = _view_values(runs, metric)
            if not any(_is_ok(r) for r in runs):
                ax.text(x, 0.03, "failed", transform=transform, ha="center", va="bottom", rotation=90,
                        color=FAILED_COLOUR, fontweight="bold")
                continue
            if not values:
                ax.text(x, 0.03, "n/a", transform=transform, ha="center", va="bottom", color="0.5")
                continue
            mean = float(np.mean(values))
            ci = bootstrap_ci(values)
            yerr = None if ci is None else [[max(0.0, mean - ci[0])], [max(0.0, ci[1] - mean)]]
            is_base = method == baseline
            ax.bar(x, mean, yerr=yerr, capsize=4, color=colours.get(method), alpha=0.9,
                   edgecolor="black", linewidth=1.6 if is_base else 0.5, hatch="//" if is_base else None)
            n_failed = sum(not _is_ok(r) for r in runs)
            if n_failed:
                ax.text(x, 0.97, f"{n_failed} failed", transform=transform, ha="center", va="top",
                        fontsize="x-small", color=FAILED_COLOUR)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels([f"{m}\n(baseline)" if m == baseline else m for m in methods],
                           rotation=30, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylabel(_metric_label(results, metric))
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    if not names:
        _no_data(axes[0])
    for ax in axes[max(1, len(names)):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: mean over views and seeds, {CI_LEVEL:.0%} bootstrap interval")
    return _save(fig, path)


def plot_bars(results: dict, out_dir: Path, metrics: Optional[Sequence[str]] = None) -> List[Path]:
    """Per scene, ``bars_<scene>.png``: one bar chart per metric of every non-sweep method.

    A bar is the mean over all views of all ok seeds, with a percentile-bootstrap 95% interval of that mean
    (:func:`bootstrap_ci`; none for a single value). The baseline is hatched with a thick edge; a method whose
    runs all failed gets a red "failed" label instead of a bar. ``metrics`` defaults to the reported metrics
    that have a value in the scene.
    """
    return _run_jobs(_bar_jobs(results, out_dir, metrics))


# --------------------------------------------------------------------------------------------------- scatter

def _per_view(runs: Iterable[Mapping[str, Any]], metric: str) -> Dict[Tuple[Any, Any], float]:
    """(view index, seed) -> value over the ok runs."""
    table = {}
    for run in runs:
        if not _is_ok(run):
            continue
        for view in run.get("views") or []:
            value = _number((view.get("metrics") or {}).get(metric))
            if value is not None:
                table[(view.get("index", view.get("name")), run.get("seed"))] = value
    return table


def _scatter_jobs(results: Mapping[str, Any], out_dir: Path, metrics: Sequence[str]) -> Iterator[Job]:
    baseline = _baseline(results)
    for scene in _scenes(results):
        base_runs = _scene_runs(results, scene, baseline)
        others = [m for m in _methods(results, scene) if m != baseline]
        if not any(_is_ok(r) for r in base_runs) or not others:
            continue
        path = Path(out_dir) / f"scatter_{_safe_name(scene)}.png"
        yield path.name, (lambda s=scene, p=path: _draw_scatter(results, s, p, metrics))


def _draw_scatter(results: Mapping[str, Any], scene: str, path: Path, metrics: Sequence[str]) -> Path:
    colours, baseline = _method_colours(results), _baseline(results)
    rows, cols = _grid(len(metrics))
    fig = _new_figure(4.8 * cols, 4.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        base = _per_view(_scene_runs(results, scene, baseline), metric)
        better = _metric_info(results, metric).get("better")
        lows, highs = [], []
        for method in _methods(results, scene):
            if method == baseline:
                continue
            runs = _scene_runs(results, scene, method)
            if not any(_is_ok(r) for r in runs):
                ax.scatter([], [], marker="x", color=colours.get(method), label=f"{method}: failed")
                continue
            other = _per_view(runs, metric)
            keys = [k for k in other if k in base]
            if not keys:
                continue
            x = np.array([base[k] for k in keys])
            y = np.array([other[k] for k in keys])
            lows.append(min(x.min(), y.min()))
            highs.append(max(x.max(), y.max()))
            if better == "higher":
                wins = f", {int((y > x).sum())}/{len(keys)} views better"
            elif better == "lower":
                wins = f", {int((y < x).sum())}/{len(keys)} views better"
            else:
                wins = f", {int((y > x).sum())}/{len(keys)} above"
            ax.scatter(x, y, s=18, alpha=0.75, color=colours.get(method), label=f"{method}{wins}")
        if lows:
            low, high = min(lows), max(highs)
            pad = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
            low, high = low - pad, high + pad
            ax.plot([low, high], [low, high], color="0.4", linestyle="--", linewidth=1, label="y = x")
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
            ax.set_aspect("equal", adjustable="box")
            if better in ("higher", "lower"):
                ax.text(0.03 if better == "higher" else 0.97, 0.97 if better == "higher" else 0.03,
                        f"method better {'above' if better == 'higher' else 'below'} the line",
                        transform=ax.transAxes, ha="left" if better == "higher" else "right",
                        va="top" if better == "higher" else "bottom", fontsize="x-small", color="0.35",
                        bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"})
        else:
            _no_data(ax)
        ax.set_xlabel(f"{baseline} (baseline): {_metric_label(results, metric)}", fontsize="small")
        ax.set_ylabel(f"method: {metric}", fontsize="small")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="lower right" if better != "lower" else "upper left")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: per view against the baseline (paired by view and seed)")
    return _save(fig, path)


def plot_scatter(results: dict, out_dir: Path, metrics: Sequence[str] = CURVE_METRICS) -> List[Path]:
    """Per scene, ``scatter_<scene>.png``: each method's per-view value against the baseline's.

    Points pair the same test view (index) and seed; the y = x line separates better from worse, and the
    legend counts the views where the method is better. Scenes without an ok baseline run are skipped.
    """
    return _run_jobs(_scatter_jobs(results, out_dir, tuple(metrics)))


# --------------------------------------------------------------------------------------------------- sweeps

def _sweep_of(run: Mapping[str, Any]) -> Optional[Tuple[str, str, Any]]:
    sweep = run.get("sweep")
    if not sweep or len(sweep) < 3:
        return None
    return str(sweep[0]), str(sweep[1]), sweep[2]


def _sweep_jobs(results: Mapping[str, Any], out_dir: Path) -> Iterator[Job]:
    keys = dict.fromkeys((str(r.get("scene")), s[0]) for r in _runs(results) if (s := _sweep_of(r)))
    for scene, name in keys:
        path = Path(out_dir) / f"sweep_{_safe_name(scene)}_{_safe_name(name)}.png"
        yield path.name, (lambda s=scene, n=name, p=path: _draw_sweep(results, s, n, p))


def _padded(xs: Sequence[float], log: bool, pad: float = 0.08) -> Tuple[float, float]:
    """Axis limits that show every x in ``xs`` with a margin (multiplicative on a log axis)."""
    low, high = min(xs), max(xs)
    if log:
        ratio = (high / low) ** pad
        return low / ratio, high * ratio
    margin = pad * (high - low) if high > low else max(abs(low) * pad, 0.5)
    return low - margin, high + margin


def _draw_sweep(results: Mapping[str, Any], scene: str, name: str, path: Path) -> Path:
    colours = _method_colours(results)
    runs = [r for r in _runs(results) if str(r.get("scene")) == scene and (s := _sweep_of(r)) and s[0] == name]
    fields = sorted({_sweep_of(r)[1] for r in runs})
    bases = list(dict.fromkeys(_base_method(r) for r in runs))
    values = list(dict.fromkeys(_sweep_of(r)[2] for r in runs))
    numeric = all(_number(v) is not None for v in values)
    if numeric:
        values.sort(key=float)
        position = {v: float(v) for v in values}
        positive = all(float(v) > 0 for v in values)
        log_x = positive and max(map(float, values)) / min(map(float, values)) >= LOG_SPAN
    else:
        position = {v: float(i) for i, v in enumerate(values)}
        log_x = False
    all_runs = [r for r in _runs(results) if str(r.get("scene")) == scene]
    metrics = [m for m in SWEEP_METRICS
               if _view_values(runs, m) or _view_values([r for r in all_runs if str(r.get("method")) in bases], m)]
    rows, cols = _grid(max(1, len(metrics)))
    fig = _new_figure(5.0 * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        transform = blended_transform_factory(ax.transData, ax.transAxes)
        line_transform = blended_transform_factory(ax.transAxes, ax.transData)
        for base in bases:
            colour = colours.get(base)
            xs, means, stds = [], [], []
            for value in values:
                at = [r for r in runs if _base_method(r) == base and _sweep_of(r)[2] == value]
                if not at:
                    continue
                samples = _view_values(at, metric)
                if not samples:
                    if not any(_is_ok(r) for r in at):
                        ax.text(position[value], 0.03, "failed", transform=transform, ha="center", va="bottom",
                                rotation=90, color=FAILED_COLOUR, fontsize="small")
                    continue
                xs.append(position[value])
                means.append(float(np.mean(samples)))
                stds.append(float(np.std(samples)))
            if xs:
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=4, color=colour, label=f"{base}@{name}")
            unswept = _view_values(
                [r for r in all_runs if str(r.get("method")) == base and not _is_sweep(r)], metric)
            if unswept:
                level = float(np.mean(unswept))
                ax.axhline(level, color=colour, linestyle="--", linewidth=1.2, label=f"{base} (unswept)")
                ax.text(0.01, level, base, transform=line_transform, ha="left", va="bottom",
                        fontsize="x-small", color=colour)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlim(*_padded(list(position.values()), log_x))  # failed values too, so their labels show
        if not numeric:
            ax.set_xticks([position[v] for v in values])
            ax.set_xticklabels([str(v) for v in values])
        ax.set_xlabel(f"{name} ({', '.join(fields)})", fontsize="small")
        ax.set_ylabel(_metric_label(results, metric))
        ax.set_title(f"{metric}: mean ± std over views and seeds", fontsize="small")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    if not metrics:
        _no_data(axes[0])
    for ax in axes[max(1, len(metrics)):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: sweep of {name}")
    return _save(fig, path)


def plot_sweeps(results: dict, out_dir: Path) -> List[Path]:
    """Per scene and sweep name, ``sweep_<scene>_<sweepname>.png``: psnr and depth_l1 against the swept value.

    Points are mean ± std over the views of all ok seeds; the x axis is logarithmic when the values are positive
    and span at least a factor of 10. The unswept method (the run's method name before ``@``), when it ran, is a
    dashed horizontal line labelled with its name.
    """
    return _run_jobs(_sweep_jobs(results, out_dir))


# --------------------------------------------------------------------------------------------------- panels

def _plane(array: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """``[H, W, 1]`` or ``[H, W]`` as a float ``[H, W]`` array."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., 0]
    return array.astype(np.float64)


def _rgb(array: np.ndarray) -> Cell:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.clip(np.nan_to_num(array[..., :3]), 0.0, 1.0)


def _blank(shape: Tuple[int, int]) -> Cell:
    return np.full((*shape, 3), WHITE)


def _has_gt_depth(view: Mapping[str, np.ndarray]) -> bool:
    return "gt_depth" in view and "gt_state" in view


def panel_depth_range(views: Sequence[Optional[Mapping[str, np.ndarray]]]) -> Tuple[float, float]:
    """The panel's shared depth colour range: 2nd..98th percentile of the ground-truth depth on known surface
    pixels, or without ground truth, of every rendered depth where accumulation > 0.5."""
    present = [v for v in views if v is not None]
    samples = np.empty(0)
    gt = next((v for v in present if _has_gt_depth(v)), None)
    if gt is not None:
        state, depth = _plane(gt["gt_state"]), _plane(gt["gt_depth"])
        samples = depth[(state == GT_SURFACE) & np.isfinite(depth)]
    if samples.size == 0:
        parts = []
        for view in present:
            depth, acc = _plane(view["depth"]), _plane(view["accumulation"])
            parts.append(depth[(acc > ACCUMULATION_THRESHOLD) & np.isfinite(depth)])
        samples = np.concatenate(parts) if parts else np.empty(0)
    if samples.size == 0:
        return 0.0, 1.0
    low, high = (float(p) for p in np.percentile(samples, DEPTH_PERCENTILES))
    if not high > low:
        high = low + max(abs(low) * 1e-3, 1e-6)
    return low, high


def colourise_depth(depth: np.ndarray, depth_range: Tuple[float, float], background: np.ndarray) -> Cell:
    """Depth in :data:`DEPTH_CMAP` on ``depth_range`` (clipped), white where ``background``."""
    depth = _plane(depth)
    low, high = depth_range
    scaled = np.clip(np.nan_to_num((depth - low) / (high - low)), 0.0, 1.0)
    cell = mpl_colormaps[DEPTH_CMAP](scaled)[..., :3]
    cell[np.asarray(background, dtype=bool)] = WHITE
    return cell


def colourise_error(error: np.ndarray, valid: np.ndarray, saturate: float = DEPTH_ERROR_RANGE) -> Cell:
    """|error| in :data:`ERROR_CMAP` on [0, ``saturate``], black where not ``valid``."""
    valid = np.asarray(valid, dtype=bool)
    scaled = np.clip(np.nan_to_num(np.abs(_plane(error)) / saturate), 0.0, 1.0)
    cell = mpl_colormaps[ERROR_CMAP](scaled)[..., :3]
    cell[~valid] = 0.0
    return cell


def panel_grid(
    views: Sequence[Optional[Mapping[str, np.ndarray]]], depth_range: Optional[Tuple[float, float]] = None
) -> List[List[Cell]]:
    """The cells of one panel: rows RGB | depth | |depth error|, columns ground truth + one per method.

    ``views`` holds one view's arrays (as saved in ``views/<name>.npz``) per method column, ``None`` where a
    method has none (its cells are white); the ground truth comes from the first view present. Depth uses one
    colour range for the whole panel (:func:`panel_depth_range` unless given); background (``gt_state == 2``
    in the ground truth, accumulation < 0.5 in a rendering) is white and unknown ground truth light grey. The
    error is |depth - gt_depth| on known surface pixels, black elsewhere; the ground-truth error cell is blank,
    as are the error cells when there is no ground-truth depth.
    """
    present = [v for v in views if v is not None]
    if not present:
        raise ValueError("a panel needs at least one view with arrays")
    depth_range = panel_depth_range(views) if depth_range is None else depth_range
    gt = present[0]
    shape = _plane(gt["depth"]).shape
    gt_view = next((v for v in present if _has_gt_depth(v)), None)
    if gt_view is not None:
        state, gt_depth = _plane(gt_view["gt_state"]), _plane(gt_view["gt_depth"])
        surface = state == GT_SURFACE
        gt_depth_cell = colourise_depth(gt_depth, depth_range, ~surface)
        gt_depth_cell[state == GT_UNKNOWN] = UNKNOWN_GREY
    else:
        state = gt_depth = surface = None
        gt_depth_cell = _blank(shape)
    rows: List[List[Cell]] = [[_rgb(gt["gt_rgb"])], [gt_depth_cell], [_blank(shape)]]
    for view in views:
        if view is None:
            for row in rows:
                row.append(_blank(shape))
            continue
        depth, acc = _plane(view["depth"]), _plane(view["accumulation"])
        rows[0].append(_rgb(view["rgb"]))
        rows[1].append(colourise_depth(depth, depth_range, acc < ACCUMULATION_THRESHOLD))
        rows[2].append(colourise_error(depth - gt_depth, surface) if surface is not None else _blank(depth.shape))
    return rows


def _load_view(path: Path) -> Optional[Dict[str, np.ndarray]]:
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {k: (data[k].astype(np.float32) if data[k].dtype == np.float16 else data[k]) for k in data.files}


def _seed0_run(results: Mapping[str, Any], scene: str, method: str) -> Optional[Dict[str, Any]]:
    return next((r for r in _scene_runs(results, scene, method) if _is_ok(r) and r.get("seed") == 0), None)


def _panel_views(run: Mapping[str, Any], out: Path, max_views: int) -> List[str]:
    """Names of the views with arrays in ``run``'s folder, in the run's view order, at most ``max_views``."""
    folder = Path(out) / str(run.get("run_dir", "")) / "views"
    if not folder.is_dir():
        return []
    names = {p.stem for p in folder.glob("*.npz") if not p.name.startswith(".")}
    order = {str(v.get("name")): i for i, v in enumerate(run.get("views") or [])}
    natural = lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]  # noqa: E731
    return sorted(names, key=lambda n: (order.get(n, len(order)), natural(n)))[:max_views]


def _panel_jobs(results: Mapping[str, Any], out: Path, out_dir: Path, view_names: Optional[Sequence[str]],
                max_views: int) -> Iterator[Job]:
    baseline = _baseline(results)
    for scene in _scenes(results):
        columns = [(m, run) for m in _methods(results, scene) if (run := _seed0_run(results, scene, m))]
        if not columns:
            continue
        if view_names is not None:
            names = list(view_names)
        else:
            reference = _seed0_run(results, scene, baseline) or columns[0][1]
            names = _panel_views(reference, out, max_views)
        for name in names:
            path = Path(out_dir) / f"panel_{_safe_name(scene)}_{_safe_name(name)}.png"
            yield path.name, (lambda s=scene, n=name, c=columns, p=path: _draw_panel(results, out, s, n, c, p))


def _draw_panel(results: Mapping[str, Any], out: Path, scene: str, name: str,
                columns: Sequence[Tuple[str, Mapping[str, Any]]], path: Path) -> Path:
    views = [_load_view(Path(out) / str(run.get("run_dir", "")) / "views" / f"{name}.npz") for _, run in columns]
    if all(v is None for v in views):
        raise FileNotFoundError(f"no run of scene {scene!r} has arrays for view {name!r}")
    depth_range = panel_depth_range(views)
    rows = panel_grid(views, depth_range)
    has_gt = any(v is not None and _has_gt_depth(v) for v in views)
    titles = [GT_COLUMN] + [f"{m}\n(baseline)" if m == _baseline(results) else m for m, _ in columns]
    height, width = rows[0][0].shape[:2]
    n_rows, n_cols = len(rows), len(titles)
    # a fixed layout in inches (no layout engine: it is slow with this many axes)
    left, right, top, bottom, gap_w, gap_h = PANEL_LEFT_IN, PANEL_RIGHT_IN, PANEL_TOP_IN, 0.1, 0.06, 0.08
    max_width_in = MAX_PANEL_WIDTH_PX / DPI
    cell_w = min(PANEL_CELL_MAX_IN, (max_width_in - left - right - (n_cols - 1) * gap_w) / n_cols)
    cell_h = cell_w * height / width
    images_w = n_cols * cell_w + (n_cols - 1) * gap_w
    fig_w, fig_h = left + images_w + right, top + n_rows * cell_h + (n_rows - 1) * gap_h + bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    FigureCanvasAgg(fig)

    def box(x: float, y_top: float, w: float, h: float) -> List[float]:
        """[left, bottom, width, height] in figure fractions from inches measured from the top-left corner."""
        return [x / fig_w, 1.0 - (y_top + h) / fig_h, w / fig_w, h / fig_h]

    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            ax = fig.add_axes(box(left + c * (cell_w + gap_w), top + r * (cell_h + gap_h), cell_w, cell_h))
            ax.imshow(cell, interpolation="nearest", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_linewidth(0.4)
                spine.set_color("0.6")
            if r == 0:
                ax.set_title(titles[c], fontsize="small")
            if c == 0:
                ax.set_ylabel(PANEL_ROWS[r])
                if r == 2 and not has_gt:
                    ax.text(0.5, 0.5, "no ground-truth\ndepth", transform=ax.transAxes, ha="center",
                            va="center", color="0.5", fontsize="small")
            if c > 0 and r == 0 and views[c - 1] is None:
                ax.text(0.5, 0.5, "no arrays", transform=ax.transAxes, ha="center", va="center", color="0.5")
    bars = ((1, ScalarMappable(Normalize(*depth_range), mpl_colormaps[DEPTH_CMAP]), "neither",
             f"depth [{DEPTH_UNIT}]"),
            (2, ScalarMappable(Normalize(0.0, DEPTH_ERROR_RANGE), mpl_colormaps[ERROR_CMAP]), "max",
             f"|depth error| [{DEPTH_UNIT}]"))
    for r, mappable, extend, label in bars:
        cax = fig.add_axes(box(left + images_w + 0.12, top + r * (cell_h + gap_h) + 0.05 * cell_h, 0.12,
                               0.9 * cell_h))
        bar = fig.colorbar(mappable, cax=cax, extend=extend)
        bar.set_label(label, fontsize="small")
        bar.ax.tick_params(labelsize="x-small")
    fig.suptitle(f"{scene}, view {name} (seed 0)")
    return _save(fig, path)


def make_panels(results: dict, out: Path, out_dir: Path, view_names: Optional[List[str]] = None,
                max_views: int = DEFAULT_PANEL_VIEWS) -> List[Path]:
    """Per scene and view, ``panel_<scene>_<view>.png``: ground truth and every non-sweep ok method (seed 0).

    Views are those with ``views/<name>.npz`` in the baseline's seed-0 run folder under ``out`` (at most
    ``max_views``, in the run's view order) unless ``view_names`` are given. The cells are :func:`panel_grid`'s;
    colour bars give depth and |depth error| in Blender units. A panel is at most 2000 px wide.
    """
    return _run_jobs(_panel_jobs(results, out, out_dir, view_names, max_views))


# --------------------------------------------------------------------------------------------------- all

def make_all_figures(results: dict, out: Path) -> List[Path]:
    """Every figure: plots into ``out/plots/``, panels into ``out/panels/``; returns the paths written.

    Never raises because of a figure: a failing figure (or a failing family of figures) becomes a warning
    naming it and its error, and the others are still drawn.
    """
    out = Path(out)
    plots, panels = out / "plots", out / "panels"
    families: List[Tuple[str, Callable[[], Iterable[Job]]]] = [
        ("curves", lambda: _curve_jobs(results, plots, CURVE_METRICS)),
        ("bars", lambda: _bar_jobs(results, plots, None)),
        ("scatter", lambda: _scatter_jobs(results, plots, CURVE_METRICS)),
        ("sweeps", lambda: _sweep_jobs(results, plots)),
        ("panels", lambda: _panel_jobs(results, out, panels, None, DEFAULT_PANEL_VIEWS)),
    ]
    written: List[Path] = []
    for family, jobs in families:
        try:
            listed = list(jobs())
        except Exception as error:  # noqa: BLE001 - a figure must never stop the comparison
            warnings.warn(f"figures {family!r} skipped: {type(error).__name__}: {error}", stacklevel=2)
            continue
        for name, draw in listed:
            try:
                written.append(draw())
            except Exception as error:  # noqa: BLE001
                warnings.warn(f"figure {name!r} ({family}) failed: {type(error).__name__}: {error}", stacklevel=2)
    return written
