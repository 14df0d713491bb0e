"""What ``ds-inspect`` writes: the terminal summary (rich), ``inspect.json`` and the contact sheet.

The contact sheet shows, per sampled training image, the image, its depth (``core.colour``'s depth map on the
shared range of every sampled image, white where a pixel has no depth) and its multi-view consistency error
(:func:`depth_strategies.inspect.measure.error_map`, ``core.colour``'s error map, saturating at
:data:`ERROR_SATURATION` relative error, black where no neighbour sees the pixel), drawn with
:mod:`depth_strategies.viz.drawing`'s figure plumbing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from depth_strategies.core import colour
from depth_strategies.core.atomic import atomic_path
from depth_strategies.inspect import measure
from depth_strategies.inspect.load import LoadedData, surfaces
from depth_strategies.inspect.verdict import Finding, Measurements, Recommendation, as_dict
from depth_strategies.viz.drawing import new_figure, save_figure

CONTACT_FRAMES = 4
"""Training images on the contact sheet, evenly spread over the split."""
ERROR_SATURATION = 0.1
"""Relative reprojection error at which the error map saturates (10 % of the depth)."""
PANEL_INCHES = 1.4
"""Width of one panel of the contact sheet."""
TITLE_INCHES = 0.25
"""Height of a panel's title."""
SUMMARY_FRAMES = 12
"""Images listed one by one in the terminal summary (evenly spread; inspect.json lists every one)."""


