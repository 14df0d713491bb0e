"""Charts of a metric against a varied level: hyper-parameter sweeps (one method, one config field over its values)
and robustness (every method against the level of a degradation or a regime). Each public function returns the
paths it wrote; :func:`depth_strategies.viz.figures.make_all_figures` draws them with the other figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib.transforms import blended_transform_factory

from depth_strategies.study.comparisons import per_view
from depth_strategies.study.robustness import robustness_summary
from depth_strategies.viz.drawing import (
    FAILED_COLOUR,
    Job,
    base_method,
    baseline_of,
    finite_number,
    grid,
    is_ok,
    is_sweep,
    method_colours,
    metric_label,
    new_figure,
    no_data,
    padded,
    run_jobs,
    runs_of,
    safe_name,
    save_figure,
)

SWEEP_METRICS = ("psnr", "depth_l1")
"""Metrics drawn against a swept value (each only when present)."""
LOG_SPAN = 10.0
"""A sweep axis is logarithmic when all values are positive and max / min reaches this ratio."""


def view_values(runs: Iterable[Mapping[str, Any]], metric: str) -> List[float]:
    """Every per-view value of ``metric`` over the ok runs of one (scene, method): views x seeds."""
    return list(per_view(runs, metric).values())


# --------------------------------------------------------------------------------------------------- sweeps

def _sweep_of(run: Mapping[str, Any]) -> Optional[Tuple[str, str, Any]]:
    sweep = run.get("sweep")
    if not sweep or len(sweep) < 3:
        return None
    return str(sweep[0]), str(sweep[1]), sweep[2]


def sweep_jobs(results: Mapping[str, Any], out_dir: Path) -> Iterator[Job]:
    keys = dict.fromkeys((str(r.get("scene")), s[0]) for r in runs_of(results) if (s := _sweep_of(r)))
    for scene, name in keys:
        path = Path(out_dir) / f"sweep_{safe_name(scene)}_{safe_name(name)}.png"
        yield path.name, (lambda s=scene, n=name, p=path: _draw_sweep(results, s, n, p))



def _draw_sweep(results: Mapping[str, Any], scene: str, name: str, path: Path) -> Path:
    colours = method_colours(results)
    runs = [r for r in runs_of(results) if str(r.get("scene")) == scene and (s := _sweep_of(r)) and s[0] == name]
    fields = sorted({_sweep_of(r)[1] for r in runs})
    bases = list(dict.fromkeys(base_method(r) for r in runs))
    values = list(dict.fromkeys(_sweep_of(r)[2] for r in runs))
    numeric = all(finite_number(v) is not None for v in values)
    if numeric:
        values.sort(key=float)
        position = {v: float(v) for v in values}
        positive = all(float(v) > 0 for v in values)
        log_x = positive and max(map(float, values)) / min(map(float, values)) >= LOG_SPAN
    else:
        position = {v: float(i) for i, v in enumerate(values)}
        log_x = False
    all_runs = [r for r in runs_of(results) if str(r.get("scene")) == scene]
    metrics = [m for m in SWEEP_METRICS
               if view_values(runs, m) or view_values([r for r in all_runs if str(r.get("method")) in bases], m)]
    rows, cols = grid(max(1, len(metrics)))
    fig = new_figure(5.0 * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        transform = blended_transform_factory(ax.transData, ax.transAxes)
        line_transform = blended_transform_factory(ax.transAxes, ax.transData)
        for base in bases:
            colour = colours.get(base)
            xs, means, stds = [], [], []
            for value in values:
                at = [r for r in runs if base_method(r) == base and _sweep_of(r)[2] == value]
                if not at:
                    continue
                samples = view_values(at, metric)
                if not samples:
                    if not any(is_ok(r) for r in at):
                        ax.text(position[value], 0.03, "failed", transform=transform, ha="center", va="bottom",
                                rotation=90, color=FAILED_COLOUR, fontsize="small")
                    continue
                xs.append(position[value])
                means.append(float(np.mean(samples)))
                stds.append(float(np.std(samples)))
            if xs:
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=4, color=colour, label=f"{base}@{name}")
            unswept = view_values(
                [r for r in all_runs if str(r.get("method")) == base and not is_sweep(r)], metric)
            if unswept:
                level = float(np.mean(unswept))
                ax.axhline(level, color=colour, linestyle="--", linewidth=1.2, label=f"{base} (unswept)")
                ax.text(0.01, level, base, transform=line_transform, ha="left", va="bottom",
                        fontsize="x-small", color=colour)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlim(*padded(list(position.values()), log_x))  # failed values too, so their labels show
        if not numeric:
            ax.set_xticks([position[v] for v in values])
            ax.set_xticklabels([str(v) for v in values])
        ax.set_xlabel(f"{name} ({', '.join(fields)})", fontsize="small")
        ax.set_ylabel(metric_label(results, metric))
        ax.set_title(f"{metric}: mean ± std over views and seeds", fontsize="small")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    if not metrics:
        no_data(axes[0])
    for ax in axes[max(1, len(metrics)):]:
        ax.set_visible(False)
    fig.suptitle(f"{scene}: sweep of {name}")
    return save_figure(fig, path)


def plot_sweeps(results: dict, out_dir: Path) -> List[Path]:
    """Per scene and sweep name, ``sweep_<scene>_<sweepname>.png``: psnr and depth_l1 against the swept value.

    Points are mean ± std over the views of all ok seeds; the x axis is logarithmic when the values are positive
    and span at least a factor of 10. The unswept method (the run's method name before ``@``), when it ran, is a
    dashed horizontal line labelled with its name.
    """
    return run_jobs(sweep_jobs(results, out_dir))


# --------------------------------------------------------------------------------------------------- robustness
def robustness_jobs(results: Mapping[str, Any], out_dir: Path) -> Iterator[Job]:
    summary = robustness_summary(dict(results))
    for scene, kind in dict.fromkeys((e["scene"], e["kind"]) for e in summary):
        entries = [e for e in summary if e["scene"] == scene and e["kind"] == kind]
        path = Path(out_dir) / f"robustness_{safe_name(scene)}_{safe_name(kind)}.png"
        yield path.name, (lambda es=entries, p=path: _draw_robustness(results, es, p))


def _draw_robustness(results: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], path: Path) -> Path:
    colours = method_colours(results)
    baseline = baseline_of(results)
    rows, cols = grid(len(entries))
    fig = new_figure(5.0 * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, entry in zip(axes, entries):
        positions = list(range(len(entry["levels"])))
        for method, cells in entry["methods"].items():
            xs = [x for x, c in zip(positions, cells) if c["mean"] is not None]
            ys = [c["mean"] for c in cells if c["mean"] is not None]
            if not xs:
                continue
            style = {"linestyle": "--", "linewidth": 2.0} if method == baseline else {"linewidth": 1.4}
            ax.plot(xs, ys, color=colours.get(method), label=method, **style)
            for x, c in zip(positions, cells):
                if c["mean"] is None:
                    continue
                filled = c["significant"] or method == baseline
                ax.plot(x, c["mean"], marker="o", color=colours.get(method),
                        markerfacecolor=colours.get(method) if filled else "white")
        ax.set_xticks(positions)
        ax.set_xticklabels([f"{lvl['condition']}\n{lvl['level']:g}" for lvl in entry["levels"]], fontsize="x-small")
        ax.set_ylabel(metric_label(results, entry["metric"]))
        ax.set_title(f"{entry['metric']}: mean over views and seeds", fontsize="small")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax in axes[len(entries):]:
        ax.set_visible(False)
    first = entries[0]
    fig.suptitle(f"{first['scene']}: {first['kind']} (filled marker: differs from {baseline}, Holm p < 0.05)")
    return save_figure(fig, path)


def plot_robustness(results: dict, out_dir: Path) -> List[Path]:
    """Per scene and kind of degradation, ``robustness_<scene>_<kind>.png``: each primary metric against the level
    (:func:`depth_strategies.study.robustness.robustness_summary`), one line per method, the baseline dashed; a filled
    marker where the difference to the baseline under that condition is significant."""
    return run_jobs(robustness_jobs(results, out_dir))


