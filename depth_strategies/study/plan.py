"""``ds-compare PROTOCOL --plan``: what a protocol would run and what it would cost, without running anything.

Each run's cost is estimated from the best figure available, and the table says which:

* ``measured``: finished runs of the same method in the output folder (their mean whole-run wall time: training,
  evaluation and rendering);
* ``profile``: training only, iterations x the size profile's measured seconds per iteration on a 2-core CPU
  (``cpu_seconds_per_iteration`` in ``configs/sizes.yaml``, from ``ds-bench``), on the CPU only;
* ``given``: iterations x ``--seconds-per-iteration`` (e.g. what ``scripts/gpu_check.sh`` measured on a GPU);
* ``GPU measurement``: on CUDA at nerfacto's sizes (``sizes: null``), iterations x the method's measured seconds per
  iteration plus a per-run overhead, from ``configs/speeds.yaml`` (measured on one GPU; it names which);
* ``unknown`` otherwise.

With ``--jobs N`` on a GPU the plan also gives the wall time if the N runs sharing the GPU did not slow each other
(a run at nerfacto's sizes is launch-bound and uses a fraction of an H200); that is an assumption, not a
measurement, and the plan says so.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from depth_strategies.methods import SPEEDS_FILE, shipped_config, size_profile
from depth_strategies.study import provenance
from depth_strategies.study.protocol import Protocol
from depth_strategies.study.runs import RunSpec


def measured_wall_times(out: Path) -> Dict[str, List[float]]:
    """Whole-run wall seconds of the finished runs under ``out/runs``, by method name."""
    times: Dict[str, List[float]] = defaultdict(list)
    for path in sorted((out / "runs").rglob("result.json")) if (out / "runs").is_dir() else []:
        try:
            result = json.loads(path.read_text())
        except ValueError:
            continue
        wall = (result.get("train") or {}).get("wall_time_s")
        render = (result.get("render") or {}).get("wall_time_s") or 0.0
        if result.get("status") == "ok" and wall:
            times[str((result.get("run") or {}).get("method"))].append(float(wall) + float(render))
    return times


def gpu_speeds(sizes: Optional[str]) -> Optional[Dict[str, Any]]:
    """The measured CUDA speeds of size profile ``sizes`` (None: nerfacto's sizes) from ``configs/speeds.yaml``, or
    None where none were measured."""
    table = yaml.safe_load(shipped_config(SPEEDS_FILE).read_text()) or {}
    return (table.get("cuda") or {}).get(sizes or "default")


def plan_rows(
    protocol: Protocol, runs: List[RunSpec], out: Path, device: str, seconds_per_iteration: Optional[float] = None
) -> List[Dict[str, Any]]:
    """One row per run: its id, iterations, device, whether it is already done (True: a result with its
    fingerprint; "stale": a result of the same spec made by other code or config, which ds-compare trains again),
    and its estimated seconds with their source (see the module docstring)."""
    measured = measured_wall_times(out)
    profile_rate = None
    if protocol.sizes and device == "cpu":
        profile_rate = size_profile(protocol.sizes).get("cpu_seconds_per_iteration")
    speeds = gpu_speeds(protocol.sizes) if device == "cuda" else None
    regime_conditions = {c.name: bool(c.overrides) for c in protocol.conditions}
    rows = []
    for spec in runs:
        result_path = out / "runs" / spec.run_id / "result.json"
        done: Any = False
        if result_path.is_file():
            try:
                result = json.loads(result_path.read_text())
            except ValueError:
                result = {}
            state, _ = provenance.classify(result, provenance.expected(spec))
            done = {"current": True, "stale": "stale"}.get(state, False)
        if spec.method in measured:
            seconds, source = statistics.fmean(measured[spec.method]), "measured"
        elif seconds_per_iteration is not None:
            seconds, source = spec.iterations * seconds_per_iteration, "given (training only)"
        elif profile_rate is not None:
            seconds, source = spec.iterations * float(profile_rate), "profile (training only)"
            if spec.condition and regime_conditions.get(spec.condition):
                source = "profile (training only; the condition's config overrides are not costed)"
        elif speeds is not None and (spec.base or spec.external) in speeds["seconds_per_iteration"]:
            rate = float(speeds["seconds_per_iteration"][spec.base or spec.external])
            seconds = spec.iterations * rate + float(speeds["run_overhead_seconds"])
            source = f"GPU measurement ({speeds['device']})"
        else:
            seconds, source = None, "unknown"
        rows.append({"run_id": spec.run_id, "iterations": spec.iterations, "device": device, "done": done,
                     "seconds": seconds, "source": source})
    return rows


def render_plan(protocol: Protocol, rows: List[Dict[str, Any]], jobs: int = 1) -> str:
    """The plan as text: one line per run, then the totals (and, with ``jobs`` > 1 on a GPU, the wall time if the
    runs sharing it did not slow each other)."""
    lines = [f"Plan of protocol {protocol.name} ({protocol.source}): {len(rows)} runs", "",
             "| run | iterations | device | status | estimated min | from |", "|---|---|---|---|---|---|"]
    for r in rows:
        minutes = "–" if r["seconds"] is None else f"{r['seconds'] / 60:.1f}"
        status = {True: "done", "stale": "stale: to run again"}.get(r["done"], "to run")
        lines.append(f"| {r['run_id']} | {r['iterations']} | {r['device']} | {status} | {minutes} | {r['source']} |")
    todo = [r for r in rows if r["done"] is not True]
    known = [r["seconds"] for r in todo if r["seconds"] is not None]
    unknown = len(todo) - len(known)
    device = rows[0]["device"] if rows else "cpu"
    hours = sum(known) / 3600
    unit = "GPU-hours" if device == "cuda" else "hours on this machine, one run at a time"
    lines += ["", f"To run: {len(todo)} of {len(rows)} runs; estimated {hours:.2f} {unit}"
              + (f" for {len(known)} of them ({unknown} without an estimate: pass --seconds-per-iteration, "
                 "e.g. from scripts/gpu_check.sh)" if unknown else "") + "."]
    if device == "cuda" and jobs > 1 and known:
        wall = max(sum(known) / jobs, max(known))
        lines.append(f"With --jobs {jobs} on one GPU: about {wall / 60:.1f} minutes of wall time if the {jobs} runs "
                     f"sharing it do not slow each other (an assumption, not measured; the results' wall_time_s "
                     f"says what it was).")
    return "\n".join(lines)
