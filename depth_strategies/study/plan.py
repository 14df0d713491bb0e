"""``ds-compare PROTOCOL --plan``: what a protocol would run and what it would cost, without running anything.

Each run's cost is estimated from the best figure available, and the table says which:

* ``measured``: finished runs of the same method in the output folder (their mean whole-run wall time: training,
  evaluation and rendering);
* ``profile``: training only, iterations x the size profile's measured seconds per iteration on a 2-core CPU
  (``cpu_seconds_per_iteration`` in ``configs/sizes.yaml``, from ``ds-bench``), on the CPU only;
* ``given``: iterations x ``--seconds-per-iteration`` (e.g. what ``scripts/gpu_check.sh`` measured on a GPU);
* ``unknown`` otherwise (nerfacto's default sizes on a GPU have no measured figure in this repository).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

from depth_strategies.methods import size_profile
from depth_strategies.study import provenance
from depth_strategies.study.protocol import Protocol, RunSpec


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
        else:
            seconds, source = None, "unknown"
        rows.append({"run_id": spec.run_id, "iterations": spec.iterations, "device": device, "done": done,
                     "seconds": seconds, "source": source})
    return rows


def render_plan(protocol: Protocol, rows: List[Dict[str, Any]]) -> str:
    """The plan as text: one line per run, then the totals."""
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
    return "\n".join(lines)
