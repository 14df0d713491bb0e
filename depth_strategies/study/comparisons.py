"""Run-level comparisons from ``results.json``: the one grouping of runs and per-view values, the per-seed
differences to the baseline with their paired t and Holm over the declared family, the summaries per (scene, method),
across scenes and of the training budget.

Everything here is a function of the results dictionary (see :mod:`depth_strategies.study.compare` for its
layout); :mod:`depth_strategies.study.tables` and :mod:`depth_strategies.study.report` print it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from depth_strategies.core.appearance import appearance_status
from depth_strategies.core.metrics import DEFAULT_PRIMARY_METRICS, METRICS
from depth_strategies.study import stats

SIGNIFICANT = "†"
"""Marks a difference to the baseline that :func:`significant` accepts: Holm-adjusted paired-t p over seeds below
``stats.ALPHA`` (the training run is the unit)."""


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
    """One row per (scene, method): status, error, the seeds run (``seed_ids``), and for every metric the mean and std
    over test views (each view averaged over seeds first), the number of views, and the std over seeds of each seed's
    mean (the run-to-run spread; None with one seed)."""
    rows = []
    for (scene, method), group in group_runs(main_runs(results) if runs is None else runs).items():
        failed = [r for r in group if r["status"] != "ok"]
        row: Dict[str, Any] = {
            "scene": scene,
            "method": method,
            "seeds": len(group),
            "seed_ids": sorted((r.get("seed") for r in group), key=str),
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


def family_members(results: Mapping[str, Any], groups: Mapping[Tuple[str, str], Any]
                   ) -> Tuple[List[str], List[Tuple[str, str]], List[Tuple[str, str, str]]]:
    """The declared family as Holm corrects over it, from ``results`` and its runs grouped by (scene, method)
    (:func:`group_runs`): the scenes with a baseline run, the declared (method, metric) pairs
    (:func:`declared_family`), and the tests, (scene, method, metric) for every such scene and pair."""
    baseline = results["protocol"]["baseline"]
    scenes = [scene for scene in dict.fromkeys(scene for scene, _ in groups) if (scene, baseline) in groups]
    family = sorted(set(declared_family(results["protocol"], (method for _, method in groups))))
    return scenes, family, [(scene, method, metric) for scene in scenes for method, metric in family]


def family_coverage(results: Dict[str, Any], comparisons: Sequence[Mapping[str, Any]]) -> Tuple[int, int]:
    """(untestable, total): how many of the declared family's tests (:func:`family_members`) have no finite paired-t
    p over seeds in ``comparisons`` (a missing run or fewer than two paired seeds, counted as p = 1 by
    :func:`compare_to_baseline`), and how many tests the family has."""
    _, _, members = family_members(results, group_runs(main_runs(results)))
    finite = {(c["scene"], c["method"], c["metric"]) for c in comparisons if c.get("in_family")
              and c.get("p_value") is not None and math.isfinite(c["p_value"])}
    return sum(member not in finite for member in members), len(members)


def compare_to_baseline(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every method against the baseline in every scene (and condition), with the training run as the unit: each
    seed's mean difference over the views (:func:`seed_differences`), Student's paired t over those seeds
    (:func:`depth_strategies.study.stats.paired_t`), and Holm's correction over the declared family
    (:func:`declared_family`) in **every** scene and condition of the protocol together. A declared test without
    two paired seeds counts as p = 1, so the family, and every mark, does not depend on which runs exist. Tests
    outside the family keep their raw p-value (``in_family`` False, ``p_holm`` None): exploratory. The views stay
    as description: ``n`` (views paired), ``view_std`` (std over views of the seed-averaged differences)."""
    baseline = results["protocol"]["baseline"]
    groups = group_runs(main_runs(results))
    scenes, declared, members = family_members(results, groups)
    family = set(declared)
    comparisons: List[Dict[str, Any]] = []
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



def condition_label(scene: str, condition: str) -> str:
    """The name under which a scene's runs under a condition are grouped in results and tables."""
    return f"{scene}/{condition}"


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
    ``curve_views`` test views, not the whole test set). None for a seed whose run never reached it; seeds whose
    two runs were trained on different platforms are left out, as in the tests (:func:`cross_platform_seeds`)."""
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
        unpaired = set(cross_platform_seeds(runs, groups[(scene, baseline)]))  # as the tests pair seeds
        steps = {run["seed"]: first_reaching_step(run["curve"], metric, targets[run["seed"]][0], direction)
                 for run in runs if run["seed"] in targets and run["seed"] not in unpaired}
        if steps:
            summary.append({"scene": scene, "method": method, "metric": metric, "steps": steps,
                            "baseline_steps": {seed: t[1] for seed, t in targets.items() if seed in steps}})
    return summary



def metric_specs(names: Iterable[str], directions: Dict[str, str]) -> Dict[str, Dict[str, str]]:
    """The ``metrics`` block of results.json: direction, unit and description of each reported metric."""
    return {n: {"better": directions[n], "unit": METRICS[n].unit, "description": METRICS[n].description} for n in names}
