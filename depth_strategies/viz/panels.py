"""Comparison panels, one per scene and test view: ground truth | each method; rows RGB, depth on one shared
colour range, and depth error (:mod:`depth_strategies.core.colour`), from the arrays each run saved in
``views/<name>.npz``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps as mpl_colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from depth_strategies.core.colour import (
    BACKGROUND,
    DEPTH_CMAP,
    DEPTH_ERROR_RANGE,
    ERROR_CMAP,
    FOREGROUND_ACCUMULATION,
    colourise_depth,
    colourise_error,
    plane,
)
from depth_strategies.core.colour import depth_range as shared_depth_range
from depth_strategies.viz import drawing
from depth_strategies.viz.drawing import (
    Job,
    baseline_of,
    is_ok,
    methods_of,
    run_jobs,
    safe_name,
    save_figure,
    scene_runs,
    scenes_of,
)

GT_UNKNOWN, GT_SURFACE, GT_EMPTY = 0, 1, 2
"""Values of ``gt_state``: unknown depth, a surface at known depth, empty background."""
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


def _rgb(array: np.ndarray) -> Cell:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.clip(np.nan_to_num(array[..., :3]), 0.0, 1.0)


def _blank(shape: Tuple[int, int]) -> Cell:
    return np.full((*shape, 3), BACKGROUND)


def _ground_truth(views: Sequence[Optional[Mapping[str, np.ndarray]]]) -> Optional[Mapping[str, np.ndarray]]:
    """The first view that carries ground-truth depth (every run of a scene saves the same ground truth)."""
    return next((v for v in views if v is not None and "gt_depth" in v and "gt_state" in v), None)


def panel_depth_range(views: Sequence[Optional[Mapping[str, np.ndarray]]]) -> Tuple[float, float]:
    """The panel's shared depth colour range: :func:`depth_strategies.core.colour.depth_range` of the ground
    truth (surface pixels), else of every column's rendering."""
    gt = _ground_truth(views)
    return shared_depth_range(
        None if gt is None else gt["gt_depth"],
        None if gt is None else plane(gt["gt_state"]) == GT_SURFACE,
        [(v["depth"], v["accumulation"]) for v in views if v is not None],
    )


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
    shape = plane(gt["depth"]).shape
    gt_view = _ground_truth(views)
    if gt_view is not None:
        state, gt_depth = plane(gt_view["gt_state"]), plane(gt_view["gt_depth"])
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
        depth, acc = plane(view["depth"]), plane(view["accumulation"])
        rows[0].append(_rgb(view["rgb"]))
        rows[1].append(colourise_depth(depth, depth_range, acc < FOREGROUND_ACCUMULATION))
        rows[2].append(colourise_error(depth - gt_depth, surface) if surface is not None else _blank(depth.shape))
    return rows


def _load_view(path: Path) -> Optional[Dict[str, np.ndarray]]:
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {k: (data[k].astype(np.float32) if data[k].dtype == np.float16 else data[k]) for k in data.files}


def _seed0_run(results: Mapping[str, Any], scene: str, method: str) -> Optional[Dict[str, Any]]:
    return next((r for r in scene_runs(results, scene, method) if is_ok(r) and r.get("seed") == 0), None)


def _panel_views(run: Mapping[str, Any], out: Path, max_views: int) -> List[str]:
    """Names of the views with arrays in ``run``'s folder, in the run's view order, at most ``max_views``."""
    folder = Path(out) / str(run.get("run_dir", "")) / "views"
    if not folder.is_dir():
        return []
    names = {p.stem for p in folder.glob("*.npz") if not p.name.startswith(".")}
    order = {str(v.get("name")): i for i, v in enumerate(run.get("views") or [])}
    natural = lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]  # noqa: E731
    return sorted(names, key=lambda n: (order.get(n, len(order)), natural(n)))[:max_views]


def panel_jobs(results: Mapping[str, Any], out: Path, out_dir: Path, view_names: Optional[Sequence[str]],
                max_views: int) -> Iterator[Job]:
    baseline = baseline_of(results)
    for scene in scenes_of(results):
        columns = [(m, run) for m in methods_of(results, scene) if (run := _seed0_run(results, scene, m))]
        if not columns:
            continue
        if view_names is not None:
            names = list(view_names)
        else:
            reference = _seed0_run(results, scene, baseline) or columns[0][1]
            names = _panel_views(reference, out, max_views)
        for name in names:
            path = Path(out_dir) / f"panel_{safe_name(scene)}_{safe_name(name)}.png"
            yield path.name, (lambda s=scene, n=name, c=columns, p=path: _draw_panel(results, out, s, n, c, p))


def _draw_panel(results: Mapping[str, Any], out: Path, scene: str, name: str,
                columns: Sequence[Tuple[str, Mapping[str, Any]]], path: Path) -> Path:
    views = [_load_view(Path(out) / str(run.get("run_dir", "")) / "views" / f"{name}.npz") for _, run in columns]
    if all(v is None for v in views):
        raise FileNotFoundError(f"no run of scene {scene!r} has arrays for view {name!r}")
    depth_range = panel_depth_range(views)
    rows = panel_grid(views, depth_range)
    has_gt = _ground_truth(views) is not None
    titles = [GT_COLUMN] + [f"{m}\n(baseline)" if m == baseline_of(results) else m for m, _ in columns]
    height, width = rows[0][0].shape[:2]
    n_rows, n_cols = len(rows), len(titles)
    # a fixed layout in inches (no layout engine: it is slow with this many axes)
    left, right, top, bottom, gap_w, gap_h = PANEL_LEFT_IN, PANEL_RIGHT_IN, PANEL_TOP_IN, 0.1, 0.06, 0.08
    max_width_in = MAX_PANEL_WIDTH_PX / drawing.DPI
    cell_w = min(PANEL_CELL_MAX_IN, (max_width_in - left - right - (n_cols - 1) * gap_w) / n_cols)
    cell_h = cell_w * height / width
    images_w = n_cols * cell_w + (n_cols - 1) * gap_w
    fig_w, fig_h = left + images_w + right, top + n_rows * cell_h + (n_rows - 1) * gap_h + bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=drawing.DPI)
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
    return save_figure(fig, path)


def make_panels(results: dict, out: Path, out_dir: Path, view_names: Optional[List[str]] = None,
                max_views: int = DEFAULT_PANEL_VIEWS) -> List[Path]:
    """Per scene and view, ``panel_<scene>_<view>.png``: ground truth and every non-sweep ok method (seed 0).

    Views are those with ``views/<name>.npz`` in the baseline's seed-0 run folder under ``out`` (at most
    ``max_views``, in the run's view order) unless ``view_names`` are given. The cells are :func:`panel_grid`'s;
    colour bars give depth and |depth error| in Blender units. A panel is at most 2000 px wide.
    """
    return run_jobs(panel_jobs(results, out, out_dir, view_names, max_views))
