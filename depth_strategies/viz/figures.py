"""Charts from ``results.json``: training curves, bar charts with bootstrap intervals and per-view scatter against
the baseline; :func:`make_all_figures` draws them, the figures against a varied level
(:mod:`depth_strategies.viz.level_figures`: sweeps, robustness) and the panels (:mod:`depth_strategies.viz.panels`).

Each public function returns the paths it wrote; :func:`make_all_figures` turns a failing figure into a warning.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib.transforms import blended_transform_factory

from depth_strategies.study.comparisons import condition_label, per_view
from depth_strategies.study.robustness import is_regime_axis
from depth_strategies.study.stats import CONFIDENCE, bootstrap_mean_ci
from depth_strategies.viz.drawing import (
    FAILED_COLOUR,
    Job,
    baseline_of,
    finite_number,
    grid,
    is_ok,
    is_sweep,
    method_colours,
    methods_of,
    metric_info,
    metric_label,
    new_figure,
    no_data,
    padded,
    run_jobs,
    runs_of,
    safe_name,
    save_figure,
    scene_runs,
    scenes_of,
)
from depth_strategies.viz.level_figures import robustness_jobs, sweep_jobs, view_values
from depth_strategies.viz.panels import DEFAULT_PANEL_VIEWS, panel_jobs

CURVE_METRICS = ("psnr", "depth_l1")
"""Metrics of the training curves, the scatter plots and the sweeps by default."""


# --------------------------------------------------------------------------------------------------- curves

def _curve_jobs(results: Mapping[str, Any], out_dir: Path, metrics: Sequence[str]) -> Iterator[Job]:
    for scene in scenes_of(results):
        runs = [r for r in runs_of(results) if str(r.get("scene")) == scene and not is_sweep(r) and is_ok(r)]
        if not any(r.get("curve") for r in runs):
            continue
        path = Path(out_dir) / f"curves_{safe_name(scene)}.png"
        yield path.name, (lambda s=scene, p=path: _draw_curves(results, s, p, metrics))


def _mean_curve(runs: Sequence[Mapping[str, Any]], metric: str) -> Tuple[List[int], List[float]]:
    """Steps and the mean over seeds at each step (steps where no seed has a value are left out)."""
    by_step: Dict[int, List[float]] = defaultdict(list)
    for run in runs:
        for point in run.get("curve") or []:
            step, value = finite_number(point.get("step")), finite_number(point.get(metric))
            if step is not None and value is not None:
                by_step[int(step)].append(value)
    steps = sorted(by_step)
    return steps, [float(np.mean(by_step[s])) for s in steps]


def _draw_curves(results: Mapping[str, Any], scene: str, path: Path, metrics: Sequence[str]) -> Path:
    colours, baseline = method_colours(results), baseline_of(results)
    rows, cols = grid(len(metrics))
    fig = new_figure(5.0 * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        drawn = False
        for method in methods_of(results, scene):
            runs = [r for r in scene_runs(results, scene, method) if is_ok(r)]
            steps, means = _mean_curve(runs, metric)
            if not steps:
                continue
            ax.plot(steps, means, marker="o", markersize=3, color=colours.get(method),
                    linewidth=2.2 if method == baseline else 1.4, linestyle="--" if method == baseline else "-",
                    label=f"{method} (baseline)" if method == baseline else method)
            drawn = True
        ax.set_xlabel("training step")
        ax.set_ylabel(metric_label(results, metric))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize="small")
        else:
            no_data(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: evaluation during training (mean over seeds)")
    return save_figure(fig, path)


def plot_curves(results: dict, out_dir: Path, metrics: Sequence[str] = CURVE_METRICS) -> List[Path]:
    """Per scene, ``curves_<scene>.png``: each metric against the training step for every non-sweep method.

    A method's curve is the mean over its seeds at each evaluated step. Scenes without any curve are skipped.
    """
    return run_jobs(_curve_jobs(results, out_dir, tuple(metrics)))


def _regime_curve_jobs(results: Mapping[str, Any], out_dir: Path, metrics: Sequence[str]) -> Iterator[Job]:
    conditions = list((results.get("protocol") or {}).get("conditions") or [])
    if not conditions or not is_regime_axis(conditions):
        return
    for scene in dict.fromkeys(str(r.get("base_scene")) for r in runs_of(results) if r.get("base_scene")):
        groups = [(c["name"], condition_label(scene, c["name"])) for c in conditions]
        if not any(r.get("curve") for r in runs_of(results) if str(r.get("scene")) in {g for _, g in groups}):
            continue
        path = Path(out_dir) / f"curves_by_regime_{safe_name(scene)}.png"
        yield path.name, (lambda s=scene, g=groups, p=path: _draw_regime_curves(results, s, g, p, metrics))


def _draw_regime_curves(results: Mapping[str, Any], scene: str, groups: Sequence[Tuple[str, str]], path: Path,
                        metrics: Sequence[str]) -> Path:
    colours, baseline = method_colours(results), baseline_of(results)
    fig = new_figure(3.2 * len(groups), 2.9 * len(metrics))
    axes = fig.subplots(len(metrics), len(groups), squeeze=False, sharey="row")
    for row, metric in enumerate(metrics):
        later: List[float] = []  # every point after each curve's first evaluation: the row's y range
        for col, (name, group) in enumerate(groups):
            ax, drawn = axes[row][col], False
            for method in methods_of(results, group):
                steps, means = _mean_curve([r for r in scene_runs(results, group, method) if is_ok(r)], metric)
                if not steps:
                    continue
                is_baseline = method == baseline
                ax.plot(steps, means, marker="o", markersize=2.5, color=colours.get(method),
                        linewidth=2.0 if is_baseline else 1.3, linestyle="--" if is_baseline else "-",
                        label=f"{method} (baseline)" if is_baseline else method)
                if is_baseline:  # the budget line: what the others must reach (the Budget table's target)
                    ax.axhline(means[-1], color=colours.get(method), linewidth=0.8, linestyle=":")
                later += means[1:]
                drawn = True
            if not drawn:
                no_data(ax)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(name, fontsize="small")
            if row == len(metrics) - 1:
                ax.set_xlabel("training step", fontsize="small")
            if col == 0:
                ax.set_ylabel(metric_label(results, metric), fontsize="small")
            if row == 0 and col == 0 and drawn:
                ax.legend(fontsize="x-small")
        if later:  # the untrained first evaluation would squeeze the differences that matter into a few pixels
            axes[row][0].set_ylim(*padded(later, log=False))
    fig.suptitle(f"{scene}: evaluation during training per regime (mean over seeds; dotted: the baseline's final "
                 "value)", fontsize="small")
    return save_figure(fig, path)


def plot_regime_curves(results: dict, out_dir: Path, metrics: Sequence[str] = CURVE_METRICS) -> List[Path]:
    """For a protocol whose conditions are training regimes (:func:`depth_strategies.study.robustness.is_regime_axis`),
    per base scene ``curves_by_regime_<scene>.png``: the training curves of every regime side by side (a column per
    condition, in the protocol's order; a row per metric, one y axis per row), with the baseline's final value
    dotted, so the steps each method needs to reach it can be compared across regimes. Nothing for other protocols.
    """
    return run_jobs(_regime_curve_jobs(results, out_dir, tuple(metrics)))


# --------------------------------------------------------------------------------------------------- bars

def _reported_metrics(results: Mapping[str, Any], scene: str, metrics: Optional[Sequence[str]]) -> List[str]:
    """``metrics``, or the reported metrics that have at least one value in ``scene``."""
    if metrics is not None:
        return list(metrics)
    candidates = list(results.get("metrics") or {})
    runs = [r for r in runs_of(results) if str(r.get("scene")) == scene]
    if not candidates:  # no metric table: whatever the views report
        candidates = list(dict.fromkeys(k for r in runs for v in r.get("views") or [] for k in v.get("metrics") or {}))
    return [m for m in candidates if view_values(runs, m)]


def _bar_jobs(results: Mapping[str, Any], out_dir: Path, metrics: Optional[Sequence[str]]) -> Iterator[Job]:
    for scene in scenes_of(results):
        if not methods_of(results, scene):
            continue
        path = Path(out_dir) / f"bars_{safe_name(scene)}.png"
        yield path.name, (lambda s=scene, p=path: _draw_bars(results, s, p, metrics))


def _draw_bars(results: Mapping[str, Any], scene: str, path: Path, metrics: Optional[Sequence[str]]) -> Path:
    colours, baseline = method_colours(results), baseline_of(results)
    methods = methods_of(results, scene)
    names = _reported_metrics(results, scene, metrics)
    rows, cols = grid(max(1, len(names)))
    width = max(4.0, 0.7 * len(methods) + 1.5)
    fig = new_figure(width * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, names):
        transform = blended_transform_factory(ax.transData, ax.transAxes)
        for x, method in enumerate(methods):
            runs = scene_runs(results, scene, method)
            values = view_values(runs, metric)
            if not any(is_ok(r) for r in runs):
                ax.text(x, 0.03, "failed", transform=transform, ha="center", va="bottom", rotation=90,
                        color=FAILED_COLOUR, fontweight="bold")
                continue
            if not values:
                ax.text(x, 0.03, "n/a", transform=transform, ha="center", va="bottom", color="0.5")
                continue
            mean = float(np.mean(values))
            low, high = bootstrap_mean_ci(values)
            yerr = None if math.isnan(low) else [[max(0.0, mean - low)], [max(0.0, high - mean)]]
            is_base = method == baseline
            ax.bar(x, mean, yerr=yerr, capsize=4, color=colours.get(method), alpha=0.9,
                   edgecolor="black", linewidth=1.6 if is_base else 0.5, hatch="//" if is_base else None)
            n_failed = sum(not is_ok(r) for r in runs)
            if n_failed:
                ax.text(x, 0.97, f"{n_failed} failed", transform=transform, ha="center", va="top",
                        fontsize="x-small", color=FAILED_COLOUR)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels([f"{m}\n(baseline)" if m == baseline else m for m in methods],
                           rotation=30, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylabel(metric_label(results, metric))
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    if not names:
        no_data(axes[0])
    for ax in axes[max(1, len(names)):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: mean over views and seeds, {CONFIDENCE:.0%} bootstrap interval")
    return save_figure(fig, path)


def plot_bars(results: dict, out_dir: Path, metrics: Optional[Sequence[str]] = None) -> List[Path]:
    """Per scene, ``bars_<scene>.png``: one bar chart per metric of every non-sweep method.

    A bar is the mean over all views of all ok seeds, with a percentile-bootstrap 95% interval of that mean
    (:func:`depth_strategies.study.stats.bootstrap_mean_ci`; none for a single value). The baseline is hatched
    with a thick edge; a method whose runs all failed gets a red "failed" label instead of a bar. ``metrics``
    defaults to the reported metrics
    that have a value in the scene.
    """
    return run_jobs(_bar_jobs(results, out_dir, metrics))


# --------------------------------------------------------------------------------------------------- scatter

def _scatter_jobs(results: Mapping[str, Any], out_dir: Path, metrics: Sequence[str]) -> Iterator[Job]:
    baseline = baseline_of(results)
    for scene in scenes_of(results):
        base_runs = scene_runs(results, scene, baseline)
        others = [m for m in methods_of(results, scene) if m != baseline]
        if not any(is_ok(r) for r in base_runs) or not others:
            continue
        path = Path(out_dir) / f"scatter_{safe_name(scene)}.png"
        yield path.name, (lambda s=scene, p=path: _draw_scatter(results, s, p, metrics))


def _draw_scatter(results: Mapping[str, Any], scene: str, path: Path, metrics: Sequence[str]) -> Path:
    colours, baseline = method_colours(results), baseline_of(results)
    rows, cols = grid(len(metrics))
    fig = new_figure(4.8 * cols, 4.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        base = per_view(scene_runs(results, scene, baseline), metric)
        better = metric_info(results, metric).get("better")
        lows, highs = [], []
        for method in methods_of(results, scene):
            if method == baseline:
                continue
            runs = scene_runs(results, scene, method)
            if not any(is_ok(r) for r in runs):
                ax.scatter([], [], marker="x", color=colours.get(method), label=f"{method}: failed")
                continue
            other = per_view(runs, metric)
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
            no_data(ax)
        ax.set_xlabel(f"{baseline} (baseline): {metric_label(results, metric)}", fontsize="small")
        ax.set_ylabel(f"method: {metric}", fontsize="small")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="lower right" if better != "lower" else "upper left")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: per view against the baseline (paired by view and seed)")
    return save_figure(fig, path)


def plot_scatter(results: dict, out_dir: Path, metrics: Sequence[str] = CURVE_METRICS) -> List[Path]:
    """Per scene, ``scatter_<scene>.png``: each method's per-view value against the baseline's.

    Points pair the same test view (index) and seed; the y = x line separates better from worse, and the
    legend counts the views where the method is better. Scenes without an ok baseline run are skipped.
    """
    return run_jobs(_scatter_jobs(results, out_dir, tuple(metrics)))


# --------------------------------------------------------------------------------------------------- all

def panel_count(results: Mapping[str, Any]) -> int:
    """How many views the panels show: as many as the protocol kept renders of (its ``panel_views``: a count or a
    list of test-view indices), :data:`DEFAULT_PANEL_VIEWS` for results without it."""
    kept = (results.get("protocol") or {}).get("panel_views", DEFAULT_PANEL_VIEWS)
    return len(kept) if isinstance(kept, (list, tuple)) else int(kept)


def make_all_figures(results: dict, out: Path) -> List[Path]:
    """Every figure: plots into ``out/plots/``, panels into ``out/panels/``; returns the paths written.

    Never raises because of a figure: a failing figure (or a failing family of figures) becomes a warning
    naming it and its error, and the others are still drawn.
    """
    out = Path(out)
    plots, panels = out / "plots", out / "panels"
    families: List[Tuple[str, Callable[[], Iterable[Job]]]] = [
        ("curves", lambda: _curve_jobs(results, plots, CURVE_METRICS)),
        ("regime curves", lambda: _regime_curve_jobs(results, plots, CURVE_METRICS)),
        ("bars", lambda: _bar_jobs(results, plots, None)),
        ("scatter", lambda: _scatter_jobs(results, plots, CURVE_METRICS)),
        ("sweeps", lambda: sweep_jobs(results, plots)),
        ("robustness", lambda: robustness_jobs(results, plots)),
        ("panels", lambda: panel_jobs(results, out, panels, None, panel_count(results))),
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
