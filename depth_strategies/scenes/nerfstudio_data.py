"""``ds-to-nerfstudio-data``: a Blender-format scene with depth as a ``nerfstudio-data`` scene.

nerfstudio's Blender parser reads no depth, so a user who wants nerfstudio's own ``depth-nerfacto`` on Blender
data converts it to nerfstudio's format, whose parser reads a ``depth_file_path`` per frame and rescales the poses
into its unit cube. This writes that conversion without copying an image:

* ``transforms.json``: the intrinsics (from ``camera_angle_x`` and the image size), every frame of the train, val
  and test splits with its Blender camera-to-world matrix (nerfstudio's convention too) and its image by absolute
  path, and ``train_filenames`` / ``val_filenames`` / ``test_filenames`` so that the splits stay those of the
  source;
* ``depth/<split>_<name>.png``: 16-bit z-depth in millimetres (nerfstudio's default ``depth_unit_scale_factor``,
  1e-3), 0 wherever the source's depth is not a known surface (the background, and silhouette pixels whose depth
  mixes the surface with the background: :func:`depth_strategies.core.data.depth_states`).

The depth is read exactly as the ``depth-*`` methods read it (:class:`depth_strategies.core.data.DepthDataset`),
so both sides of a comparison see the same ground truth.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import tyro
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from PIL import Image

from depth_strategies.core.atomic import atomic_path, write_text_atomic
from depth_strategies.core.data import DepthDataset, DepthSource, DepthState, pixel_direction_norms

SPLITS = ("train", "val", "test")
"""Splits of a Blender-format scene that are converted (those whose transforms json exists)."""
MILLIMETRES_PER_UNIT = 1000.0
"""Depth PNG values per Blender unit: nerfstudio-data's default depth_unit_scale_factor is 1e-3."""
MAX_DEPTH_PNG = 2**16 - 1
"""Largest value of a 16-bit PNG: 65.535 Blender units at millimetre resolution."""
DONE_MARKER = "transforms.json"
"""Written last: a folder that has it is a finished conversion."""


def is_nerfstudio_data(scene_dir: Path) -> bool:
    """Whether a scene folder is nerfstudio-data (``transforms.json``) rather than Blender format."""
    return (Path(scene_dir) / "transforms.json").is_file() and not (Path(scene_dir) / "transforms_train.json").is_file()


def split_depths(source: Path, split: str) -> DepthDataset:
    """The split's images with the ray depth and state of every pixel, read as the ``depth-*`` methods read them."""
    outputs = BlenderDataParserConfig(data=source).setup().get_dataparser_outputs(split=split)
    meta = json.loads((source / f"transforms_{split}.json").read_text())
    frames = {Path(img).resolve(): frame for frame, img in zip(meta.get("frames", []), outputs.image_filenames)}
    return DepthDataset(outputs, source=DepthSource(split=split, requirement="required", frames=frames, meta=meta,
                                                    transforms_dir=source))


def z_depth_millimetres(ray_depth: np.ndarray, state: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                        ) -> np.ndarray:
    """16-bit z-depth in millimetres of a ray-distance map (Blender units): z = r / |(u + 0.5 - cx) / fx,
    (v + 0.5 - cy) / fy, 1| (pixel centres, the inverse of how :class:`DepthDataset` reads z-depth); 0, nerfstudio's
    "no depth", wherever the state is not a known surface."""
    height, width = ray_depth.shape
    z = ray_depth / pixel_direction_norms(fx, fy, cx, cy, height, width)
    mm = np.rint(z * MILLIMETRES_PER_UNIT)
    if np.any(mm[state == DepthState.SURFACE] > MAX_DEPTH_PNG):
        raise ValueError(f"depth beyond {MAX_DEPTH_PNG / MILLIMETRES_PER_UNIT} units does not fit a 16-bit PNG in mm")
    return np.where(state == DepthState.SURFACE, mm, 0).astype(np.uint16)


def to_nerfstudio_data(source: Path, destination: Path) -> Path:
    """Convert the Blender-format scene ``source`` (with depth for every split) into ``destination``; returns it.

    A finished conversion (``transforms.json`` present) is reused as it is.
    """
    source, destination = Path(source).resolve(), Path(destination)
    if (destination / DONE_MARKER).is_file():
        return destination
    splits = [s for s in SPLITS if (source / f"transforms_{s}.json").is_file()]
    if "train" not in splits:
        raise FileNotFoundError(f"{source / 'transforms_train.json'} is missing: not a Blender-format scene")
    depth_dir = destination / "depth"
    if depth_dir.exists():
        shutil.rmtree(depth_dir)  # left by an interrupted conversion
    depth_dir.mkdir(parents=True)
    frames: List[Dict[str, Any]] = []
    names: Dict[str, List[str]] = {s: [] for s in splits}
    intrinsics: Dict[str, Any] = {}
    for split in splits:
        dataset = split_depths(source, split)
        cameras = dataset.cameras
        assert dataset.depths is not None and dataset.states is not None
        for i, image in enumerate(dataset._dataparser_outputs.image_filenames):
            fx, fy = float(cameras.fx[i]), float(cameras.fy[i])
            cx, cy = float(cameras.cx[i]), float(cameras.cy[i])
            camera = {"fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": int(cameras.width[i]),
                      "h": int(cameras.height[i])}
            intrinsics = intrinsics or camera
            if camera != intrinsics:
                raise ValueError(f"{image}: intrinsics differ from the first image's; nerfstudio-data needs one camera")
            depth = z_depth_millimetres(dataset.depths[i, ..., 0].numpy(), dataset.states[i, ..., 0].numpy(),
                                        fx, fy, cx, cy)
            depth_path = depth_dir / f"{split}_{Path(image).stem}.png"
            with atomic_path(depth_path) as tmp:
                Image.fromarray(depth).save(tmp, format="PNG")
            c2w = np.eye(4)
            c2w[:3] = cameras.camera_to_worlds[i].numpy()
            frames.append({"file_path": str(Path(image).resolve()), "depth_file_path": str(depth_path.relative_to(
                destination)), "transform_matrix": c2w.tolist()})
            names[split].append(str(Path(image).resolve()))
    meta = {**intrinsics, "camera_model": "OPENCV", "frames": frames,
            **{f"{split}_filenames": files for split, files in names.items()}}
    write_text_atomic(destination / DONE_MARKER, json.dumps(meta, indent=1))
    return destination


@dataclass(frozen=True)
class ConvertArgs:
    """Write a Blender-format scene with depth as a nerfstudio-data scene (transforms.json, 16-bit mm depth PNGs;
    images are referenced, not copied), for nerfstudio's own depth-nerfacto."""

    source: tyro.conf.Positional[Path]
    """Blender-format scene folder (transforms_{train,val,test}.json, images, depth maps)."""
    destination: tyro.conf.Positional[Path]
    """Output folder."""


def entrypoint() -> None:
    """Console script ``ds-to-nerfstudio-data``."""
    args = tyro.cli(ConvertArgs)
    out = to_nerfstudio_data(args.source, args.destination)
    print(f"wrote {out / DONE_MARKER}; train it with: ns-train depth-nerfacto --pipeline.model.background-color white "
          f"nerfstudio-data --data {out}")
