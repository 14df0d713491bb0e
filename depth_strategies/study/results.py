"""``results.json`` of a study: each run's outcome entered under its scene (and condition), the run-level
comparisons, the machine and command, and the files ``ds-compare`` writes from it (``results.json``, ``.csv``,
``.md``, and the figures a caller passes)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from depth_strategies.core.atomic import write_text_atomic
from depth_strategies.core.metrics import EVALUATION_PROTOCOL
from depth_strategies.study import comparisons, report
from depth_strategies.study.protocol import Protocol
from depth_strategies.study.runs import RunSpec
from depth_strategies.study.scene_folders import images_have_alpha

RESULTS_SCHEMA_VERSION = 1
"""Version of the results.json layout."""
Figures = Callable[[Dict[str, Any], Path], List[Path]]
"""Draws the plots and panels of a results dictionary into the output folder; returns the files written. The
``ds-compare`` console script passes :func:`depth_strategies.viz.figures.make_all_figures`: ``viz`` is a layer above
the study, which never imports it (docs/development.md, Layers)."""


@dataclass
class RunOutcome:
    """What became of one run."""

    spec: RunSpec
    result: Dict[str, Any]
    reused: bool = False


def resolve_device(protocol_device: str) -> str:
    """``auto`` -> cuda when available, else cpu."""
    if protocol_device != "auto":
        return protocol_device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def machine_description(device: str) -> Dict[str, Any]:
    """Where the study ran."""
    info: Dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(), "device": device}
    if device == "cuda":
        import torch

        info["device"] = torch.cuda.get_device_name()
    else:
        info["device"] = f"CPU ({platform.processor() or platform.machine()})"
    return info


def assemble_results(
    protocol: Protocol, outcomes: List[RunOutcome], device: str, command: str, wall_time_s: float,
    scene_dirs: Optional[Mapping[str, Path]] = None,
) -> Dict[str, Any]:
    """The results.json dictionary; ``scene_dirs``, the scenes' folders, decide whether a ``path`` scene is described
    as a capture (:func:`capture_scenes`)."""
    runs = []
    software: Dict[str, str] = {}
    for outcome in outcomes:
        spec, result = outcome.spec, outcome.result
        entry = {
            "scene": spec.scene,
            "method": spec.method,
            "seed": spec.seed,
            "run_id": spec.run_id,
            "run_dir": str(Path("runs") / spec.run_id),
            "status": result["status"],
            "error": result.get("error"),
            "sweep": list(spec.sweep) if spec.sweep else None,
            "reused": outcome.reused,
            "train": result.get("train", {}),
            "render": result.get("render", {}),
            "views": result.get("views", []),
            "curve": result.get("curve", []),
            "config": result.get("config"),
            "platform": (result.get("software") or {}).get("platform"),
            "provenance": result.get("provenance"),
            "stale": result.get("stale"),
        }
        software = result.get("software", software)
        runs.extend(condition_entries(protocol, spec, entry))
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "protocol": _protocol_dict(protocol),
        "metrics": comparisons.metric_specs(protocol.metrics, dict(protocol.metrics)),
        "evaluation": evaluation_protocol(protocol, scene_dirs),
        "command": command,
        "machine": machine_description(device),
        "software": software,
        "wall_time_s": wall_time_s,
        "runs": runs,
    }
    results["comparisons"] = comparisons.compare_to_baseline(results)
    return results


CAPTURE_EVALUATION: Dict[str, str] = {
    "background": "none: a capture's images have no alpha and are compared as stored (the model's background "
    "colour only fills what its rays leave unexplained)",
    "ground truth": "8-bit images as stored (JPEG or PNG); predictions in float, not quantised",
    "depth": "depth_l1 etc. on the median termination distance; depth_l1_expected on the expected one; in the "
    "capture's units (metres) after undoing the dataparser's scale; against the sensor's own depth of the test "
    "frames, which is itself noisy",
    "depth mask": "pixels with a depth reading (ds-import-rgbd makes 0, 65535 and readings beyond its maximum "
    "unknown; a generated room's holes are unknown too); no pixel is known empty, so background_accumulation is not "
    "reported",
}
"""What differs for scenes that are captures (``rgbd``: ds-import-rgbd; ``room``: ds-make-room) from
:data:`~depth_strategies.core.metrics.EVALUATION_PROTOCOL`, which describes NeRF-synthetic-style RGBA scenes: the
metrics are computed by the same code, but on other inputs."""


def capture_scenes(protocol: Protocol, scene_dirs: Optional[Mapping[str, Path]] = None) -> List[str]:
    """The protocol's scenes that are captures: images without alpha, depth from a sensor. ``rgbd`` and ``room``
    scenes always; a ``path`` scene where its folder (in ``scene_dirs``) is there to read and its first training
    image has no alpha channel (the model's own rule for ``scene_type: auto``)."""
    dirs = scene_dirs or {}
    return [s.name for s in protocol.scenes
            if s.rgbd is not None or s.room is not None
            or (s.path is not None and s.name in dirs and images_have_alpha(dirs[s.name]) is False)]


def evaluation_protocol(protocol: Protocol, scene_dirs: Optional[Mapping[str, Path]] = None) -> Dict[str, str]:
    """How the protocol's numbers are computed, for results.json and the report: the RGBA description, with
    :data:`CAPTURE_EVALUATION`'s entries where the scenes are captures (both, each naming its scenes, in a
    protocol that mixes them); ``scene_dirs``: the scenes' folders, where known (:func:`capture_scenes`)."""
    captures = capture_scenes(protocol, scene_dirs)
    if not captures:
        return dict(EVALUATION_PROTOCOL)
    if len(captures) == len(protocol.scenes):
        return {**EVALUATION_PROTOCOL, **CAPTURE_EVALUATION}
    others = [s.name for s in protocol.scenes if s.name not in captures]
    return {**EVALUATION_PROTOCOL, **{
        key: f"{', '.join(others)}: {EVALUATION_PROTOCOL[key]}; {', '.join(captures)}: {text}"
        for key, text in CAPTURE_EVALUATION.items()}}


def stored_evaluation(stored: Dict[str, str], protocol: Protocol,
                      scene_dirs: Optional[Mapping[str, Path]] = None) -> Dict[str, str]:
    """The evaluation description a report regenerated from ``stored`` results carries: the stored one (the
    invocation that trained), with the entries that depend on the scene kind (:data:`CAPTURE_EVALUATION`'s keys)
    taken from :func:`evaluation_protocol`: reports before version 0.7 described every scene as RGBA."""
    current = evaluation_protocol(protocol, scene_dirs)
    if current == EVALUATION_PROTOCOL:  # no capture among the scenes
        return dict(stored)
    return {**stored, **{key: current[key] for key in CAPTURE_EVALUATION}}


def condition_entries(protocol: Protocol, spec: RunSpec, entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The results.json entries of one run: grouped under ``scene/condition`` when the protocol has conditions; a
    condition-free run (it reads no training depth) is entered under every condition, marked ``shared``."""
    if not protocol.conditions:
        return [entry]
    if spec.condition is not None:
        return [{**entry, "scene": comparisons.condition_label(spec.scene, spec.condition), "base_scene": spec.scene,
                 "condition": spec.condition}]
    return [
        {**entry, "scene": comparisons.condition_label(spec.scene, c.name), "base_scene": spec.scene,
         "condition": c.name, "shared": True}
        for c in protocol.conditions
    ]


def _protocol_dict(protocol: Protocol) -> Dict[str, Any]:
    data = dataclasses.asdict(protocol)
    return json.loads(json.dumps(data, default=str))


def write_outputs(results: Dict[str, Any], out: Path, figures: Optional[Figures] = None) -> List[Path]:
    """results.json / .csv / .md, and the plots and panels that ``figures`` draws (none without it); returns the
    files written."""
    written = []
    for name, text in (
        ("results.json", json.dumps(results, indent=2)),
        ("results.csv", report.render_csv(results)),
        ("results.md", report.render_markdown(results)),
    ):
        write_text_atomic(out / name, text)
        written.append(out / name)
    if figures is not None:
        written += figures(results, out)
    return written
