"""Where a training step's time goes: ``torch.profiler`` over a few training steps of each method, summarised as the
ops (and, on CUDA, the kernels) with the most self time per step.

:mod:`depth_strategies.study.ops` counts what a step dispatches, the same on every device; this module measures what
those ops cost on the device at hand. ``ds-bench --profile DIR`` writes one table per method, and
``scripts/gpu_check.sh`` runs it on a GPU so that a GPU run shows which kernels and host-side ops the guided methods
add to the baseline's step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Literal

from torch.profiler import ProfilerActivity, profile

Clock = Literal["cpu", "device"]
"""Which self time ranks the ops: the host's (``cpu``; the Python and dispatch side, and every op on the CPU) or the
accelerator's (``device``; the CUDA kernels)."""


@dataclass(frozen=True)
class OpTime:
    """One op (or CUDA kernel) of a profiled training step, per step."""

    name: str
    """The aten op or kernel name as the profiler records it."""
    calls: float
    """Calls per training step."""
    self_cpu_ms: float
    """Host time spent in the op itself (not in the ops it calls), milliseconds per step."""
    self_device_ms: float
    """Accelerator time of the op's own kernels, milliseconds per step (0 on the CPU)."""
    share: float
    """Its fraction of the step's total self time on the ranking clock (0-1)."""


def top_ops(events: Iterable[Any], steps: int, clock: Clock = "cpu", top: int = 15) -> List[OpTime]:
    """The ``top`` entries of a profiler's ``key_averages()`` (anything with ``key``, ``count``,
    ``self_cpu_time_total`` and ``self_device_time_total`` in microseconds) with the most self time on ``clock``,
    per training step over ``steps`` profiled steps. Self times add up to the step's total, so ``share`` is each op's
    fraction of it; entries with no time on ``clock`` are left out."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    events = list(events)
    attribute = "self_cpu_time_total" if clock == "cpu" else "self_device_time_total"
    total = sum(getattr(e, attribute) for e in events)
    ranked = sorted((e for e in events if getattr(e, attribute) > 0), key=lambda e: -getattr(e, attribute))
    return [
        OpTime(name=e.key, calls=e.count / steps, self_cpu_ms=e.self_cpu_time_total / 1000 / steps,
               self_device_ms=e.self_device_time_total / 1000 / steps, share=getattr(e, attribute) / total)
        for e in ranked[:top]
    ]


def profile_steps(loop: Any, steps: int) -> Any:
    """``key_averages()`` of ``steps`` training steps of ``loop``
    (:class:`depth_strategies.core.training.TrainingLoop`, the step ``ns-train`` runs), with CUDA activity when the
    loop runs on a CUDA device."""
    activities = [ProfilerActivity.CPU]
    if loop.device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as profiler:
        loop.run(steps)
    return profiler.key_averages()


def profile_summary(loop: Any, steps: int, top: int = 15) -> Dict[str, List[Dict[str, object]]]:
    """The top host-side ops and, on CUDA, the top kernels of ``steps`` training steps of ``loop``, as plain data."""
    averages = profile_steps(loop, steps)
    summary = {"cpu": [asdict(op) for op in top_ops(averages, steps, "cpu", top)]}
    if loop.device.startswith("cuda"):  # profile_steps recorded the CUDA activity
        summary["device"] = [asdict(op) for op in top_ops(averages, steps, "device", top)]
    return summary


def profile_table(method: str, summary: Dict[str, List[Dict[str, object]]]) -> List[str]:
    """Markdown lines: per clock, the ranked ops of ``method`` with calls, self times per step and shares."""
    lines = []
    for clock, ops in summary.items():
        title = "CUDA kernels and ops by device self time" if clock == "device" else "ops by host (CPU) self time"
        lines += [f"### {method}: {title}, per training step", "",
                  "| op | calls | self CPU ms | self device ms | share |", "|---|---:|---:|---:|---:|"]
        lines += [f"| `{op['name']}` | {op['calls']:.1f} | {op['self_cpu_ms']:.3f} | {op['self_device_ms']:.3f} "
                  f"| {100 * op['share']:.1f} % |" for op in ops]
        lines.append("")
    return lines
