"""Tables from ``results.json``: summaries, paired statistics against the baseline, CSV and Markdown.

Everything here is a function of the results dictionary (see :mod:`depth_strategies.study.compare` for its
layout), so tables can be regenerated from a results file alone (``ds-compare --report-only``).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from depth_strategies.core.appearance import appearance_status
from depth_strategies.core.metrics import DEFAULT_PRIMARY_METRICS, METRICS
from depth_strategies.study import stats

ARROW = {"higher": "↑", "lower": "↓"}
"""Header arrow of a metric's better direction."""
SIGNIFICANT = "†"
"""Marks a difference to the baseline that :func:`significant` accepts: Holm-adjusted paired-t p over seeds below
``stats.ALPHA`` (the training run is the unit)."""
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


def metric_names(results: Dict[str, Any]) -> List[str]:
    """The reported metrics, in protocol order."""
    return list(results["metrics"])


def better(results: Dict[str, Any], metric: str) -> str:
    """``higher`` or ``lower``."""
    return results["metrics"][metric]["better"]


def main_runs(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Runs of the protocol's methods (not sweep points)."""
    return [r for r in results["runs"] if not r.get("sweep")]


def group_runs(runs: Iterable[Dict[str, Any]]) -> Dict[Tuple[str, str], List[Dict[str, Any]]]:
    """Runs by (scene, method), seeds together, in first-seen order."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["scene"], run["method"])].append(run)
    return dict(groups)


def per_view(runs: Iterable[Mapping[str, Any]], metric: str) -> Dict[Tuple[Any, Any], float]:
    """{(seed, view index): value} over the ok runs of one (scene, method): the one grouping of per-view values,
    used by the tables, the paired statistics and the figures. Missing, non-numeric and non-finite values are
    left out."""
    values = {}
    for run in runs:
        if run.get("status") != "ok":
            continue
        for view in run.get("views") or []:
            value = (view.get("metrics") or {}).get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values[(run.get("seed"), view.get("index", view.get("name")))] = float(value)
    return values


APPEARANCE_KEYS = ("object_pixels", "object_coverage", "colour_spread_ratio")
"""Per-view metrics of :func:`depth_strategies.core.appearance.appearance_statistics` (results of version 0.4 on)."""
COLLAPSED = "⚠"
"""Marks a method with a collapsed run in a table (:func:`run_appearance`)."""


def run_appearance(run: Mapping[str, Any]) -> Optional[str]:
    """A run's appearance: "empty" or "constant colour" when more than half of its test views are (the commoner of
    the two), else "ok"; None when its views carry no appearance statistics (results older than version 0.4)."""
    statuses = []
    for view in run.get("views") or []:
        metrics = view.get("metrics") or {}
        if all(key in metrics for key in APPEARANCE_KEYS):
            statuses.append(appearance_status(**{key: float(metrics[key]) for key in APPEARANCE_KEYS}))
    if not statuses:
        return None
    flagged = [s for s in statuses if s != "ok"]
    if 2 * len(flagged) <= len(statuses):
        return "ok"
    return max(dict.fromkeys(flagged), key=flagged.count)


def collapsed_runs(runs: Iterable[Mapping[str, Any]]) -> Dict[Any, str]:
    """{seed: status} of the ok runs whose appearance collapsed (:func:`run_appearance`)."""
    found = {}
    for run in runs:
        status = run_appearance(run) if run.get("status") == "ok" else None
        if status not in (None, "ok"):
            found[run.get("seed")] = status
    return found


def summarize(results: Dict[str, Any], runs: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """One row per (scene, method): status, error, and for every metric the mean and std over test views (each view
    averaged over seeds first), the number of views, and the std over seeds of each seed's mean (the run-to-run
    spread; None with one seed)."""
    rows = []
    for (scene, method), group in group_runs(main_runs(results) if runs is None else runs).items():
        failed = [r for r in group if r["status"] != "ok"]
        row: Dict[str, Any] = {
            "scene": scene,
            "method": method,
            "seeds": len(group),
            "status": "failed" if len(failed) == len(group) else "ok",
            "error": failed[0].get("error") if failed else None,
            "sweep": group[0].get("sweep"),
            "collapsed": collapsed_runs(group),
        }
        for metric in metric_names(results):
            values = list(per_view_over_seeds(group, metric).values())
            by_seed = list(seed_means(group, metric).values())
            row[metric] = {
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
                "n": len(values),
                "seeds": len(by_seed),
                "seed_std": statistics.stdev(by_seed) if len(by_seed) > 1 else None,
            }
        ok = [r for r in group if r["status"] == "ok"]
        for key in ("seconds_per_iteration", "rays_per_second", "cpu_rss_mb", "gpu_mb", "wall_time_s"):
            values = [r["train"][key] for r in ok if r["train"].get(key) is not None]
            row[key] = statistics.fmean(values) if values else None
        fps = [r["render"]["frames_per_second"] for r in ok if r["render"].get("frames_per_second")]
        row["frames_per_second"] = statistics.fmean(fps) if fps else None
        rows.append(row)
    return rows


def per_view_over_seeds(runs: Iterable[Mapping[str, Any]], metric: str,
                        seeds: Optional[Iterable[Any]] = None) -> Dict[Any, float]:
    """{view index: mean over seeds} of one (scene, method), over ``seeds`` only when given: each view once, to
    describe how the differences spread over the views (never as replicates of a comparison)."""
    keep = None if seeds is None else set(seeds)
    by_view: Dict[Any, List[float]] = defaultdict(list)
    for (seed, view), value in per_view(runs, metric).items():
        if keep is None or seed in keep:
            by_view[view].append(value)
    return {view: statistics.fmean(values) for view, values in by_view.items()}


def paired_view_differences(
    runs: Iterable[Mapping[str, Any]], reference: Iterable[Mapping[str, Any]], metric: str
) -> np.ndarray:
    """Per-view differences ``runs`` − ``reference`` on ``metric``, over the seeds both have (each view averaged
    over those seeds first) and the views both have: a description of the comparison over views."""
    runs, reference = list(runs), list(reference)
    shared = set(seed_means(runs, metric)) & set(seed_means(reference, metric))
    shared -= set(cross_platform_seeds(runs, reference))
    mine, theirs = per_view_over_seeds(runs, metric, shared), per_view_over_seeds(reference, metric, shared)
    keys = sorted(set(mine) & set(theirs), key=str)
    a, b = stats.paired([mine[k] for k in keys], [theirs[k] for k in keys])
    return a - b


def seed_means(runs: Iterable[Mapping[str, Any]], metric: str) -> Dict[Any, float]:
    """{seed: mean over the views of that seed's run} of one (scene, method)."""
    by_seed: Dict[Any, List[float]] = defaultdict(list)
    for (seed, _), value in per_view(runs, metric).items():
        by_seed[seed].append(value)
    return {seed: statistics.fmean(values) for seed, values in by_seed.items()}


def seed_platforms(runs: Iterable[Mapping[str, Any]]) -> Dict[Any, Optional[str]]:
    """{seed: the platform its run was trained on (None: not recorded)} of one (scene, method)."""
    return {run.get("seed"): run.get("platform") for run in runs if run.get("status") == "ok"}


def cross_platform_seeds(runs: Iterable[Mapping[str, Any]], reference: Iterable[Mapping[str, Any]]) -> List[Any]:
    """Seeds whose two runs were trained on different platforms: same-seed runs reproduce on one machine, not
    across machines, so :func:`seed_differences` leaves them out of the pairs."""
    mine, theirs = seed_platforms(runs), seed_platforms(reference)
    return sorted((s for s in set(mine) & set(theirs) if mine[s] and theirs[s] and mine[s] != theirs[s]), key=str)


def seed_differences(
    runs: Iterable[Mapping[str, Any]], reference: Iterable[Mapping[str, Any]], metric: str
) -> Dict[Any, float]:
    """{seed: mean over the views both runs have of (run − reference run of the same seed)}, over the seeds both
    have on one platform (:func:`cross_platform_seeds` are left out): the replicates of every test of the report.
    Runs of one seed draw the same ray batches (:meth:`depth_strategies.core.model.DepthStrategyModel.
    guidance_uniform`), so each seed is a pair of runs that differ in the method only."""
    runs, reference = list(runs), list(reference)
    apart = set(cross_platform_seeds(runs, reference))
    mine, theirs = per_view(runs, metric), per_view(reference, metric)
    by_seed: Dict[Any, List[float]] = defaultdict(list)
    for key in sorted(set(mine) & set(theirs), key=str):
        if key[0] not in apart:
            by_seed[key[0]].append(mine[key] - theirs[key])
    return {seed: statistics.fmean(values) for seed, values in by_seed.items()}


def seeds_agree(comparison: Mapping[str, Any]) -> bool:
    """Whether every seed's mean difference lies on the side of the overall mean difference (True with fewer than
    two seeds: nothing to disagree). A description printed beside the per-seed values; the test is
    :func:`significant`'s."""
    by_seed = [v for v in (comparison.get("seed_differences") or {}).values() if v is not None]
    if len(by_seed) < 2:
        return True
    mean = comparison.get("mean_difference")
    if mean is None or not math.isfinite(mean) or mean == 0:
        return False
    return all(v * mean > 0 for v in by_seed)


def significant(comparison: Optional[Mapping[str, Any]]) -> bool:
    """The report's significance (:data:`SIGNIFICANT`): a test of the declared family whose Holm-adjusted paired-t p
    over seeds (:func:`depth_strategies.study.stats.paired_t`) is below ``stats.ALPHA``. A comparison with fewer than
    two paired seeds has no test and is never marked."""
    if not comparison or not comparison.get("in_family"):
        return False
    p = comparison.get("p_holm")
    return p is not None and not math.isnan(p) and p < stats.ALPHA


def primary_metrics(protocol: Mapping[str, Any]) -> List[str]:
    """The protocol's primary metrics (results of protocols that predate the key get the default)."""
    return list(protocol.get("primary_metrics") or DEFAULT_PRIMARY_METRICS)


def declared_family(protocol: Mapping[str, Any], run_methods: Iterable[str] = ()) -> List[Tuple[str, str]]:
    """The protocol's declared family of tests against the baseline: (method, metric) for every compared method
    (all the protocol's methods but the baseline unless ``compared`` lists them; ``run_methods`` when the protocol
    record lists none) and every primary metric."""
    baseline = protocol["baseline"]
    methods = [m["name"] for m in protocol["methods"]] if protocol.get("methods") else list(run_methods)
    compared = protocol.get("compared") or [m for m in dict.fromkeys(methods) if m != baseline]
    return [(method, metric) for method in compared for metric in primary_metrics(protocol)]


def compare_to_baseline(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every method against the baseline in every scene (and condition), with the training run as the unit: each
    seed's mean difference over the views (:func:`seed_differences`), Student's paired t over those seeds
    (:func:`depth_strategies.study.stats.paired_t`), and Holm's correction over the declared family
    (:func:`declared_family`) in **every** scene and condition of the protocol together. A declared test without
    two paired seeds counts as p = 1, so the family, and every mark, does not depend on which runs exist. Tests
    outside the family keep their raw p-value (``in_family`` False, ``p_holm`` None): exploratory. The views stay
    as description: ``n`` (views paired), ``view_std`` (std over views of the seed-averaged differences)."""
    protocol = results["protocol"]
    baseline = protocol["baseline"]
    groups = group_runs(main_runs(results))
    family = set(declared_family(protocol, (method for _, method in groups)))
    comparisons: List[Dict[str, Any]] = []
    scenes = [scene for scene in dict.fromkeys(scene for scene, _ in groups) if (scene, baseline) in groups]
    for scene in scenes:
        for (group_scene, method), group in groups.items():
            if group_scene != scene or method == baseline:
                continue
            for metric in metric_names(results):
                by_seed = seed_differences(group, groups[(scene, baseline)], metric)
                views = paired_view_differences(group, groups[(scene, baseline)], metric)
                test = stats.paired_t(list(by_seed.values()))
                comparisons.append(
                    {
                        "scene": scene,
                        "method": method,
                        "metric": metric,
                        "n": int(views.size),
                        "view_std": float(views.std(ddof=1)) if views.size > 1 else None,
                        "seeds": test.seeds,
                        "seed_differences": {str(k): v for k, v in by_seed.items()},
                        "left_out_seeds": [str(k) for k in cross_platform_seeds(group, groups[(scene, baseline)])],
                        "mean_difference": test.mean,
                        "ci_low": test.low,
                        "ci_high": test.high,
                        "p_value": test.p,
                        "in_family": (method, metric) in family,
                        "p_holm": None,
                    }
                )
    tested = {(c["scene"], c["method"], c["metric"]): c for c in comparisons if c["in_family"]}
    members = [(scene, method, metric) for scene in scenes for method, metric in sorted(family)]
    raw = []
    for member in members:
        p = tested[member]["p_value"] if member in tested else float("nan")
        raw.append(1.0 if p is None or math.isnan(p) else p)  # a missing run or fewer than two seeds: p = 1
    for member, adjusted in zip(members, stats.holm(raw)):
        if member in tested:
            tested[member]["p_holm"] = adjusted
    return comparisons


def across_scenes(results: Dict[str, Any], comparisons: Optional[List[Dict[str, Any]]] = None
                  ) -> List[Dict[str, Any]]:
    """Per condition (None without), method and metric measured on two or more scenes: each scene's run-level mean
    difference to the baseline (:func:`compare_to_baseline`), and Student's t over the scenes with the scene as the
    unit (a scene-level interval: how far the effect carries to another scene like these, not how precisely it is
    known on these). Not part of the declared family's correction: a summary of the per-scene tests."""
    comparisons = compare_to_baseline(results) if comparisons is None else comparisons
    origin = {str(r["scene"]): (str(r.get("base_scene") or r["scene"]), r.get("condition"))
              for r in results["runs"]}
    by_key: Dict[Tuple[Any, str, str], Dict[str, float]] = defaultdict(dict)
    for c in comparisons:
        scene, condition = origin.get(str(c["scene"]), (str(c["scene"]), None))
        if c["mean_difference"] is not None and math.isfinite(c["mean_difference"]):
            by_key[(condition, c["method"], c["metric"])][scene] = float(c["mean_difference"])
    summary = []
    for (condition, method, metric), differences in by_key.items():
        if len(differences) < 2:
            continue
        test = stats.paired_t(list(differences.values()))
        summary.append({"condition": condition, "method": method, "metric": metric, "scene_differences": differences,
                        "mean_difference": test.mean, "ci_low": test.low, "ci_high": test.high, "p_value": test.p})
    return summary


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
        per_scene = ", ".join(f"{scene} {_fmt(v, metric, signed=True)}" for scene, v in e["scene_differences"].items())
        interval = (f"{_fmt(e['mean_difference'], metric, signed=True)} [{_fmt(e['ci_low'], metric, signed=True)}, "
                    f"{_fmt(e['ci_high'], metric, signed=True)}]")
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
def _fmt(value: Optional[float], metric: str, signed: bool = False) -> str:
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
            text = f"{_fmt(cell['mean'], m)} ± {_fmt(cell['std'], m)}"
            best = _best(rows, m, better(results, m))
            if best is not None and cell["mean"] == best and separated.get(m):
                text = f"**{text}**"
            comp = lookup.get((row["method"], m))
            if comp is not None and comp["n"]:
                mark = SIGNIFICANT if significant(comp) else ""
                text += f" ({_fmt(comp['mean_difference'], m, signed=True)}{mark})"
            cells.append(text)
        spi = row["seconds_per_iteration"]
        cells.append(f"{spi:.3f}" if spi else "–")
        lines.append(f"| {row['method']}{_collapse_note(row)} | " + " | ".join(cells) + " |")
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
            f"| {c['method']} | {m} | {c.get('seeds', '?')} | {_fmt(c['mean_difference'], m, True)} | "
            f"[{_fmt(c['ci_low'], m, True)}, {_fmt(c['ci_high'], m, True)}] | "
            f"{_p(c['p_value'])} | {holm_p} | {_seed_cell(c, m)} | {c['n']} | {_fmt(c.get('view_std'), m)} |"
        )
    apart = sorted({(c["method"], seed) for c in rows for seed in c.get("left_out_seeds") or []})
    if apart:
        lines += ["", "Left out of the pairs (the two runs of the seed were trained on different platforms): "
                  + ", ".join(f"{method} seed {seed}" for method, seed in apart) + "."]
    return "\n".join(lines)


def _seed_cell(comparison: Mapping[str, Any], metric: str) -> str:
    """Each seed's mean difference, in seed order; "disagree" where the seeds differ in direction."""
    by_seed = comparison.get("seed_differences") or {}
    if len(by_seed) < 2:
        return "–"
    text = " / ".join(_fmt(v, metric, True) for _, v in sorted(by_seed.items(), key=lambda kv: str(kv[0])))
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
        cells = [_fmt(row[m]["seed_std"], m) for m in primary]
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


def depth_use_lines(protocol: Mapping[str, Any]) -> List[str]:
    """One bullet per method of the protocol: how it uses depth (guided fraction and the lambdas, each weighting a
    mean over rays and over the sampling levels), from the registered method and the protocol's overrides."""
    from depth_strategies.methods import METHOD_FIELDS

    common = dict(protocol.get("overrides") or {})
    lines = []
    for method in protocol.get("methods") or []:
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
                text = f"{_fmt(row[m]['mean'], m)} ± {_fmt(row[m]['std'], m)}"
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


# ------------------------------------------------------------------------------------------- robustness
def condition_label(scene: str, condition: str) -> str:
    """The name under which a scene's runs under a condition are grouped in results and tables."""
    return f"{scene}/{condition}"


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
                    "axis": "depth" if any(c.get("degradations") for c in levels) or not any(
                        c.get("overrides") or c.get("iterations") for c in levels) else "regime",
                    "levels": [{"condition": c["name"], "level": c["level"]} for c in levels],
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
                        entry["stops_helping"][method] = next(
                            (lvl["level"] for lvl, cell in zip(entry["levels"], cells)
                             if cell["difference"] is None or not _helps(cell["difference"], direction)), None)
                        entry["worse_at"][method] = [
                            lvl["level"] for lvl, cell in zip(entry["levels"], cells)
                            if cell["significant"] and cell["difference"] is not None
                            and not _helps(cell["difference"], direction)]
                        entry["kept_at_mildest"][method] = _kept(cells, levels, direction)
                summary.append(entry)
    return summary


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
        head = [f"{lvl['condition']} ({lvl['level']:g})" for lvl in entry["levels"]]
        regime = entry.get("axis") == "regime"
        lines = ["| method | " + " | ".join(head) + (" |" if regime else " | stops helping at | clean gain kept at "
                                                      "the mildest level | significantly worse at |"),
                 "|---" * (len(head) + (1 if regime else 4)) + "|"]
        for method, cells in entry["methods"].items():
            shown = []
            for cell in cells:
                text = _fmt(cell["mean"], metric)
                if method != baseline and cell["difference"] is not None:
                    mark = SIGNIFICANT if cell["significant"] else ""
                    text += f" ({_fmt(cell['difference'], metric, signed=True)}{mark})"
                shown.append(text)
            if method == baseline:
                stop, kept, worse = "(the RGB-only reference)", "", ""
            else:
                level = entry["stops_helping"].get(method)
                stop = "helps at every level" if level is None else f"{level:g}"
                share = entry["kept_at_mildest"].get(method)
                kept = "–" if share is None else f"{100 * share:.0f} %"
                worse = ", ".join(f"{lvl:g}" for lvl in entry["worse_at"].get(method, [])) or "never"
            lines.append(f"| {method} | " + " | ".join(shown) + (" |" if regime else f" | {stop} | {kept} | {worse} |"))
        title = (f"{'Regime' if regime else 'Robustness'} on `{entry['scene']}`: {entry['kind']}, {metric} "
                 f"{ARROW[entry['better']]} (mean; in parentheses the difference to {baseline} under the same "
                 f"condition)")
        tables.append((title, "\n".join(lines)))
    return tables


def first_reaching_step(curve: Iterable[Mapping[str, Any]], metric: str, target: float, direction: str
                        ) -> Optional[float]:
    """The training step at which ``curve`` (a run's evaluations during training: ``step`` and metric values) first
    reaches ``target`` in the metric's better direction, linearly interpolated between the two evaluations around
    the crossing; None if it never does."""
    points = sorted((float(p["step"]), float(p[metric])) for p in curve
                    if p.get(metric) is not None and math.isfinite(float(p[metric])))
    sign = 1.0 if direction == "higher" else -1.0
    previous = None
    for step, value in points:
        if sign * (value - target) >= 0:
            if previous is None:
                return step
            (step0, value0) = previous
            return step0 + (step - step0) * (target - value0) / (value - value0)
        previous = (step, value)
    return None


def budget_summary(results: Dict[str, Any], metric: str = "psnr") -> List[Dict[str, Any]]:
    """Per scene and method: the training steps each seed's run needed to reach the final ``metric`` of the
    baseline's run of the same seed, read off the curves evaluated during training (``eval_every``, on the
    ``curve_views`` test views, not the whole test set). None for a seed whose run never reached it."""
    baseline = results["protocol"]["baseline"]
    direction = better(results, metric)
    groups = group_runs(r for r in main_runs(results) if r["status"] == "ok" and r.get("curve"))
    summary = []
    for (scene, method), runs in groups.items():
        if method == baseline or (scene, baseline) not in groups:
            continue
        targets = {}
        for run in groups[(scene, baseline)]:
            final = max(run["curve"], key=lambda p: p["step"])
            if final.get(metric) is not None:
                targets[run["seed"]] = (float(final[metric]), int(final["step"]))
        steps = {run["seed"]: first_reaching_step(run["curve"], metric, targets[run["seed"]][0], direction)
                 for run in runs if run["seed"] in targets}
        if steps:
            summary.append({"scene": scene, "method": method, "metric": metric, "steps": steps,
                            "baseline_steps": {seed: t[1] for seed, t in targets.items() if seed in steps}})
    return summary


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


def render_markdown(results: Dict[str, Any]) -> str:
    """The whole ``results.md``."""
    protocol = results["protocol"]
    rows = summarize(results)
    comparisons = compare_to_baseline(results)
    out = [f"# Results: protocol `{protocol['name']}`", ""]
    if protocol.get("description"):
        out += [protocol["description"].strip(), ""]
    machine = results.get("machine", {})
    # A condition-free run is listed under every condition: count each run once.
    runs = list({r.get("run_id", id(r)): r for r in results.get("runs", [])}.values())
    reused = sum(1 for r in runs if r.get("reused"))
    runs_wall = sum(float((r.get("train") or {}).get("wall_time_s") or 0.0) for r in runs)
    out += [
        f"Command: `{results.get('command', 'ds-compare')}`  ",
        f"Machine: {machine.get('device', '?')}, {machine.get('cpus', '?')} CPUs; wall time of this invocation "
        f"{results.get('wall_time_s', 0) / 60:.1f} min ({reused} of {len(runs)} runs reused from earlier "
        f"invocations); the runs' own training time {runs_wall / 60:.1f} min in total; "
        f"{protocol['iterations']} iterations per run, "
        f"seeds {list(protocol['seeds'])}; software: "
        + ", ".join(
            f"{k} {v}"
            for k, v in results.get("software", {}).items()
            if k in ("depth_strategies", "nerfstudio", "torch")
        ),
        "",
        *platform_lines(runs),
        f"Mean ± std over test views (each view averaged over seeds first): a description of the views. The tests "
        f"take the training run as the unit: each seed's mean difference between two runs of that seed, Student's "
        f"paired t over the seeds (docs/statistics.md). **Bold**: the best mean, only where it differs from the "
        f"runner-up's (paired t p < {stats.ALPHA} over seeds, not corrected for picking the pair); no bold: the "
        f"leaders are not separated. In parentheses: difference to `{protocol['baseline']}` (mean of the per-seed "
        f"differences); {SIGNIFICANT}: Holm-corrected paired t p < {stats.ALPHA} over the declared family "
        f"({', '.join(primary_metrics(protocol))} of every compared method) in every scene and condition of the "
        "protocol together. With fewer than two seeds nothing is marked: not established. "
        f"{COLLAPSED}: a run whose appearance collapsed (most test views rendered empty, or the object in one flat "
        "colour: docs/appearance-collapse.md); a method with such a run is marked and never bold.",
        "",
    ]
    if protocol.get("methods"):
        out += ["How each method uses depth (each lambda weighs a mean over rays and over the sampling levels):", "",
                *depth_use_lines(protocol), ""]
    if results.get("evaluation"):
        out += ["Evaluation protocol:", "", *evaluation_lines(results), ""]
    for scene in dict.fromkeys(r["scene"] for r in rows):
        scene_rows = [r for r in rows if r["scene"] == scene]
        out += [f"## Scene `{scene}`", "", main_table(results, scene, scene_rows, comparisons), ""]
        table = stats_table(results, scene, comparisons)
        if table.count("\n") > 1:
            out += [
                "### Paired statistics against the baseline",
                "",
                f"Per seed: the mean over the test views of (method's run − {protocol['baseline']}'s run of that "
                "seed; runs of one seed draw the same ray batches); mean difference, 95% t interval and two-sided "
                "paired t p over those seeds; Holm-Bonferroni over the declared family in every scene and condition "
                "(a missing run, or fewer than two seeds, counts as p = 1); other rows are exploratory. Views: how "
                "many test views were paired, and the std over them of the difference (a description, not "
                "replicates).",
                "",
                table,
                "",
            ]
        if any(r[m]["seeds"] > 1 for r in scene_rows if r["status"] == "ok" for m in metric_names(results)):
            out += ["### Run-to-run spread", "", spread_table(results, scene_rows), ""]
        out += ["### Cost", "", cost_table(scene_rows), "", WALL_TIME_CAVEAT, ""]
    for title, table in sweep_tables(results):
        out += [f"## {title}", "", table, ""]
    robustness = robustness_tables(results, comparisons)
    if robustness:
        regimes_only = all(title.startswith("Regime") for title, _ in robustness)
        out += [
            "## Regimes: each factor against its level" if regimes_only
            else "## Robustness: each kind of degradation against its level",
            "",
            f"{SIGNIFICANT}: Holm-corrected paired t p < {stats.ALPHA} over seeds, the family being every "
            "condition's declared tests together. "
            + ("The reference regime is the first column; each factor changes one setting of it for every method."
               if regimes_only else
               "*Stops helping at*: the first level at which the mean difference to the RGB-only "
               "baseline is no longer in the metric's better direction (significant or not)."),
            "",
        ]
        for title, table in robustness:
            out += [f"### {title}", "", table, ""]
    scenes_table = across_scenes_table(results, comparisons)
    if scenes_table:
        out += ["## Across scenes", "",
                "Each scene's run-level mean difference to the baseline (the mean over its paired seeds), and "
                "Student's t over the scenes with the scene as the unit: whether the effect carries from scene to "
                "scene. A summary of the per-scene tests above, outside their family's correction.", "",
                scenes_table, ""]
    budget = budget_table(results)
    if budget:
        out += ["## Budget: training steps to reach the baseline's final PSNR", "",
                f"Read off the evaluations during training (every {results['protocol'].get('eval_every', '?')} "
                f"steps, on {results['protocol'].get('curve_views', '?')} test views, linearly interpolated), each "
                f"run against the baseline's run of its seed; a description of the curves, not a test.", "",
                budget, ""]
    failed = [r for r in results["runs"] if r["status"] != "ok"]
    if failed:
        out += ["## Failed runs", ""] + [f"- `{r['run_id']}`: {r.get('error', '')}" for r in failed] + [""]
    return "\n".join(out)


def platform_lines(runs: Iterable[Mapping[str, Any]]) -> List[str]:
    """Where the runs come from: the platforms that trained them (``platform.platform()`` of each run's worker), the
    versions of the training code that made them (their recorded source hashes), and the stale runs a
    ``--reuse-stale`` invocation reused. Same-seed training is reproducible on one machine, not across machines, so
    the tests pair seeds only within one platform (:func:`cross_platform_seeds`)."""
    runs = list(runs)
    counts: Dict[str, int] = defaultdict(int)
    codes: Dict[str, int] = defaultdict(int)
    for run in runs:
        if run.get("platform"):
            counts[run["platform"]] += 1
        codes[((run.get("provenance") or {}).get("source_hash")) or "not recorded (version 0.4 or older)"] += 1
    lines = []
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    listed = "; ".join(f"`{name}` ({n} run{'s' if n != 1 else ''})" for name, n in ranked)
    if len(counts) == 1:
        lines.append(f"Trained on `{ranked[0][0]}` ({ranked[0][1]} runs).")
    elif counts:
        lines.append(f"The runs were trained on {len(counts)} platforms: {listed}. Same-seed runs were bit-identical "
                     "on one machine in this project's checks, not across machines (same-seed lego-10 baseline runs "
                     "differed by up to 0.14 dB), so the tests pair a seed's two runs only when one platform trained "
                     "both; the seeds left out are listed under each statistics table.")
    code_list = "; ".join(f"`{code}` ({n} run{'s' if n != 1 else ''})" for code, n in codes.items())
    lines.append(f"Training code (source hash of each run, docs/statistics.md): {code_list}.")
    stale = [r for r in runs if r.get("stale")]
    if stale:
        lines.append(f"{len(stale)} run(s) were reused although stale (--reuse-stale): "
                     + "; ".join(f"`{r.get('run_id')}` ({r['stale']})" for r in stale) + ".")
    return [" ".join(lines), ""]


def main_tables(results: Dict[str, Any]) -> str:
    """The main table of every scene (what ``ds-compare`` prints at the end)."""
    rows = summarize(results)
    comparisons = compare_to_baseline(results)
    blocks = []
    for scene in dict.fromkeys(r["scene"] for r in rows):
        scene_rows = [r for r in rows if r["scene"] == scene]
        blocks.append(f"Scene {scene}:\n" + main_table(results, scene, scene_rows, comparisons))
    return "\n\n".join(blocks)


def render_csv(results: Dict[str, Any]) -> str:
    """``results.csv``: one row per (scene, method, metric) with summary and paired statistics."""
    comparisons = {
        (c["scene"], c["method"], c["metric"]): c for c in compare_to_baseline(results)
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "scene",
            "method",
            "status",
            "metric",
            "better",
            "mean",
            "std",
            "n",
            "difference_to_baseline",
            "ci_low",
            "ci_high",
            "p_value",
            "p_holm",
            "seconds_per_iteration",
        ]
    )
    for row in summarize(results) + summarize(results, [r for r in results["runs"] if r.get("sweep")]):
        for metric in metric_names(results):
            c = comparisons.get((row["scene"], row["method"], metric), {})
            writer.writerow(
                [
                    row["scene"],
                    row["method"],
                    row["status"],
                    metric,
                    better(results, metric),
                    row[metric]["mean"],
                    row[metric]["std"],
                    row[metric]["n"],
                    c.get("mean_difference"),
                    c.get("ci_low"),
                    c.get("ci_high"),
                    c.get("p_value"),
                    c.get("p_holm"),
                    row["seconds_per_iteration"],
                ]
            )
    return buffer.getvalue()


def metric_specs(names: Iterable[str], directions: Dict[str, str]) -> Dict[str, Dict[str, str]]:
    """The ``metrics`` block of results.json: direction, unit and description of each reported metric."""
    return {n: {"better": directions[n], "unit": METRICS[n].unit, "description": METRICS[n].description} for n in names}
