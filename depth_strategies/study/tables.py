"""Markdown tables of ``results.json``, one function a table: the main table and the paired statistics of a scene,
the run-to-run spread, the cost, the ablations, the across-scenes and budget summaries, and the lines that say how
each method uses depth; with the number formatting they share. The numbers come from
:mod:`depth_strategies.study.comparisons`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from depth_strategies.study import stats
from depth_strategies.study.comparisons import (
    COLLAPSED,
    SIGNIFICANT,
    across_scenes,
    better,
    budget_summary,
    group_runs,
    main_runs,
    metric_names,
    primary_metrics,
    seed_differences,
    seeds_agree,
    significant,
    summarize,
)

ARROW = {"higher": "↑", "lower": "↓"}
"""Header arrow of a metric's better direction."""
DECIMALS = {
    "psnr": 2,
    "ssim": 3,
    "lpips": 3,
    "depth_l1": 3,
    "depth_rmse": 3,
    "depth_abs_rel": 3,
    "depth_delta1": 3,
    "weight_variance": 4,
    "weight_entropy": 2,
}
"""Printed decimals per metric."""



def across_scenes_table(results: Dict[str, Any], comparisons: Optional[List[Dict[str, Any]]] = None) -> str:
    """:func:`across_scenes` for the primary metrics, as a markdown table (empty with fewer than two scenes)."""
    primary = set(primary_metrics(results["protocol"]))
    entries = [e for e in across_scenes(results, comparisons) if e["metric"] in primary]
    if not entries:
        return ""
    baseline = results["protocol"]["baseline"]
    conditions = any(e["condition"] for e in entries)
    lines = [("| condition " if conditions else "") + f"| method | metric | − {baseline}, per scene | mean over scenes "
             f"[{int(100 * stats.CONFIDENCE)} % t interval] | p | scenes |",
             "|---" * (6 + conditions) + "|"]
    for e in entries:
        metric = e["metric"]
        per_scene = ", ".join(f"{scene} {fmt(v, metric, signed=True)}" for scene, v in e["scene_differences"].items())
        interval = (f"{fmt(e['mean_difference'], metric, signed=True)} [{fmt(e['ci_low'], metric, signed=True)}, "
                    f"{fmt(e['ci_high'], metric, signed=True)}]")
        lines.append((f"| {e['condition']} " if conditions else "") + f"| {e['method']} | {metric} | {per_scene} | "
                     f"{interval} | {_p(e['p_value'])} | {len(e['scene_differences'])} |")
    return "\n".join(lines)



def leader_separated(results: Dict[str, Any], scene: str, rows: List[Dict[str, Any]], metric: str) -> Optional[float]:
    """Paired-t p over seeds of the best method against the runner-up on ``metric`` (the report's run-level test):
    the best is marked only when this is below ``stats.ALPHA``. None when fewer than two methods have values; NaN
    with fewer than two shared seeds."""
    direction = better(results, metric)
    ranked = sorted(
        (r for r in rows if _ranked(r, metric)),
        key=lambda r: r[metric]["mean"],
        reverse=direction == "higher",
    )
    if len(ranked) < 2:
        return None
    groups = group_runs(main_runs(results))
    first, second = (groups[(scene, row["method"])] for row in ranked[:2])
    return stats.paired_t(list(seed_differences(first, second, metric).values())).p



