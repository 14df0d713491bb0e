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

DEFAULT_SIZES = "default"
"""``--sizes default``: the methods' own (GPU) sizes, no profile applied."""
TARGET_RATIO = 1.10
"""Every strategy should cost at most this many times the baseline per iteration."""
BASELINE_TARGET = 1.0
"""depth-baseline should cost at most this many times nerfstudio's nerfacto per iteration, at the same sizes."""
REFERENCES: Dict[str, Callable[[], TrainerConfig]] = {
    "nerfacto": lambda: nerfstudio_reference("nerfacto"),
    "depth-nerfacto": lambda: nerfstudio_reference("depth-nerfacto"),
    "depth-nerfacto-object": lambda: apply_overrides(nerfstudio_reference("depth-nerfacto"), OBJECT_SETTINGS),
}
"""nerfstudio's models (built offline, on our datamanager), timed beside the methods."""
COMPILED = "depth-baseline+compile"
"""Row of ``--compiled``: depth-baseline with ``compile_hash_grids`` (the first warm-up step compiles)."""


def bench_config(name: str) -> TrainerConfig:
    """A registered method's config, or a reference's."""
    if name in REFERENCES:
        return REFERENCES[name]()
    if name == COMPILED:
        return apply_overrides(method_config("depth-baseline"), {"pipeline.model.compile_hash_grids": True})
    return method_config(name)


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
    """Seconds per iteration of each method in each round (interleaved, the order rotated every round)."""
    torch.manual_seed(seed)
    sizes = {} if size_profile == DEFAULT_SIZES else load_size_profile(size_profile)
    timers = {}
    for name in methods:
        config = apply_overrides(bench_config(name), sizes)
        config = apply_overrides(config, {"pipeline.datamanager.data": data, "machine.device_type": device})
        timers[name] = TrainingLoop(config, device)
        timers[name].run(warmup)
    times: Dict[str, List[float]] = {name: [] for name in methods}
    for r in range(rounds):
        shift = r % len(methods)
        for name in methods[shift:] + methods[:shift]:
            times[name].append(timers[name].run(iterations))
    return times


def verdict(name: str, result: Dict[str, Tuple[float, float]]) -> str:
    """Whether ``name`` meets its target: a strategy <= TARGET_RATIO x depth-baseline; depth-baseline <=
    BASELINE_TARGET x nerfacto (when nerfacto was timed); references have none."""
    if name in REFERENCES:
        return "reference"
    if name == COMPILED:
        return "compiled variant of depth-baseline"
    if name == "depth-baseline":
        if "nerfacto" not in result:
            return ""
        ratio = result[name][1] / result["nerfacto"][1]
        return f"{ratio:.3f} x nerfacto: " + ("ok" if ratio <= BASELINE_TARGET else "SLOWER THAN TARGET")
    return "ok" if result[name][1] <= TARGET_RATIO else "SLOWER THAN TARGET"


def report_lines(result: Dict[str, Tuple[float, float]]) -> List[str]:
    """The table ds-bench prints: seconds per iteration, ratio to depth-baseline, and the verdict."""
    lines = [f"{'method':<22} {'s/iter':>8} {'ratio':>7}  targets: strategies <= {TARGET_RATIO} x depth-baseline, "
             f"depth-baseline <= {BASELINE_TARGET} x nerfacto"]
    for name, (seconds, ratio) in result.items():
        lines.append(f"{name:<22} {seconds:8.3f} {ratio:7.3f}  {verdict(name, result)}")
    return lines


def ratios(times: Dict[str, List[float]], baseline: str = "depth-baseline") -> Dict[str, Tuple[float, float]]:
    """(median seconds per iteration, median over rounds of the time / the baseline's time in that round)."""
    base = times[baseline]
    return {
        name: (statistics.median(t), statistics.median(s / b for s, b in zip(t, base))) for name, t in times.items()
    }


@dataclass(frozen=True)
class BenchArgs:
    """Time one training iteration of every method and print its ratio to depth-baseline."""

    data: Optional[Path] = None
    """Blender-format scene with depth; default: a small built-in scene made in a temporary folder."""
    methods: Tuple[str, ...] = tuple(STRATEGIES)
    """Methods to time; depth-baseline is always included as the reference."""
    references: Tuple[str, ...] = tuple(REFERENCES)
    """nerfstudio's models timed beside them (none: pass --references with no value)."""
    compiled: bool = False
    """Also time depth-baseline with its hash grids compiled (``pipeline.model.compile_hash_grids``)."""
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
    """Interleaved rounds (rotated order); medians over rounds are reported."""
    output: Optional[Path] = None
    """Also write the measurements as JSON here."""


def entrypoint() -> None:
    """Console script ``ds-bench``."""
    args = tyro.cli(BenchArgs)
    methods = ["depth-baseline"] + [m for m in args.methods if m != "depth-baseline"] + list(args.references)
    methods += [COMPILED] if args.compiled else []
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from depth_strategies.scenes.builtin import make_scene

            data = make_scene(Path(tmp) / "scene", resolution=64, views_train=8, views_val=1, views_test=1)
        times = benchmark(data, methods, args.sizes, args.device, args.warmup, args.iterations, args.rounds)
    result = ratios(times)
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"ds-bench on {device_name}, sizes '{args.sizes}', {args.rounds} rounds x {args.iterations} iterations")
    for line in report_lines(result):
        print(line)
    if args.output is not None:
        payload = {
            "device": device_name,
            "sizes": args.sizes,
            "times": times,
            "ratios": {k: v[1] for k, v in result.items()},
            "verdicts": {k: verdict(k, result) for k in result},
        }
        write_text_atomic(args.output, json.dumps(payload, indent=2))
