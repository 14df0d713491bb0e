"""``ds-bench``: seconds per training iteration of each method, as a ratio to ``depth-baseline``, in one run,
beside nerfstudio's own models at the same sizes (reference rows: ``nerfacto``, ``depth-nerfacto`` as shipped and
``depth-nerfacto-object`` with the object-scene settings).

Timing is a benchmark, not a test: absolute seconds depend on the machine, ratios measured in one process on
the same data and batch size do not (much). Methods are timed in interleaved rounds, each round in a rotated
order (no method always runs first), and each method's ratio is the median over rounds of its time divided by
the baseline's time *in the same round*, so that the machine's slow drifts (a shared machine's speed varies by
tens of per cent within minutes) cancel.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import tyro
from nerfstudio.engine.trainer import TrainerConfig

from depth_strategies.core.atomic import write_text_atomic
from depth_strategies.core.training import TrainingLoop
from depth_strategies.methods import (
    OBJECT_SETTINGS,
    STRATEGIES,
    apply_overrides,
    load_size_profile,
    method_config,
    nerfstudio_reference,
)
from depth_strategies.study.ops import count_training_step
from depth_strategies.study.profile import profile_summary, profile_table

DEFAULT_SIZES = "default"
"""``--sizes default``: the methods' own (GPU) sizes, no profile applied."""
TARGET_RATIO = 1.10
"""Every strategy should cost at most this many times the baseline per iteration."""
BASELINE_TARGET = 1.0
"""depth-baseline should cost at most this many times nerfstudio's nerfacto per iteration, at the same sizes."""
EAGER = {"pipeline.model.compile_hash_grids": False, "pipeline.model.compile_for_rendering": False}
"""No compiled hash grids, whatever the size profile says (the 'cpu' profile compiles them for rendering)."""
AS_SHIPPED = {"pipeline.model.fused_hash_grids": False, **EAGER}
"""nerfstudio's own torch hash grid code, eager, for the reference rows."""
REFERENCES: Dict[str, Callable[[], TrainerConfig]] = {
    "nerfacto": lambda: nerfstudio_reference("nerfacto"),
    "depth-nerfacto": lambda: nerfstudio_reference("depth-nerfacto"),
    "depth-nerfacto-object": lambda: apply_overrides(nerfstudio_reference("depth-nerfacto"), OBJECT_SETTINGS),
}
"""nerfstudio's models (built offline, on our datamanager), timed beside the methods as shipped, with nerfstudio's
own hash grid code (:data:`AS_SHIPPED`; compare ``depth-baseline/nerfstudio-grid`` with ``nerfacto`` for the same
grid code)."""
COMPILED = "depth-baseline+compile"
"""Row of ``--compiled``: depth-baseline with ``compile_hash_grids`` (the first warm-up step compiles)."""
VARIANTS: Dict[str, Dict[str, object]] = {
    COMPILED: {"pipeline.model.compile_hash_grids": True},
    "depth-baseline+compile-render": {"pipeline.model.compile_for_rendering": True},
    "depth-baseline/eager": EAGER,
    "depth-baseline/nerfstudio-grid": AS_SHIPPED,
    "depth-baseline/v0.2": {**AS_SHIPPED, "pipeline.model.sample_inside_box": False},
}
"""Rows of ``--variants``: depth-baseline with implementation fields changed (applied after the size profile).
``/eager`` never compiles its grids; ``/nerfstudio-grid`` computes them with nerfstudio's torch code, eager,
instead of the fused one (same forward values); ``/v0.2`` is the model of version 0.2, before the speed work:
nerfstudio's grid, eager, and a fixed [near, far] on every ray."""


def row_fields(name: str) -> Dict[str, object]:
    """The implementation fields a row fixes whatever the size profile says: :data:`AS_SHIPPED` for a reference,
    the variant's fields for a variant, none for a method."""
    return AS_SHIPPED if name in REFERENCES else VARIANTS.get(name, {})