# ------------------------------------------------------------------------------------------- formatting
def fmt(value: Optional[float], metric: str, signed: bool = False) -> str:
    """``value`` with the metric's :data:`DECIMALS` (signed: with its sign); "–" when missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    digits = DECIMALS.get(metric, 3)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ranked(row: Mapping[str, Any], metric: str) -> bool:
    """Whether a row takes part in the ranking: trained, with values, and no collapsed run (a collapsed run's image
    is not a result to rank; its row is marked instead)."""
    return row["status"] == "ok" and row[metric]["mean"] is not None and not row.get("collapsed")


def _best(rows: List[Dict[str, Any]], metric: str, direction: str) -> Optional[float]:
    means = [r[metric]["mean"] for r in rows if _ranked(r, metric)]
    if not means:
        return None
    return max(means) if direction == "higher" else min(means)


def _header(results: Dict[str, Any], metric: str) -> str:
    spec = results["metrics"][metric]
    unit = f" ({spec['unit']})" if spec.get("unit") else ""
    return f"{metric}{unit} {ARROW[spec['better']]}"


def _present(results: Dict[str, Any], rows: List[Dict[str, Any]]) -> List[str]:
    """Metrics with at least one value (LPIPS is absent offline; depth metrics without ground truth)."""
    return [m for m in metric_names(results) if any(r[m]["n"] for r in rows)]


def main_table(
    results: Dict[str, Any], scene: str, rows: List[Dict[str, Any]], comparisons: List[Dict[str, Any]]
) -> str:
    """Markdown table of one scene: mean ± std, best in bold, difference to baseline (significant: †)."""
    metrics = _present(results, rows)
    lookup = {(c["method"], c["metric"]): c for c in comparisons if c["scene"] == scene}
    separated = {}
    for m in metrics:
        p = leader_separated(results, scene, rows, m)
        separated[m] = p is not None and not math.isnan(p) and p < stats.ALPHA
    lines = [
        "| method | " + " | ".join(_header(results, m) for m in metrics) + " | train s/iter (wall) |",
        "|---|" + "---|" * (len(metrics) + 1),
    ]
    baseline = (results.get("protocol") or {}).get("baseline")
    baseline_seeds = next((r.get("seed_ids") for r in rows if r["method"] == baseline), None)
    other_seeds = False
    for row in rows:
        if row["status"] != "ok":
            error = (row["error"] or "").replace("|", "/").splitlines()[0][:160] if row["error"] else ""
            lines.append(f"| {row['method']} | **failed**: {error} |" + " |" * len(metrics))
            continue
        cells = []
        for m in metrics:
            cell = row[m]
            if cell["mean"] is None:
                cells.append("–")
                continue
            text = f"{fmt(cell['mean'], m)} ± {fmt(cell['std'], m)}"
            best = _best(rows, m, better(results, m))
            if best is not None and cell["mean"] == best and separated.get(m):
                text = f"**{text}**"
            comp = lookup.get((row["method"], m))
            if comp is not None and comp["n"]:
                mark = SIGNIFICANT if significant(comp) else ""
                text += f" ({fmt(comp['mean_difference'], m, signed=True)}{mark})"
            cells.append(text)
        spi = row["seconds_per_iteration"]
        cells.append(f"{spi:.3f}" if spi else "–")
        seeds_note = ""
        if baseline_seeds is not None and row.get("seed_ids") not in (None, baseline_seeds):
            word = "seed" if len(row["seed_ids"]) == 1 else "seeds"
            seeds_note, other_seeds = f" ({word} {', '.join(map(str, row['seed_ids']))})", True
        lines.append(f"| {row['method']}{seeds_note}{_collapse_note(row)} | " + " | ".join(cells) + " |")
    if other_seeds:
        lines += ["", f"A method marked with its seeds ran other seeds than {baseline} "
                  f"({', '.join(map(str, baseline_seeds))}): its mean ± std is over its own seeds, so set it beside "
                  "the others' with care; the difference in brackets pairs it with the baseline's runs of the same "
                  "seeds only."]
    return "\n".join(lines)


def _collapse_note(row: Mapping[str, Any]) -> str:
    """`` ⚠ seed 0: constant colour`` after the name of a method with collapsed runs; empty otherwise."""
    collapsed = row.get("collapsed") or {}
    if not collapsed:
        return ""
    return f" {COLLAPSED} " + ", ".join(f"seed {seed}: {status}" for seed, status in collapsed.items())


def stats_table(results: Dict[str, Any], scene: str, comparisons: List[Dict[str, Any]]) -> str:
    """Markdown table of the run-level statistics of one scene."""
    rows = [c for c in comparisons if c["scene"] == scene and c["n"]]
    lines = [
        "| method | metric | seeds | mean difference | 95% t interval | paired t p | Holm p (declared family) "
        "| per seed (same seed: same ray batches) | views | std over views |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(rows, key=lambda c: not c.get("in_family", False)):
        m = c["metric"]
        holm_p = _p(c.get("p_holm")) if c.get("in_family") else "exploratory"
        lines.append(
            f"| {c['method']} | {m} | {c.get('seeds', '?')} | {fmt(c['mean_difference'], m, True)} | "
            f"[{fmt(c['ci_low'], m, True)}, {fmt(c['ci_high'], m, True)}] | "
            f"{_p(c['p_value'])} | {holm_p} | {_seed_cell(c, m)} | {c['n']} | {fmt(c.get('view_std'), m)} |"
        )
    scene_comparisons = [c for c in comparisons if c["scene"] == scene]
    apart = sorted({(c["method"], seed) for c in scene_comparisons for seed in c.get("left_out_seeds") or []})
    if apart:
        lines += ["", "Left out of the pairs (the two runs of the seed were trained on different platforms): "
                  + ", ".join(f"{method} seed {seed}" for method, seed in apart) + "."]
    unpaired = sorted({c["method"] for c in scene_comparisons if not c["n"] and c.get("left_out_seeds")})
    if unpaired:
        lines += ["", "Not in this table, no seed paired with the baseline's (every pair across platforms): "
                  + ", ".join(unpaired) + "."]
    return "\n".join(lines)


def _seed_cell(comparison: Mapping[str, Any], metric: str) -> str:
    """Each seed's mean difference, in seed order; "disagree" where the seeds differ in direction."""
    by_seed = comparison.get("seed_differences") or {}
    if len(by_seed) < 2:
        return "–"
    text = " / ".join(fmt(v, metric, True) for _, v in sorted(by_seed.items(), key=lambda kv: str(kv[0])))
    return text if seeds_agree(comparison) else f"{text} (disagree)"


