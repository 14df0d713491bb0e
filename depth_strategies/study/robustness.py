"""Robustness and regimes: each method under each level of a kind of depth degradation (or of a training regime),
its difference to the baseline under the same condition, and where it stops helping; as data
(:func:`robustness_summary`, the one source of the robustness tables and plots) and as markdown tables.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from depth_strategies.study.comparisons import (
    SIGNIFICANT,
    better,
    compare_to_baseline,
    condition_label,
    main_runs,
    primary_metrics,
    significant,
    summarize,
)
from depth_strategies.study.tables import ARROW, fmt


def robustness_summary(results: Dict[str, Any],
                       comparisons: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """Per scene, kind of degradation and primary metric: every method's mean at each level of that kind (the ``clean``
    conditions first), its difference to the baseline under the same condition and whether that is significant
    (run-level test, Holm over the declared family of every condition together; ``comparisons``: those of
    :func:`compare_to_baseline`, computed when not given), and the level at which it *stops helping*: the first
    level, in increasing order, whose mean difference is not in the metric's better direction (the method falls to or
    below the RGB-only baseline); None when it helps at every level. Also per method: ``kept_at_mildest``, the share
    of its clean-depth difference that remains at the mildest degraded level (difference there / difference on clean
    depth; None without a clean gain to keep), and ``worse_at``, the levels where it is significantly *worse* than
    the baseline. The one source of the robustness tables and plots."""
    protocol = results["protocol"]
    conditions = list(protocol.get("conditions") or [])
    if not conditions:
        return []
    baseline = protocol["baseline"]
    rows = {(r["scene"], r["method"]): r for r in summarize(results)}
    comparisons = {(c["scene"], c["method"], c["metric"]): c
                   for c in (compare_to_baseline(results) if comparisons is None else comparisons)}
    clean = [c for c in conditions if c["kind"] == "clean"]
    kinds = [k for k in dict.fromkeys(c["kind"] for c in conditions) if k != "clean"] or ["clean"]
    scenes = list(dict.fromkeys(r.get("base_scene") for r in main_runs(results) if r.get("base_scene")))
    methods = list(dict.fromkeys(r["method"] for r in main_runs(results)))
    summary = []
    for scene in scenes:
        for kind in kinds:
            levels = sorted(clean + [c for c in conditions if c["kind"] == kind and kind != "clean"],
                            key=lambda c: (float(c["level"]), c["kind"] != "clean"))
            for metric in primary_metrics(protocol):
                direction = better(results, metric)
                entry: Dict[str, Any] = {
                    "scene": scene, "kind": kind, "metric": metric, "better": direction,
                    # a kind of depth degradation (the robustness columns apply) or of training regime (they do not)
                    "axis": "regime" if is_regime_axis(levels) else "depth",
                    "levels": [{"condition": c["name"], "level": c["level"], "reference": c["kind"] == "clean"}
                               for c in levels],
                    "methods": {}, "stops_helping": {}, "kept_at_mildest": {}, "worse_at": {},
                }
                for method in methods:
                    cells = []
                    for c in levels:
                        group = condition_label(scene, c["name"])
                        row = rows.get((group, method))
                        mean = row[metric]["mean"] if row and row["status"] == "ok" else None
                        comp = comparisons.get((group, method, metric), {})
                        cells.append({
                            "mean": mean,
                            "difference": None if method == baseline else _finite(comp.get("mean_difference")),
                            "significant": significant(comp),
                        })
                    entry["methods"][method] = cells
                    if method != baseline:
                        # a level without a paired seed (e.g. every pair across platforms) says nothing either way
                        entry["stops_helping"][method] = next(
                            (lvl["level"] for lvl, cell in zip(entry["levels"], cells)
                             if cell["difference"] is not None and not _helps(cell["difference"], direction)), None)
                        entry.setdefault("unpaired_at", {})[method] = [
                            lvl["level"] for lvl, cell in zip(entry["levels"], cells)
                            if cell["difference"] is None and cell["mean"] is not None]
                        entry["worse_at"][method] = [
                            lvl["level"] for lvl, cell in zip(entry["levels"], cells)
                            if cell["significant"] and cell["difference"] is not None
                            and not _helps(cell["difference"], direction)]
                        entry["kept_at_mildest"][method] = _kept(cells, levels, direction)
                summary.append(entry)
    return summary


def is_regime_axis(conditions: Sequence[Mapping[str, Any]]) -> bool:
    """Whether these protocol conditions vary how the model trains (overrides or iterations, e.g. nerfacto's sizes
    one factor at a time) rather than the training depth (degradations): a regime study, not a robustness one."""
    return not any(c.get("degradations") for c in conditions) and any(
        c.get("overrides") or c.get("iterations") for c in conditions)


def _finite(value: Optional[float]) -> Optional[float]:
    """None for a missing or NaN difference (no seed paired, e.g. every pair across platforms)."""
    return value if value is not None and math.isfinite(value) else None


def _helps(difference: float, direction: str) -> bool:
    return difference > 0 if direction == "higher" else difference < 0


def _kept(cells: List[Dict[str, Any]], conditions: List[Dict[str, Any]], direction: str) -> Optional[float]:
    """Difference to the baseline at the mildest degraded level over the difference on clean depth (1 = all of
    the clean gain kept, 0 = none, negative = worse than the baseline); None without a clean gain or a level."""
    clean = next((cell for cell, c in zip(cells, conditions) if c["kind"] == "clean"), None)
    mildest = next((cell for cell, c in zip(cells, conditions) if c["kind"] != "clean"), None)
    if clean is None or mildest is None or clean["difference"] is None or mildest["difference"] is None:
        return None
    if not _helps(clean["difference"], direction):
        return None
    return mildest["difference"] / clean["difference"]


def robustness_tables(results: Dict[str, Any],
                      comparisons: Optional[List[Dict[str, Any]]] = None) -> List[Tuple[str, str]]:
    """(title, markdown table) per scene, kind of degradation and primary metric, from :func:`robustness_summary`."""
    tables = []
    baseline = results["protocol"]["baseline"]
    for entry in robustness_summary(results, comparisons):
        metric = entry["metric"]
        regime = entry.get("axis") == "regime"
        # a regime's reference is the profile every factor departs from: its level on the factor's axis is not 0
        head = [f"{lvl['condition']} (reference)" if regime and lvl.get("reference")
                else f"{lvl['condition']} ({lvl['level']:g})" for lvl in entry["levels"]]
        lines = ["| method | " + " | ".join(head) + (" |" if regime else " | stops helping at | clean gain kept at "
                                                      "the mildest level | significantly worse at |"),
                 "|---" * (len(head) + (1 if regime else 4)) + "|"]
        for method, cells in entry["methods"].items():
            shown = []
            for cell in cells:
                text = fmt(cell["mean"], metric)
                if method != baseline and cell["difference"] is not None:
                    mark = SIGNIFICANT if cell["significant"] else ""
                    text += f" ({fmt(cell['difference'], metric, signed=True)}{mark})"
                shown.append(text)
            if method == baseline:
                stop, kept, worse = "(the RGB-only reference)", "", ""
            else:
                level = entry["stops_helping"].get(method)
                unpaired = entry.get("unpaired_at", {}).get(method, [])
                if level is not None:
                    stop = f"{level:g}"
                elif len(unpaired) == len(cells):
                    stop = "– (no paired seed)"
                else:
                    missing = ", ".join(f"{lvl:g}" for lvl in unpaired)
                    stop = "helps at every level" + (f" with a paired seed (none at {missing})" if unpaired else "")
                share = entry["kept_at_mildest"].get(method)
                kept = "–" if share is None else f"{100 * share:.0f} %"
                worse = ", ".join(f"{lvl:g}" for lvl in entry["worse_at"].get(method, [])) or "never"
            lines.append(f"| {method} | " + " | ".join(shown) + (" |" if regime else f" | {stop} | {kept} | {worse} |"))
        title = (f"{'Regime' if regime else 'Robustness'} on `{entry['scene']}`: {entry['kind']}, {metric} "
                 f"{ARROW[entry['better']]} (mean; in parentheses the difference to {baseline} under the same "
                 f"condition)")
        tables.append((title, "\n".join(lines)))
    return tables