def sampled(count: int, wanted: int = CONTACT_FRAMES) -> List[int]:
    """``wanted`` indices evenly spread over ``count`` (all of them when there are fewer)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / (wanted - 1))) for i in range(wanted)})


def contact_sheet(data: LoadedData, path: Path, frames: Optional[Sequence[int]] = None) -> Path:
    """Image | depth | consistency error of each of ``frames`` (default :func:`sampled`) of the training split."""
    train = data.train
    frames = list(frames) if frames is not None else sampled(len(train))
    surface = surfaces(train)
    depths = [f.depth for f in train]
    c2ws = np.stack([f.c2w for f in train])
    intrinsics = [f.intrinsics for f in train]
    shown = [train[i] for i in frames]
    range_ = colour.depth_range(np.concatenate([f.depth.ravel() for f in shown]),
                                np.concatenate([surface[i].ravel() for i in frames]))
    h, w = shown[0].depth.shape if shown else (1, 1)
    fig = new_figure(3 * PANEL_INCHES, len(frames) * (PANEL_INCHES * h / w + TITLE_INCHES))
    axes = fig.subplots(len(frames), 3, squeeze=False)
    for row, i in enumerate(frames):
        frame = train[i]
        error = measure.error_map(i, depths, surface, c2ws, intrinsics)
        images = [
            data.rgb(frame),
            colour.colourise_depth(frame.depth, range_, ~surface[i]),
            colour.colourise_error(np.nan_to_num(error), np.isfinite(error), saturate=ERROR_SATURATION),
        ]
        titles = [frame.image.name, f"depth [{range_[0]:.3g}, {range_[1]:.3g}]",
                  f"reprojection error (0-{ERROR_SATURATION:.0%})"]
        for col, (image, title) in enumerate(zip(images, titles)):
            ax = axes[row][col]
            ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=6)
    return save_figure(fig, path)


def result(data: LoadedData, m: Measurements, findings: Sequence[Finding], rec: Recommendation,
           mapping_about: Dict[str, Any]) -> Dict[str, Any]:
    """Everything ``inspect.json`` holds."""
    return as_dict({
        "data": str(data.data),
        "dataparser": data.dataparser,
        "scene_type": data.scene_type,
        "units": {
            "scene_units_per_data_unit": data.dataparser_scale,
            "depth_range_kept_data_units": list(data.depth_range),
            "confidence_min": data.confidence_min,
        },
        "inventory": [as_dict(s) for s in data.splits],
        "measurements": as_dict(m),
        "findings": [as_dict(f) for f in findings],
        "verdict": as_dict(rec),
        "loader_warnings": list(data.warnings),
        "mapping": mapping_about,
    })


def write_json(payload: Dict[str, Any], path: Path) -> Path:
    """``payload`` as indented JSON, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def _pct(value: Optional[float]) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _num(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _figure(choice: Dict[str, Any]) -> str:
    if not choice.get("method"):
        return f"no pick: {choice.get('status')} ({choice.get('why')})"
    text = f"{choice['method']}"
    if choice.get("mean") is not None:
        text += f" {choice['mean']:+.3g}"
        if choice.get("interval"):
            text += f" [{choice['interval'][0]:+.3g}, {choice['interval'][1]:+.3g}]"
    per_seed = choice.get("per_seed") or {}
    if per_seed:
        text += " (per seed " + " / ".join(f"{v:+.3g}" for v in per_seed.values()) + ")"
    return text + f", {choice['status']}: {choice.get('why')}"


def summary(console: Console, data: LoadedData, m: Measurements, findings: Sequence[Finding],
            rec: Recommendation, written: Sequence[Path]) -> None:
    """The terminal summary."""
    console.print(f"[bold]ds-inspect[/bold] {data.data} ({data.dataparser}, {data.scene_type} scene; scene units = "
                  f"data units x {data.dataparser_scale:.4g})")
    table = Table(title="Inventory", show_lines=False)
    for column in ("split", "images", "with depth", "confidence maps", "image (h x w)", "depth (h x w)", "encoding"):
        table.add_column(column)
    for s in data.splits:
        table.add_row(s.split, str(s.frames), str(s.with_depth), str(s.with_confidence),
                      "x".join(map(str, s.image_hw)) if s.image_hw else "–",
                      "x".join(map(str, s.depth_hw)) if s.depth_hw else "–", s.encoding or "–")
    console.print(table)
    console.print(f"depth kept in [{data.depth_range[0]:g}, {data.depth_range[1]:g}] data units; surface depth "
                  f"1-99 %: [{_num(m.depth_range[0] if m.depth_range else None)}, "
                  f"{_num(m.depth_range[1] if m.depth_range else None)}] scene units; coverage {_pct(m.coverage)} of "
                  f"the expected pixels; {_pct(m.inside_box)} of the surface points inside the scene box")
    listed = ("" if len(m.frames) <= SUMMARY_FRAMES
              else f" ({SUMMARY_FRAMES} of {len(m.frames)} images; all in inspect.json)")
    quality = Table(title="Quality of the training depth" + listed)
    for column in ("image", "coverage", "noise", "reproj. error median", "p90", "scale vs neighbours", "flying"):
        quality.add_column(column)
    for f in [m.frames[i] for i in sampled(len(m.frames), SUMMARY_FRAMES)]:
        quality.add_row(f.image, _pct(f.coverage), _pct(f.noise), _pct(f.consistency_median),
                        _pct(f.consistency_p90), _num(f.scale), _pct(f.flying))
    quality.add_row("[bold]all[/bold]", _pct(m.coverage), _pct(m.noise), _pct(m.consistency_median),
                    _pct(m.consistency_p90), f"r = {_num(m.scale_range)}", _pct(m.flying))
    console.print(quality)
    console.print(f"noise {_pct(m.noise)} of the depth ({_num(m.noise_units)} scene units); rounding step "
                  f"{_num(m.quantisation_step)}; upsampled x{_num(m.upsampling_factor)}; neighbours with depth "
                  f"{_pct(m.neighbours[0])} horizontal / {_pct(m.neighbours[1])} vertical")
    console.print("[bold]Found:[/bold] " + "; ".join(f"{f.kind} ({f.evidence})" for f in findings))
    level = f" at {rec.studied_level:g} ({', '.join(rec.conditions)})" if rec.conditions else ""
    console.print(f"[bold]Verdict:[/bold] {rec.kind}{level}")
    console.print(f"  for images (PSNR, dB): {_figure(rec.images)}")
    for loss in rec.images.get("established_losses_elsewhere") or []:
        low, high = loss["interval"]
        console.print(f"    but on {loss['scene']} ({loss['study']}) it cost {loss['mean']:+.3g} [{low:+.3g}, "
                      f"{high:+.3g}] over {loss['seeds']} seeds: an established loss")
    for loss in rec.images.get("established_losses") or []:
        low, high = loss["interval"]
        console.print(f"    {loss['method']} cost {loss['mean']:+.3g} [{low:+.3g}, {high:+.3g}] on {loss['scene']} "
                      f"over {loss['seeds']} seeds: an established loss")
    console.print(f"  for geometry (depth L1): {_figure(rec.geometry)}")
    row = rec.images.get("row")
    geometry_row = rec.geometry.get("row")
    for label, shown in (("rests on", row), ("geometry on", geometry_row if geometry_row != row else None)):
        if shown:
            regime = shown["regime"]
            console.print(f"  {label}: {shown['study']} (protocol {shown['protocol']}, scene {shown['scene']}"
                          f"{', condition ' + shown['condition'] if shown.get('condition') else ''}; "
                          f"{regime['sizes']} sizes, {regime['iterations']} iterations, seeds {regime['seeds']}, "
                          f"{regime['device']})")
    if rec.other_kinds:
        console.print(f"  also found: {', '.join(rec.other_kinds)}; the study's depth there: "
                      f"{row['note'] if row and row.get('note') else 'one kind at a time'}")
    if rec.command:
        console.print(f"[bold]Train:[/bold] {rec.command}")
    if rec.geometry_command:
        console.print(f"[bold]Train for geometry:[/bold] {rec.geometry_command}")
    for path in written:
        console.print(f"wrote {path}")