def spread_table(results: Dict[str, Any], rows: List[Dict[str, Any]]) -> str:
    """Run-to-run spread: the std over seeds of each seed's mean, per method and primary metric ('' with one
    seed)."""
    primary = [m for m in primary_metrics(results["protocol"]) if m in results["metrics"]]
    lines = ["| method | seeds | " + " | ".join(f"{m} std over seeds" for m in primary) + " |",
             "|---|---|" + "---|" * len(primary)]
    for row in rows:
        if row["status"] != "ok":
            continue
        seeds = max((row[m]["seeds"] for m in primary), default=0)
        cells = [fmt(row[m]["seed_std"], m) for m in primary]
        lines.append(f"| {row['method']} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


DEPTH_USE_FIELDS = (
    "guided_fraction",
    "soft_depth_mult",
    "hard_depth_mult",
    "empty_space_mult",
    "sigma_window_mult",
    "max_trusted_half_width",
    "mask_follows_trust",
    "depth_penalty",
    "depth_alignment",
)
"""Model fields that say how a method uses depth, listed under the tables (a penalty of "l2" and an alignment of
"none", the defaults, are not listed)."""


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def depth_use_lines(protocol: Mapping[str, Any], present: Optional[Iterable[str]] = None) -> List[str]:
    """One bullet per method of the protocol (only those in ``present``, when given: the methods that have runs):
    how it uses depth (guided fraction and the lambdas, each weighting a mean over rays and over the sampling
    levels), from the registered method and the protocol's overrides."""
    from depth_strategies.methods import METHOD_FIELDS

    common = dict(protocol.get("overrides") or {})
    shown = None if present is None else set(present)
    lines = []
    for method in protocol.get("methods") or []:
        if shown is not None and method["name"] not in shown:
            continue
        if method.get("external"):
            lines.append(f"- {method['name']}: nerfstudio's {method['external']} (its own DS-NeRF depth loss)")
            continue
        fields = dict(METHOD_FIELDS.get(method.get("base") or method["name"], {}))
        for key, value in {**common, **(method.get("overrides") or {})}.items():
            if key.startswith("pipeline.model.") and key.split(".")[-1] in DEPTH_USE_FIELDS:
                fields[key.split(".")[-1]] = value
        used = [
            f"{name} {_value(fields[name])}"
            for name in DEPTH_USE_FIELDS
            if fields.get(name) not in (None, 0, 0.0, "none", "l2")
        ]
        lines.append(f"- {method['name']}: " + (", ".join(used) if used else "no depth (RGB only)"))
    return lines


def evaluation_lines(results: Dict[str, Any]) -> List[str]:
    """The recorded evaluation protocol, one bullet per item (what makes numbers comparable or not)."""
    evaluation = results.get("evaluation") or {}
    return [f"- {key.replace('_', ' ')}: {value}" for key, value in evaluation.items()]


def _p(value: Optional[float]) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.3g}"