def bench_config(name: str, sizes: Optional[Dict[str, object]] = None) -> TrainerConfig:
    """The config timed in row ``name`` (a method, a reference or a variant of depth-baseline), at the size profile
    ``sizes``; the row's own fields (:func:`row_fields`) are applied last, so they win over the profile's."""
    if name in REFERENCES:
        config = REFERENCES[name]()
    else:
        config = method_config("depth-baseline" if name in VARIANTS else name)
    return apply_overrides(apply_overrides(config, sizes or {}), row_fields(name))


def build_timers(
    data: Path, methods: List[str], size_profile: str, device: str, warmup: int
) -> Dict[str, TrainingLoop]:
    """One training loop per method on ``data`` at the size profile, each trained ``warmup`` iterations."""
    sizes = {} if size_profile == DEFAULT_SIZES else load_size_profile(size_profile)
    timers = {}
    for name in methods:
        config = apply_overrides(bench_config(name, sizes), {"pipeline.datamanager.data": data,
                                                              "machine.device_type": device})
        timers[name] = TrainingLoop(config, device)
        timers[name].run(warmup)
    return timers


def interleaved(methods: List[str], rounds: int, measure: Callable[[str], float]) -> Dict[str, List[float]]:
    """``measure(name)`` of every method in every round, in an order rotated each round."""
    times: Dict[str, List[float]] = {name: [] for name in methods}
    for r in range(rounds):
        shift = r % len(methods)
        for name in methods[shift:] + methods[:shift]:
            times[name].append(measure(name))
    return times


def benchmark(
    data: Path,
    methods: List[str],
    size_profile: str,
    device: str,
    warmup: int,
    iterations: int,
    rounds: int,
    seed: int = 0,
) -> Dict[str, List[float]]:
    """Seconds per training iteration of each method in each round (interleaved, the order rotated every round)."""
    torch.manual_seed(seed)
    timers = build_timers(data, methods, size_profile, device, warmup)
    return interleaved(methods, rounds, lambda name: timers[name].run(iterations))


def render_seconds(loop: TrainingLoop, view: int = 0) -> float:
    """Wall seconds to render evaluation view ``view`` of ``loop``'s data whole, as ``ns-eval`` and ``ds-compare``
    do (``get_outputs_for_camera``, in evaluation mode, without gradients)."""
    pipeline = loop.pipeline
    camera, _ = pipeline.datamanager.fixed_indices_eval_dataloader.get_camera(image_idx=view)  # type: ignore
    pipeline.eval()
    try:
        with torch.no_grad():
            if camera.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            pipeline.model.get_outputs_for_camera(camera)
            if camera.device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start
    finally:
        pipeline.train()


def render_benchmark(
    data: Path, methods: List[str], size_profile: str, device: str, warmup: int, rounds: int, seed: int = 0
) -> Dict[str, List[float]]:
    """Seconds to render one evaluation view of each method in each round (interleaved, rotated), after ``warmup``
    training iterations (a model renders a fixed number of samples per ray, so its cost does not depend on how
    long it trained)."""
    torch.manual_seed(seed)
    timers = build_timers(data, methods, size_profile, device, warmup)
    for loop in timers.values():
        render_seconds(loop)  # untimed: first-call allocations (and compilation of compiled variants)
    return interleaved(methods, rounds, lambda name: render_seconds(timers[name]))


def op_counts(loops: Dict[str, TrainingLoop]) -> Dict[str, Dict[str, object]]:
    """Per method: the aten ops (of them kernels and views) and host syncs of one training step of its warmed-up
    loop (:func:`depth_strategies.study.ops.count_training_step`), with the syncs by op name."""
    counts = {}
    for name, loop in loops.items():
        count = count_training_step(loop)
        counts[name] = {"ops": count.ops, "kernels": count.kernels, "views": count.views, "syncs": count.total_syncs,
                        "sync_ops": dict(count.syncs)}
    return counts


