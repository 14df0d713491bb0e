"""Shared by the charts (:mod:`depth_strategies.viz.figures`) and the panels (:mod:`depth_strategies.viz.panels`):
reading runs out of ``results.json`` defensively, a fixed colour per method, and drawing on explicit
:class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot, so no global state is shared between
calls), written atomically as PNG.

Only numpy and matplotlib are needed here (no torch), so figures can be remade on any machine from an output folder.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps as mpl_colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from depth_strategies.core.atomic import atomic_path

DPI = 150
"""Resolution of every written PNG."""
DEFAULT_BASELINE = "depth-baseline"
"""Baseline method when the protocol does not name one."""
SWEEP_SEPARATOR = "@"
"""A swept method's name is ``<base method>@<sweep name>=<value>``."""
BASELINE_COLOUR = "0.25"
"""Colour of the baseline in every figure (dark grey)."""
METHOD_COLOURS = "tab10"
"""Qualitative colour map of the other methods, assigned in order of first appearance."""
FAILED_COLOUR = "tab:red"
"""Colour of the "failed" labels."""

Job = Tuple[str, Callable[[], Path]]
"""A figure to draw: its file name and the function that writes it."""


def finite_number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None (missing, NaN, infinite, not a number, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def safe_name(text: Any) -> str:
    """``text`` usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_") or "unnamed"


def baseline_of(results: Mapping[str, Any]) -> str:
    return str((results.get("protocol") or {}).get("baseline") or DEFAULT_BASELINE)


def runs_of(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [r for r in (results.get("runs") or []) if isinstance(r, dict)]


def is_sweep(run: Mapping[str, Any]) -> bool:
    return bool(run.get("sweep")) or SWEEP_SEPARATOR in str(run.get("method", ""))


def is_ok(run: Mapping[str, Any]) -> bool:
    return run.get("status") == "ok"


def scenes_of(results: Mapping[str, Any]) -> List[str]:
    """Scenes in order of first appearance."""
    return list(dict.fromkeys(str(r.get("scene")) for r in runs_of(results)))


def methods_of(results: Mapping[str, Any], scene: Optional[str] = None) -> List[str]:
    """Non-sweep methods (of ``scene``, or of all scenes), the baseline first, then in order of appearance."""
    names = [str(r.get("method")) for r in runs_of(results)
             if not is_sweep(r) and (scene is None or str(r.get("scene")) == scene)]
    names = list(dict.fromkeys(names))
    baseline = baseline_of(results)
    return ([baseline] if baseline in names else []) + [n for n in names if n != baseline]


def method_colours(results: Mapping[str, Any]) -> Dict[str, Any]:
    """A fixed colour per non-sweep method across all figures of a results file."""
    cmap = mpl_colormaps[METHOD_COLOURS]
    baseline = baseline_of(results)
    colours: Dict[str, Any] = {baseline: BASELINE_COLOUR}
    others = [m for m in methods_of(results) if m != baseline]
    # sweeps of methods that did not run unswept still need a colour
    others += [m for m in dict.fromkeys(base_method(r) for r in runs_of(results) if is_sweep(r))
               if m not in others and m != baseline]
    for i, method in enumerate(others):
        colours[method] = cmap(i % cmap.N)
    return colours


def base_method(run: Mapping[str, Any]) -> str:
    return str(run.get("method", "")).split(SWEEP_SEPARATOR)[0]


def scene_runs(results: Mapping[str, Any], scene: str, method: str) -> List[Dict[str, Any]]:
    return [r for r in runs_of(results) if str(r.get("scene")) == scene and str(r.get("method")) == method]


def metric_info(results: Mapping[str, Any], metric: str) -> Dict[str, Any]:
    return dict((results.get("metrics") or {}).get(metric) or {})


def metric_label(results: Mapping[str, Any], metric: str) -> str:
    """``psnr [dB] (higher is better)``: name, unit and direction, as far as they are known."""
    info = metric_info(results, metric)
    label = metric
    if info.get("unit"):
        label += f" [{info['unit']}]"
    if info.get("better") in ("higher", "lower"):
        label += f" ({info['better']} is better)"
    return label


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas with constrained layout; nothing global is touched."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def grid(n: int, max_cols: int = 3) -> Tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return int(math.ceil(n / cols)) if n else 1, cols


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically (:func:`depth_strategies.core.atomic.atomic_path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return path


def run_jobs(jobs: Iterable[Job]) -> List[Path]:
    return [draw() for _, draw in jobs]


def no_data(ax: Any, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.5")


def padded(xs: Sequence[float], log: bool, pad: float = 0.08) -> Tuple[float, float]:
    """Axis limits that show every x in ``xs`` with a margin (multiplicative on a log axis)."""
    low, high = min(xs), max(xs)
    if log:
        ratio = (high / low) ** pad
        return low / ratio, high * ratio
    margin = pad * (high - low) if high > low else max(abs(low) * pad, 0.5)
    return low - margin, high + margin