def sweep_tables(results: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(title, markdown) of each ablation: one row per swept value, metrics as columns."""
    sweep_runs = [r for r in results["runs"] if r.get("sweep")]
    tables = []
    by_key: Dict[Tuple[str, str], List[Dict[str, Any]]] = defaultdict(list)
    for run in sweep_runs:
        by_key[(run["scene"], run["sweep"][0])].append(run)
    for (scene, name), runs in by_key.items():
        rows = summarize(results, runs)
        field = runs[0]["sweep"][1]
        metrics = _present(results, rows)
        lines = [
            f"| {field} | " + " | ".join(_header(results, m) for m in metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        for row in sorted(rows, key=lambda r: _sort_key(r["sweep"][2])):
            value = row["sweep"][2]
            if row["status"] != "ok":
                lines.append(f"| {value} | **failed**: {(row['error'] or '')[:120]} |" + " |" * (len(metrics) - 1))
                continue
            cells = []
            for m in metrics:
                text = f"{fmt(row[m]['mean'], m)} ± {fmt(row[m]['std'], m)}"
                if row[m]["mean"] is not None and row[m]["mean"] == _best(rows, m, better(results, m)):
                    text = f"**{text}**"
                cells.append(text)
            lines.append(f"| {value} | " + " | ".join(cells) + " |")
        method = runs[0]["method"].split("@")[0]
        title = f"Ablation `{name}` on {scene}: {field} of {method} (bold: best mean, not tested)"
        tables.append((title, "\n".join(lines)))
    return tables


def _sort_key(value: Any) -> Tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


WALL_TIME_CAVEAT = (
    "Seconds are wall-clock times of runs made one after another: on a shared machine the same method's "
    "s/iter varies by tens of per cent from run to run, so they are costs, not speed ratios between methods. "
    "`ds-bench` measures those ratios, interleaved in one process."
)
"""Printed under every table that shows the runs' own timings."""


def cost_table(rows: List[Dict[str, Any]]) -> str:
    """Training and rendering cost per method (wall-clock, see :data:`WALL_TIME_CAVEAT`)."""
    lines = [
        "| method | train s/iter (wall) | train rays/s | render fps | peak RSS (MB) | peak GPU (MB) | train wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] != "ok":
            continue
        lines.append(
            f"| {r['method']} | {_num(r['seconds_per_iteration'], 3)} | "
            f"{_num(r['rays_per_second'], 0)} | {_num(r['frames_per_second'], 3)} | {_num(r['cpu_rss_mb'], 0)} | "
            f"{_num(r['gpu_mb'], 0)} | {_num(r['wall_time_s'], 1)} |"
        )
    return "\n".join(lines)


def _num(value: Optional[float], digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"



def budget_table(results: Dict[str, Any], metric: str = "psnr") -> str:
    """:func:`budget_summary` as a markdown table (empty without curves)."""
    entries = budget_summary(results, metric)
    if not entries:
        return ""
    baseline = results["protocol"]["baseline"]
    lines = [f"| scene | method | steps to reach {baseline}'s final {metric}, per seed | median | "
             f"{baseline}'s steps |", "|---|---|---|---|---|"]
    for entry in entries:
        values = [entry["steps"][seed] for seed in sorted(entry["steps"], key=_sort_key)]
        shown = " / ".join("never" if v is None else f"{v:.0f}" for v in values)
        reached = [v for v in values if v is not None]
        median = f"{statistics.median(values):.0f}" if len(reached) == len(values) else (
            f"{len(reached)} of {len(values)} seeds reach it")
        lines.append(f"| {entry['scene']} | {entry['method']} | {shown} | {median} | "
                     f"{max(entry['baseline_steps'].values())} |")
    return "\n".join(lines)