def profiles(loops: Dict[str, TrainingLoop], steps: int, top: int) -> Dict[str, Dict[str, List[Dict[str, object]]]]:
    """Per method: the ops (and on CUDA the kernels) with the most self time over ``steps`` training steps of its
    warmed-up loop (:func:`depth_strategies.study.profile.profile_summary`)."""
    return {name: profile_summary(loop, steps, top) for name, loop in loops.items()}


def verdict(name: str, result: Dict[str, Tuple[float, float]]) -> str:
    """Whether ``name`` meets its target: a strategy <= TARGET_RATIO x depth-baseline; depth-baseline <=
    BASELINE_TARGET x nerfacto (when nerfacto was timed); references have none."""
    if name in REFERENCES:
        return "reference"
    if name in VARIANTS:
        return "variant of depth-baseline"
    if name == "depth-baseline":
        if "nerfacto" not in result:
            return ""
        ratio = result[name][1] / result["nerfacto"][1]
        return f"{ratio:.3f} x nerfacto: " + ("ok" if ratio <= BASELINE_TARGET else "SLOWER THAN TARGET")
    return "ok" if result[name][1] <= TARGET_RATIO else "SLOWER THAN TARGET"


def report_lines(result: Dict[str, Tuple[float, float]], render: bool = False) -> List[str]:
    """The table ds-bench prints: seconds per iteration (or per rendered view, with views per second), ratio to
    depth-baseline, and the verdict (training only: the targets are per training iteration)."""
    if render:
        lines = [f"{'method':<30} {'s/view':>8} {'views/s':>8} {'ratio':>7}"]
        for name, (seconds, ratio) in result.items():
            lines.append(f"{name:<30} {seconds:8.3f} {1 / seconds:8.3f} {ratio:7.3f}")
        return lines
    lines = [f"{'method':<30} {'s/iter':>8} {'ratio':>7}  targets: strategies <= {TARGET_RATIO} x depth-baseline, "
             f"depth-baseline <= {BASELINE_TARGET} x nerfacto"]
    for name, (seconds, ratio) in result.items():
        lines.append(f"{name:<30} {seconds:8.3f} {ratio:7.3f}  {verdict(name, result)}")
    return lines


def ratios(times: Dict[str, List[float]], baseline: str = "depth-baseline") -> Dict[str, Tuple[float, float]]:
    """(median seconds per iteration, median over rounds of the time / the baseline's time in that round)."""
    base = times[baseline]
    return {
        name: (statistics.median(t), statistics.median(s / b for s, b in zip(t, base))) for name, t in times.items()
    }


@dataclass(frozen=True)
class BenchArgs:
    """Time one training iteration (or, with --render, the rendering of one whole evaluation view) of every
    method and print its ratio to depth-baseline."""

    data: Optional[Path] = None
    """Blender-format scene with depth; default: a small built-in scene made in a temporary folder."""
    methods: Tuple[str, ...] = tuple(STRATEGIES)
    """Methods to time; depth-baseline is always included as the reference."""
    references: Tuple[str, ...] = tuple(REFERENCES)
    """nerfstudio's models timed beside them (none: pass --references with no value)."""
    compiled: bool = False
    """Also time depth-baseline with its hash grids compiled (``pipeline.model.compile_hash_grids``)."""
    variants: Tuple[str, ...] = ()
    """Variants of depth-baseline to time beside it (their fields win over the size profile's):
    depth-baseline+compile, depth-baseline+compile-render, depth-baseline/eager (no compiled grids),
    depth-baseline/nerfstudio-grid (nerfstudio's own torch hash grid, eager), depth-baseline/v0.2 (the model
    before the speed work)."""
    render: bool = False
    """Time rendering one whole evaluation view (seconds per view, views per second) instead of training."""
    sizes: str = "cpu"
    """Size profile from configs/sizes.yaml (batch size, samples per ray, grid), or "default" for the methods' own
    (GPU) sizes; the same for every method."""
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    """Device to time on."""
    warmup: int = 5
    """Untimed iterations per method first."""
    iterations: int = 5
    """Timed iterations per method per round."""
    rounds: int = 8
    """Interleaved rounds (rotated order); medians over rounds are reported. With --render, one view per round."""
    output: Optional[Path] = None
    """Also write the measurements as JSON here."""
    ops: bool = False
    """Also count, for one training step of each method after the warm-up, the aten ops it dispatches (and of them
    the kernels, the ops that are not views) and the host-device synchronisations among them
    (:mod:`depth_strategies.study.ops`; the same on every device), beside the time."""
    profile: Optional[Path] = None
    """Also profile each method's training step with ``torch.profiler`` (after the warm-up) and write, in this
    folder, ``profile.md`` (per method the ops and, on CUDA, the kernels with the most self time per step) and
    ``profile.json`` (the same as data)."""
    profile_steps: int = 5
    """Training steps profiled per method with --profile."""
    profile_top: int = 15
    """Ops listed per method and clock with --profile."""


