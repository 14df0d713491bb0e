"""``ds-figures OUT``: per test view of a ``ds-compare`` output, colourised depth and depth-error maps of every
method on one colour range, and the weight distribution along the ray through one pixel for every method, with
the true surface marked: sharp versus smeared surfaces, the thing depth supervision is supposed to change.

Models are loaded from each run's ``config.yml`` exactly as ``ns-render`` loads them, and render without ground
truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import tyro
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.pipelines.base_pipeline import Pipeline
from PIL import Image

from depth_strategies.core.atomic import atomic_path
from depth_strategies.core.colour import (
    FOREGROUND_ACCUMULATION,
    colourise_depth,
    colourise_error,
    depth_range,
    to_uint8,
)
from depth_strategies.core.metrics import SURFACE
from depth_strategies.core.model import scene_scale
from depth_strategies.viz.drawing import new_figure, save_figure
from depth_strategies.viz.video import finished_runs, load_pipeline


@torch.no_grad()
def termination_profile(pipeline: Pipeline, camera: Cameras, pixel: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(sample midpoints in Blender units, weights) of the NeRF level along the ray through ``pixel`` (x, y).

    Rendered like any test view: the model's own sampler, no ground truth.
    """
    model = pipeline.model
    x, y = pixel
    coords = torch.tensor([[y + 0.5, x + 0.5]], dtype=torch.float32)
    bundle = camera.to("cpu").generate_rays(camera_indices=0, coords=coords).to(pipeline.device)
    bundle = model.collider(bundle)
    samples, _, _ = model.proposal_sampler(bundle, density_fns=model.density_fns)
    field_outputs = model.field(samples)
    weights = samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
    scale = scene_scale(pipeline.model)
    mids = ((samples.frustums.starts + samples.frustums.ends) / 2 / scale)[0, :, 0].cpu().numpy()
    return mids, weights[0, :, 0].cpu().numpy()


def default_pixel(arrays: Dict[str, np.ndarray]) -> Tuple[int, int]:
    """A pixel with known surface depth, the one nearest the image centre."""
    state = arrays.get("gt_state")
    h, w = arrays["depth"].shape[:2]
    if state is None or not (state[..., 0] == SURFACE).any():
        return w // 2, h // 2
    ys, xs = np.nonzero(state[..., 0] == SURFACE)
    k = int(np.argmin((ys - h / 2) ** 2 + (xs - w / 2) ** 2))
    return int(xs[k]), int(ys[k])


@dataclass(frozen=True)
class FiguresArgs:
    """Depth, depth-error and weight-distribution figures of every method of a ds-compare output."""

    out: tyro.conf.Positional[Path]
    """ds-compare output folder (holds results.json)."""
    scene: Optional[str] = None
    """Scene (default: every scene)."""
    view: Optional[str] = None
    """Test view name (e.g. r_1; default: the first panel view)."""
    pixel: Optional[Tuple[int, int]] = None
    """Pixel (x y) of the weight plot (default: the surface pixel nearest the centre)."""


def make_figures(args: FiguresArgs) -> List[Path]:
    """Write the figures; returns the files."""
    runs = finished_runs(args.out, args.scene)
    folder = args.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    for scene in dict.fromkeys(r["scene"] for r in runs):
        scene_runs = [r for r in runs if r["scene"] == scene]
        npz = sorted((args.out / scene_runs[0]["run_dir"] / "views").glob("*.npz"))
        if not npz:
            continue
        view = args.view or npz[0].stem
        arrays_by_method = {
            r["method"]: dict(np.load(args.out / r["run_dir"] / "views" / f"{view}.npz"))
            for r in scene_runs
            if (args.out / r["run_dir"] / "views" / f"{view}.npz").is_file()
        }
        first = next(iter(arrays_by_method.values()))
        gt_depth, gt_state = first.get("gt_depth"), first.get("gt_state")
        surface = None if gt_state is None else gt_state == SURFACE
        range_ = depth_range(gt_depth, surface, [(a["depth"], a["accumulation"]) for a in arrays_by_method.values()])
        for method, arrays in arrays_by_method.items():
            depth = arrays["depth"].astype(np.float32)
            background = arrays["accumulation"].astype(np.float32) < FOREGROUND_ACCUMULATION
            vis = colourise_depth(depth, range_, background)
            written.append(_save_png(vis, folder / f"{scene}_{view}_depth_{method}.png"))
            if surface is not None and gt_depth is not None:
                err = colourise_error(depth - gt_depth, surface)
                written.append(_save_png(err, folder / f"{scene}_{view}_depth_error_{method}.png"))
        pixel = args.pixel or default_pixel(first)
        fig = new_figure(7, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        for run in scene_runs:
            pipeline = load_pipeline(Path(run["config"]), test_mode="test")
            names = [Path(p).stem for p in pipeline.datamanager.eval_dataset._dataparser_outputs.image_filenames]
            if view not in names:
                continue
            camera = pipeline.datamanager.eval_dataset.cameras[names.index(view) : names.index(view) + 1]
            t, w = termination_profile(pipeline, camera, pixel)
            ax.plot(t, w, marker=".", markersize=3, linewidth=1.2, label=run["method"])
        if gt_depth is not None and gt_state is not None and gt_state[pixel[1], pixel[0], 0] == SURFACE:
            ax.axvline(float(gt_depth[pixel[1], pixel[0], 0]), color="black", linestyle="--", label="true surface")
        ax.set_xlabel("distance along the ray [Blender units]")
        ax.set_ylabel("weight w_i")
        ax.set_title(f"{scene}, view {view}, pixel (x={pixel[0]}, y={pixel[1]}): where each model stops the ray")
        ax.legend(fontsize=8)
        written.append(save_figure(fig, folder / f"{scene}_{view}_weights_x{pixel[0]}_y{pixel[1]}.png"))
    return written


def _save_png(image: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp)
    return path


def figures_entrypoint() -> None:
    """Console script ``ds-figures``."""
    for path in make_figures(tyro.cli(FiguresArgs)):
        print(f"ds-figures: wrote {path}")
