"""``results.md`` and ``results.csv`` from ``results.json``: the whole report, put together from the run-level
comparisons (:mod:`depth_strategies.study.comparisons`), the tables (:mod:`depth_strategies.study.tables`) and the
robustness summaries (:mod:`depth_strategies.study.robustness`).

Everything here is a function of the results dictionary (see :mod:`depth_strategies.study.compare` for its
layout), so the report can be regenerated from a results file alone (``ds-compare --report-only``).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Mapping

from depth_strategies.study import stats
from depth_strategies.study.comparisons import (
    COLLAPSED,
    SIGNIFICANT,
    better,
    compare_to_baseline,
    family_coverage,
    metric_names,
    primary_metrics,
    summarize,
)
from depth_strategies.study.robustness import robustness_tables
from depth_strategies.study.tables import (
    WALL_TIME_CAVEAT,
    across_scenes_table,
    budget_table,
    cost_table,
    depth_use_lines,
    evaluation_lines,
    main_table,
    spread_table,
    stats_table,
    sweep_tables,
)


def missing_lines(results: Dict[str, Any]) -> List[str]:
    """The runs of the protocol this report lacks (``ds-compare --report-only`` on a study still running)."""
    missing = results.get("missing") or []
    if not missing:
        return []
    shown = ", ".join(f"`{m}`" for m in missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return [f"**Incomplete**: {len(missing)} runs of the protocol have no finished result yet ({shown}); the "
            "tables use the runs that finished, and a method or seed without its runs is left out of the pairs.", ""]


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
        *([f"Report: `{results['report_command']}`, from the stored runs; the command, machine and wall time "
           f"around it are those of the last invocation that trained  "] if results.get("report_command") else []),
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
        *missing_lines(results),
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
                *depth_use_lines(protocol, {str(r["method"]) for r in results.get("runs", [])} or None), ""]
    if results.get("evaluation"):
        out += ["Evaluation protocol:", "", *evaluation_lines(results), ""]
    untestable, family_size = family_coverage(results, comparisons)
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
                f"(a missing run, or fewer than two seeds, counts as p = 1: {untestable} of its {family_size} tests "
                "here); other rows are exploratory. Views: how many test views were paired, and the std over them of "
                "the difference (a description, not replicates).",
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