def entrypoint() -> None:
    """Console script ``ds-bench``."""
    args = tyro.cli(BenchArgs)
    methods = ["depth-baseline"] + [m for m in args.methods if m != "depth-baseline"] + list(args.references)
    methods += [COMPILED] if args.compiled else []
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"ds-bench: unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    methods += [v for v in args.variants if v not in methods]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from depth_strategies.scenes.builtin import make_scene

            data = make_scene(Path(tmp) / "scene", resolution=64, views_train=8, views_val=1, views_test=1)
        if args.render:
            times = render_benchmark(data, methods, args.sizes, args.device, args.warmup, args.rounds)
        else:
            times = benchmark(data, methods, args.sizes, args.device, args.warmup, args.iterations, args.rounds)
        # one set of warmed-up loops for the op counts and the profiles (building them is most of their cost)
        loops = build_timers(data, methods, args.sizes, args.device, args.warmup) \
            if args.ops or args.profile is not None else {}
        counts = op_counts(loops) if args.ops else {}
        profiled = profiles(loops, args.profile_steps, args.profile_top) if args.profile is not None else {}
    result = ratios(times)
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    )
    what = f"{args.rounds} rounds x 1 view" if args.render else f"{args.rounds} rounds x {args.iterations} iterations"
    print(f"ds-bench on {device_name}, sizes '{args.sizes}', {what}")
    for line in report_lines(result, render=args.render):
        print(line)
    if counts:
        base = counts["depth-baseline"]
        print(f"{'method':<30} {'aten ops/step':>13} {'ratio':>7} {'kernels':>8} {'ratio':>7} {'views':>6} "
              f"{'host syncs/step':>15}")
        for name, count in counts.items():
            print(f"{name:<30} {count['ops']:13d} {count['ops'] / base['ops']:7.3f} {count['kernels']:8d} "
                  f"{count['kernels'] / base['kernels']:7.3f} {count['views']:6d} {count['syncs']:15d}")
    if profiled:
        header = [f"# ds-bench --profile on {device_name}, sizes '{args.sizes}', {args.profile_steps} steps per "
                  "method after the warm-up", ""]
        args.profile.mkdir(parents=True, exist_ok=True)
        body = [line for name, summary in profiled.items() for line in profile_table(name, summary)]
        write_text_atomic(args.profile / "profile.md", "\n".join(header + body))
        write_text_atomic(args.profile / "profile.json", json.dumps(
            {"device": device_name, "sizes": args.sizes, "steps": args.profile_steps, "methods": profiled}, indent=2))
        print(f"Profiles: {args.profile / 'profile.md'}")
    if args.output is not None:
        payload = {
            "device": device_name,
            "sizes": args.sizes,
            "measure": "seconds per rendered view" if args.render else "seconds per training iteration",
            "times": times,
            "ratios": {k: v[1] for k, v in result.items()},
            "verdicts": {} if args.render else {k: verdict(k, result) for k in result},
            "op_counts": counts,
        }
        write_text_atomic(args.output, json.dumps(payload, indent=2))
