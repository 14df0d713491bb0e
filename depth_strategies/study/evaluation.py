"""Per-view evaluation of a trained pipeline on its held-out split.

Renders every selected view from its camera (no ground truth reaches the model), scores it with
:func:`depth_strategies.core.metrics.image_metrics` and, optionally, saves the rendered arrays for panels, figures
and videos. Works for every method of the comparison, nerfstudio's depth-nerfacto included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from nerfstudio.pipelines.base_pipeline import Pipeline

from depth_strategies.core.atomic import atomic_path
from depth_strategies.core.metrics import DEPTH_KEY, STATE_KEY, ground_truth_rgb, image_metrics
from depth_strategies.core.model import scene_scale


@dataclass
class ViewResult:
    """Metrics of one rendered test view."""

    index: int
    """Index of the view in the evaluation split."""
    name: str
    """Image file stem (e.g. ``r_3``)."""
    metrics: Dict[str, float]
    """Every metric of :func:`image_metrics`."""
    render_seconds: float
    """Wall time of rendering the view."""
    arrays: Optional[Path] = field(default=None)
    """``.npz`` with the rendered and ground-truth arrays, when saved."""


def view_names(pipeline: Pipeline) -> List[str]:
    """Image file stems of the evaluation split, in order."""
    dataset = pipeline.datamanager.eval_dataset  # type: ignore[attr-defined]
    return [Path(p).stem for p in dataset._dataparser_outputs.image_filenames]


@torch.no_grad()
def evaluate_views(
    pipeline: Pipeline,
    indices: Optional[Sequence[int]] = None,
    save_dir: Optional[Path] = None,
    save_indices: Sequence[int] = (),
) -> List[ViewResult]:
    """Render and score views of the evaluation split (all when ``indices`` is None).

    Views in ``save_indices`` also get their arrays written to ``save_dir/<name>.npz``: rendered ``rgb``,
    ``depth`` (Blender units), ``accumulation``, ground-truth ``gt_rgb`` and, when present, ``gt_depth`` and
    ``gt_state``.
    """
    was_training = pipeline.training
    pipeline.eval()
    loader = pipeline.datamanager.fixed_indices_eval_dataloader  # type: ignore[attr-defined]
    names = view_names(pipeline)
    scale = scene_scale(pipeline.model)
    lpips = getattr(pipeline.model, "lpips", None)
    chosen = range(len(names)) if indices is None else indices
    results = []
    for index in chosen:
        camera, batch = loader.get_camera(image_idx=index)
        if camera.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        outputs = pipeline.model.get_outputs_for_camera(camera)
        if camera.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        result = ViewResult(index, names[index], image_metrics(outputs, batch, scale, lpips), seconds)
        if save_dir is not None and index in save_indices:
            result.arrays = save_view_arrays(save_dir / f"{names[index]}.npz", outputs, batch, scale)
        results.append(result)
    if was_training:
        pipeline.train()
    return results


def save_view_arrays(
    path: Path, outputs: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor], scale: float
) -> Path:
    """Write one view's rendered and ground-truth arrays (compressed ``.npz``, written atomically)."""
    arrays = {
        "rgb": outputs["rgb"].float().cpu().numpy().astype(np.float16),
        "depth": (outputs["depth"] / scale).float().cpu().numpy(),
        "accumulation": outputs["accumulation"].float().cpu().numpy().astype(np.float16),
        "gt_rgb": ground_truth_rgb(batch["image"]).float().cpu().numpy().astype(np.float16),
    }
    if DEPTH_KEY in batch:
        arrays["gt_depth"] = (batch[DEPTH_KEY] / scale).float().cpu().numpy()
        arrays["gt_state"] = batch[STATE_KEY].cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return path
