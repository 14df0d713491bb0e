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

from depth_strategies.core.metrics import METRICS
from depth_strategies.study import stats

ARROW = {"higher": "↑", "lower": "↓"}
"""Header arrow of a metric's better direction."""
SIGNIFICANT = "†"
"""Marks a difference to the baseline whose Holm-adjusted Wilcoxon p-value is below ``stats.ALPHA``."""
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


def summarize(results: Dict[str, Any], runs: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """One row per (scene, method): status, error, and mean / std / n of every metric over views and seeds."""
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
        }
        for metric in metric_names(results):
            values = list(per_view(group, metric).values())
            row[metric] = {
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
                "n": len(values),
            }
        ok = [r for r in group if r["status"] == "ok"]
        for key in ("seconds_per_iteration", "rays_per_second", "cpu_rss_mb", "gpu_mb", "wall_time_s"):
            values = [r["train"][key] for r in ok if r["train"].get(key) is not None]
            row[key] = statistics.fmean(values) if values else None
        fps = [r["render"]["frames_per_second"] for r in ok if r["render"].get("frames_per_second")]
        row["frames_per_second"] = statistics.fmean(fps) if fps else None
        rows.append(row)
    return rows


def compare_to_baseline(results: Dict[str, Any], seed: int = 0) -> List[Dict[str, Any]]:
    """Paired per-view statistics of every method against the baseline, Holm-corrected within each scene."""
    baseline = results["protocol"]["baseline"]
    groups = group_runs(main_runs(results))
    comparisons: List[Dict[str, Any]] = []
    for (scene, method), group in groups.items():
        if method == baseline or (scene, baseline) not in groups:
            continue
        for metric in metric_names(results):
            mine, base = per_view(group, metric), per_view(groups[(scene, baseline)], metric)
            keys = sorted(set(mine) & set(base))
            a, b = stats.paired([mine[k] for k in keys], [base[k] for k in keys])
            diff = a - b
            low, high = stats.bootstrap_mean_ci(diff, seed=seed)
            comparisons.append(
                {
                    "scene": scene,
                    "method": method,
                    "metric": metric,
                    "n": int(diff.size),
                    "mean_difference": float(diff.mean()) if diff.size else float("nan"),
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": stats.wilcoxon_p(diff),
                }
            )
    for scene in {c["scene"] for c in comparisons}:
        rows = [c for c in comparisons if c["scene"] == scene]
        for row, adjusted in zip(rows, stats.holm([c["p_value"] for c in rows])):
            row["p_holm"] = adjusted
    return comparisons


# ------------------------------------------------------------------------------------------- formatting
def _fmt(value: Optional[float], metric: str, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    digits = DECIMALS.get(metric, 3)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _best(rows: List[Dict[str, Any]], metric: str, direction: str) -> Optional[float]:
    means = [r[metric]["mean"] for r in rows if r["status"] == "ok" and r[metric]["mean"] is not None]
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
            if best is not None and cell["mean"] == best and len(rows) > 1:
                text = f"**{text}**"
            comp = lookup.get((row["method"], m))
            if comp is not None and comp["n"]:
                mark = SIGNIFICANT if comp.get("p_holm", float("nan")) < stats.ALPHA else ""
                text += f" ({_fmt(comp['mean_difference'], m, signed=True)}{mark})"
            cells.append(text)
        spi = row["seconds_per_iteration"]
        cells.append(f"{spi:.3f}" if spi else "–")
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stats_table(results: Dict[str, Any], scene: str, comparisons: List[Dict[str, Any]]) -> str:
    """Markdown table of the paired statistics of one scene."""
    rows = [c for c in comparisons if c["scene"] == scene and c["n"]]
    lines = [
        "| method | metric | n | mean difference | 95% CI | Wilcoxon p | Holm p |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        m = c["metric"]
        lines.append(
            f"| {c['method']} | {m} | {c['n']} | {_fmt(c['mean_difference'], m, True)} | "
            f"[{_fmt(c['ci_low'], m, True)}, {_fmt(c['ci_high'], m, True)}] | "
            f"{_p(c['p_value'])} | {_p(c.get('p_holm'))} |"
        )
    return "\n".join(lines)


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
        tables.append((f"Ablation `{name}` on {scene}: {field} of {runs[0]['method'].split('@')[0]}", "\n".join(lines)))
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


def render_markdown(results: Dict[str, Any]) -> str:
    """The whole ``results.md``."""
    protocol = results["protocol"]
    rows = summarize(results)
    comparisons = results.get("comparisons") or compare_to_baseline(results)
    out = [f"# Results: protocol `{protocol['name']}`", ""]
    if protocol.get("description"):
        out += [protocol["description"].strip(), ""]
    machine = results.get("machine", {})
    out += [
        f"Command: `{results.get('command', 'ds-compare')}`  ",
        f"Machine: {machine.get('device', '?')}, {machine.get('cpus', '?')} CPUs; wall time "
        f"{results.get('wall_time_s', 0) / 60:.1f} min; {protocol['iterations']} iterations per run, "
        f"seeds {list(protocol['seeds'])}; software: "
        + ", ".join(
            f"{k} {v}"
            for k, v in results.get("software", {}).items()
            if k in ("depth_strategies", "nerfstudio", "torch")
        ),
        "",
        f"Mean ± std over test views (and seeds). **Bold**: best. In parentheses: difference to "
        f"`{protocol['baseline']}` over the same views; {SIGNIFICANT}: Holm-corrected Wilcoxon p < {stats.ALPHA}.",
        "",
    ]
    for scene in dict.fromkeys(r["scene"] for r in rows):
        scene_rows = [r for r in rows if r["scene"] == scene]
        out += [f"## Scene `{scene}`", "", main_table(results, scene, scene_rows, comparisons), ""]
        table = stats_table(results, scene, comparisons)
        if table.count("\n") > 1:
            out += [
                "### Paired statistics against the baseline",
                "",
                f"Per-view differences (method − {protocol['baseline']}), percentile bootstrap 95% CI of the mean "
                f"({stats.BOOTSTRAP_RESAMPLES} resamples), two-sided Wilcoxon signed-rank test, Holm-Bonferroni over "
                "all rows of the scene.",
                "",
                table,
                "",
            ]
        out += ["### Cost", "", cost_table(scene_rows), "", WALL_TIME_CAVEAT, ""]
    for title, table in sweep_tables(results):
        out += [f"## {title}", "", table, ""]
    failed = [r for r in results["runs"] if r["status"] != "ok"]
    if failed:
        out += ["## Failed runs", ""] + [f"- `{r['run_id']}`: {r.get('error', '')}" for r in failed] + [""]
    return "\n".join(out)


def main_tables(results: Dict[str, Any]) -> str:
    """The main table of every scene (what ``ds-compare`` prints at the end)."""
    rows = summarize(results)
    comparisons = results.get("comparisons") or compare_to_baseline(results)
    blocks = []
    for scene in dict.fromkeys(r["scene"] for r in rows):
        scene_rows = [r for r in rows if r["scene"] == scene]
        blocks.append(f"Scene {scene}:\n" + main_table(results, scene, scene_rows, comparisons))
    return "\n\n".join(blocks)


def render_csv(results: Dict[str, Any]) -> str:
    """``results.csv``: one row per (scene, method, metric) with summary and paired statistics."""
    comparisons = {
        (c["scene"], c["method"], c["metric"]): c for c in results.get("comparisons") or compare_to_baseline(results)
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
