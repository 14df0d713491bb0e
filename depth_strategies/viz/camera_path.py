"""``ds-camera-path``: an orbit camera path for Blender scenes, in nerfstudio's camera-path JSON; and the path
along a capture's own recorded trajectory (:func:`trajectory_poses`) that ``ds-video`` takes for captures.

Blender scenes ship no camera path; ``ns-render camera-path`` needs one. The orbit matches the dataset: its
radius is the mean distance of the training cameras from the origin, its field of view comes from
``camera_angle_x`` and its resolution from the images (or ``--resolution``). Poses are OpenGL camera-to-world
matrices in the pipeline's world frame, i.e. Blender units times the dataparser's scale factor (``--scale``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tyro
from jaxtyping import Float
from PIL import Image
from scipy.spatial.transform import Rotation, Slerp

from depth_strategies.core.atomic import write_text_atomic
from depth_strategies.scenes.render import look_at

DEFAULT_ELEVATION_DEG = 30.0
"""Elevation of the orbit above the horizontal plane, in degrees (NeRF-synthetic's test orbit is at 30°)."""
DEFAULT_FRAMES = 120
"""Frames of one full orbit."""
DEFAULT_FPS = 24
"""Frames per second of the rendered video."""


def scene_camera_geometry(scene: Path, split: str = "train") -> Tuple[float, float, int, int]:
    """(mean camera distance from the origin, camera_angle_x, image width, image height) of a Blender scene."""
    meta = json.loads((scene / f"transforms_{split}.json").read_text())
    centres = np.array([np.array(f["transform_matrix"])[:3, 3] for f in meta["frames"]])
    first = meta["frames"][0]["file_path"]
    image = Path(first) if Path(first).is_absolute() else scene / first.replace("./", "", 1)
    with Image.open(image.with_name(image.name + ".png")) as img:
        width, height = img.size
    return float(np.linalg.norm(centres, axis=1).mean()), float(meta["camera_angle_x"]), width, height


def vertical_fov_deg(camera_angle_x: float, width: int, height: int) -> float:
    """Vertical field of view in degrees (what nerfstudio's camera paths store) of horizontal ``camera_angle_x``."""
    focal = 0.5 * width / math.tan(0.5 * camera_angle_x)
    return math.degrees(2.0 * math.atan(0.5 * height / focal))


def orbit_poses(radius: float, elevation_deg: float, frames: int) -> List[np.ndarray]:
    """``frames`` camera-to-world matrices on a circle at ``elevation_deg`` around the origin (world +z up)."""
    elevation = math.radians(elevation_deg)
    poses = []
    for k in range(frames):
        azimuth = 2.0 * math.pi * k / frames
        eye = radius * np.array(
            [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
        )
        poses.append(look_at(eye))
    return poses


def trajectory_poses(c2w: Float[np.ndarray, "n 3 4"], frames: int) -> Float[np.ndarray, "frames 3 4"]:
    """``frames`` camera-to-world poses along a recorded trajectory (a capture's cameras in the order they were
    recorded): evenly spaced in the cameras' index from the first camera to the last, each position linearly
    interpolated and each rotation spherically (slerp, Shoemake 1985) between the two recorded cameras around it."""
    if len(c2w) < 2:
        raise ValueError(f"a trajectory needs at least 2 cameras, got {len(c2w)}")
    if frames < 2:
        raise ValueError(f"a trajectory video needs at least 2 frames, got {frames}")
    recorded = np.arange(len(c2w), dtype=float)
    at = np.linspace(0.0, len(c2w) - 1.0, frames)
    rotations = Slerp(recorded, Rotation.from_matrix(c2w[:, :3, :3]))(at).as_matrix()
    positions = np.stack([np.interp(at, recorded, c2w[:, axis, 3]) for axis in range(3)], axis=-1)
    return np.concatenate([rotations, positions[:, :, None]], axis=-1)


def orbit_camera_path(
    radius: float,
    camera_angle_x: float,
    width: int,
    height: int,
    frames: int = DEFAULT_FRAMES,
    elevation_deg: float = DEFAULT_ELEVATION_DEG,
    fps: int = DEFAULT_FPS,
    scale: float = 1.0,
) -> Dict[str, Any]:
    """nerfstudio camera-path JSON (the format ``ns-render camera-path`` and the viewer use) of an orbit."""
    fov = vertical_fov_deg(camera_angle_x, width, height)
    path = []
    for c2w in orbit_poses(radius, elevation_deg, frames):
        c2w = c2w.copy()
        c2w[:3, 3] *= scale
        path.append({"camera_to_world": c2w.flatten().tolist(), "fov": fov, "aspect": width / height})
    return {
        "camera_type": "perspective",
        "render_height": height,
        "render_width": width,
        "camera_path": path,
        "fps": fps,
        "seconds": frames / fps,
        "smoothness_value": 0.0,
        "is_cycle": True,
        "crop": None,
    }


@dataclass(frozen=True)
class CameraPathArgs:
    """Write an orbit camera path around a Blender-format scene for ns-render camera-path."""

    scene: tyro.conf.Positional[Path]
    """Blender-format scene folder (transforms_train.json)."""
    out: tyro.conf.Positional[Path]
    """Camera path JSON to write."""
    frames: int = DEFAULT_FRAMES
    """Frames of the orbit."""
    elevation: float = DEFAULT_ELEVATION_DEG
    """Elevation of the orbit in degrees."""
    radius: Optional[float] = None
    """Orbit radius in Blender units (default: the mean distance of the training cameras)."""
    resolution: Optional[int] = None
    """Render width in pixels (height follows the images' aspect ratio; default: the images' size)."""
    fps: int = DEFAULT_FPS
    """Frames per second."""
    scale: float = 1.0
    """The dataparser's scale factor the model was trained with (blender-data --scale-factor)."""


def entrypoint() -> None:
    """Console script ``ds-camera-path``."""
    args = tyro.cli(CameraPathArgs)
    radius, angle_x, width, height = scene_camera_geometry(args.scene)
    if args.resolution is not None:
        width, height = args.resolution, max(1, round(args.resolution * height / width))
    path = orbit_camera_path(
        args.radius or radius, angle_x, width, height, args.frames, args.elevation, args.fps, args.scale
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(path, indent=2))
    print(
        f"ds-camera-path: wrote {args.out} ({args.frames} frames, radius {args.radius or radius:.3f}, "
        f"elevation {args.elevation}°, {width}x{height}, fov {path['camera_path'][0]['fov']:.2f}°)"
    )
