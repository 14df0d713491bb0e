"""Videos from a ``ds-compare`` output folder, and the loading and rendering that ``ds-figures`` shares.

* ``ds-video OUT``: renders an orbit around an object scene, or a walk along a capture's own recorded trajectory
  (:mod:`depth_strategies.viz.camera_path`), with every method's trained model and
  writes one video per method (RGB | depth) and a side-by-side comparison (a labelled column per method, an RGB
  row and a depth row on one shared depth colour range). MP4 through ffmpeg (Debian: ``apt install ffmpeg``);
  without ffmpeg, an animated GIF, and the command says so.

Models are loaded from each run's ``config.yml`` exactly as ``ns-render`` loads them, and render without ground
truth.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
import tyro
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.pipelines.base_pipeline import Pipeline
from nerfstudio.utils.eval_utils import eval_setup
from PIL import Image, ImageDraw, ImageFont

from depth_strategies.core.atomic import atomic_path
from depth_strategies.core.colour import FOREGROUND_ACCUMULATION, DepthRange, colourise_depth, depth_range, to_uint8
from depth_strategies.core.model import scene_scale
from depth_strategies.viz.camera_path import (
    DEFAULT_ELEVATION_DEG,
    orbit_poses,
    scene_camera_geometry,
    trajectory_poses,
)

LABEL_HEIGHT = 18
"""Pixels of the label strip above each column of the comparison video."""


class VideoWriterMissing(RuntimeError):
    """ffmpeg is not installed."""


# ------------------------------------------------------------------------------------------- runs
def finished_runs(out: Path, scene: Optional[str] = None, methods: Sequence[str] = ()) -> List[Dict]:
    """The ok, non-sweep, seed-0 runs of a ds-compare output folder (optionally one scene / some methods)."""
    results = json.loads((out / "results.json").read_text())
    runs = [
        r
        for r in results["runs"]
        if r["status"] == "ok" and not r.get("sweep") and r["seed"] == min(x["seed"] for x in results["runs"])
    ]
    if scene is not None:
        runs = [r for r in runs if r["scene"] == scene]
    if methods:
        runs = [r for r in runs if r["method"] in methods]
    if not runs:
        raise SystemExit(f"no finished runs in {out}/results.json" + (f" for scene {scene}" if scene else ""))
    return runs


def load_pipeline(config: Path, test_mode: str = "inference") -> Pipeline:
    """A trained pipeline from its config.yml, the way ns-render / ns-eval load it."""
    _, pipeline, _, _ = eval_setup(config, test_mode=test_mode)  # type: ignore[arg-type]
    pipeline.eval()
    return pipeline


def orbit_cameras(scene: Path, frames: int, width: int, elevation: float, scale: float) -> Cameras:
    """Cameras of an orbit matching the scene (radius, field of view, aspect ratio) at ``width`` pixels."""
    radius, angle_x, w, h = scene_camera_geometry(scene)
    height = max(1, round(width * h / w))
    focal = 0.5 * width / np.tan(0.5 * angle_x)
    poses = np.stack([p[:3] for p in orbit_poses(radius, elevation, frames)])
    poses[:, :3, 3] *= scale
    return Cameras(
        camera_to_worlds=torch.from_numpy(poses).float(),
        fx=focal,
        fy=focal,
        cx=width / 2.0,
        cy=height / 2.0,
        width=width,
        height=height,
        camera_type=CameraType.PERSPECTIVE,
    )


def trajectory_cameras(pipeline: Pipeline, frames: int, width: int) -> Cameras:
    """Cameras along the training cameras' recorded trajectory (:func:`trajectory_poses`), in the pipeline's world
    frame, with the first training camera's intrinsics scaled to ``width`` pixels: a walk through a capture."""
    train = pipeline.datamanager.train_dataset.cameras  # type: ignore[attr-defined]
    poses = torch.from_numpy(trajectory_poses(train.camera_to_worlds.cpu().numpy().astype(np.float64), frames))
    factor = width / float(train.width[0, 0])
    height = max(1, round(float(train.height[0, 0]) * factor))
    return Cameras(
        camera_to_worlds=poses.float(),
        fx=float(train.fx[0, 0]) * factor,
        fy=float(train.fy[0, 0]) * factor,
        cx=float(train.cx[0, 0]) * factor,
        cy=float(train.cy[0, 0]) * factor,
        width=width,
        height=height,
        camera_type=CameraType.PERSPECTIVE,
    )


def video_cameras(pipeline: Pipeline, path: Literal["auto", "orbit", "trajectory"], frames: int, width: int,
                  elevation: float) -> Cameras:
    """The cameras of ``ds-video --path``: an orbit around a Blender-format scene (``auto`` when it has
    ``transforms_train.json``), otherwise the capture's recorded trajectory."""
    scene_dir = Path(pipeline.datamanager.get_datapath())  # type: ignore[attr-defined]
    is_blender = (scene_dir / "transforms_train.json").is_file()
    if path == "orbit" or (path == "auto" and is_blender):
        if not is_blender:
            raise SystemExit(f"ds-video: --path orbit needs a Blender-format scene (transforms_train.json), and "
                             f"{scene_dir} is a capture; use --path trajectory (the default for captures)")
        return orbit_cameras(scene_dir, frames, width, elevation, scene_scale(pipeline.model))
    return trajectory_cameras(pipeline, frames, width)


@torch.no_grad()
def render_frames(pipeline: Pipeline, cameras: Cameras) -> List[Dict[str, np.ndarray]]:
    """RGB, depth (Blender units) and accumulation of every camera."""
    scale = scene_scale(pipeline.model)
    frames = []
    for i in range(len(cameras)):
        outputs = pipeline.model.get_outputs_for_camera(cameras[i : i + 1].to(pipeline.device))
        frames.append(
            {
                "rgb": outputs["rgb"].clamp(0, 1).cpu().numpy(),
                "depth": (outputs["depth"] / scale).cpu().numpy(),
                "accumulation": outputs["accumulation"].cpu().numpy(),
            }
        )
    return frames


# ------------------------------------------------------------------------------------------- composition
def shared_depth_range(frames_by_method: Dict[str, List[Dict[str, np.ndarray]]]) -> DepthRange:
    """One depth range for every method and frame (:func:`depth_strategies.core.colour.depth_range` of the
    rendered foreground: an orbit has no ground truth)."""
    return depth_range(rendered=[(f["depth"], f["accumulation"]) for fs in frames_by_method.values() for f in fs])


def depth_frame(frame: Dict[str, np.ndarray], range_: DepthRange) -> np.ndarray:
    """Colourised depth on ``range_``, background white, uint8 [H, W, 3]."""
    return to_uint8(colourise_depth(frame["depth"], range_, frame["accumulation"] < FOREGROUND_ACCUMULATION))


def rgb_frame(frame: Dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB."""
    return to_uint8(frame["rgb"])


def _label(text: str, width: int) -> np.ndarray:
    strip = Image.new("RGB", (width, LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    box = draw.textbbox((0, 0), text, font=font)
    draw.text(
        ((width - (box[2] - box[0])) / 2, (LABEL_HEIGHT - (box[3] - box[1])) / 2 - box[1]),
        text,
        fill=(0, 0, 0),
        font=font,
    )
    return np.asarray(strip)


def comparison_frames(
    frames_by_method: Dict[str, List[Dict[str, np.ndarray]]], depth_range: Optional[Tuple[float, float]] = None
) -> List[np.ndarray]:
    """Side-by-side frames: one labelled column per method, an RGB row over a depth row (shared range)."""
    range_ = depth_range or shared_depth_range(frames_by_method)
    names = list(frames_by_method)
    count = len(next(iter(frames_by_method.values())))
    out = []
    for k in range(count):
        columns = []
        for name in names:
            frame = frames_by_method[name][k]
            rgb = rgb_frame(frame)
            columns.append(np.concatenate([_label(name, rgb.shape[1]), rgb, depth_frame(frame, range_)], axis=0))
        out.append(np.concatenate(columns, axis=1))
    return out


def method_frames(frames: List[Dict[str, np.ndarray]], depth_range: Tuple[float, float]) -> List[np.ndarray]:
    """One method's video frames: RGB | depth."""
    return [np.concatenate([rgb_frame(f), depth_frame(f, depth_range)], axis=1) for f in frames]


# ------------------------------------------------------------------------------------------- writing
def write_video(frames: List[np.ndarray], path: Path, fps: int) -> Path:
    """MP4 (H.264) through ffmpeg; raises :class:`VideoWriterMissing` when ffmpeg is not installed."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise VideoWriterMissing("ffmpeg is not installed (Debian/Ubuntu: sudo apt install ffmpeg)")
    with atomic_path(path) as tmp:
        _ffmpeg_encode(ffmpeg, frames, tmp, fps)
    return path


def _ffmpeg_encode(ffmpeg: str, frames: List[np.ndarray], target: Path, fps: int) -> None:
    height, width = frames[0].shape[:2]
    pad_h, pad_w = height % 2, width % 2  # yuv420p needs even sizes
    cmd = [
        ffmpeg,
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width + pad_w}x{height + pad_h}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        "18",
        str(target),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for frame in frames:
        proc.stdin.write(np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge").tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {target}")


def write_gif(frames: List[np.ndarray], path: Path, fps: int) -> Path:
    """Animated GIF with Pillow (the fallback without ffmpeg)."""
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def write_animation(frames: List[np.ndarray], stem: Path, fps: int, prefer_mp4: bool = True) -> Path:
    """``stem.mp4`` when ffmpeg is available, else ``stem.gif`` with a warning that says why."""
    if prefer_mp4:
        try:
            return write_video(frames, stem.with_suffix(".mp4"), fps)
        except VideoWriterMissing as err:
            warnings.warn(f"{err}: writing an animated GIF instead of MP4 ({stem.with_suffix('.gif')})", stacklevel=2)
    return write_gif(frames, stem.with_suffix(".gif"), fps)


# ------------------------------------------------------------------------------------------- ds-video
@dataclass(frozen=True)
class VideoArgs:
    """Render an orbit (object scenes) or the recorded trajectory (captures) with every method of a ds-compare output
    and write per-method and comparison videos."""

    out: tyro.conf.Positional[Path]
    """ds-compare output folder (holds results.json)."""
    scene: Optional[str] = None
    """Scene of the comparison (default: every scene)."""
    methods: Tuple[str, ...] = ()
    """Only these methods (default: every finished method)."""
    frames: int = 48
    """Frames of the video."""
    path: Literal["auto", "orbit", "trajectory"] = "auto"
    """Camera path: an orbit around the scene (Blender-format scenes), or along the training cameras' recorded
    trajectory (captures: nerfstudio-data); auto picks by the scene's format."""
    resolution: int = 96
    """Frame width in pixels (rendering on a CPU is slow: keep it small)."""
    elevation: float = DEFAULT_ELEVATION_DEG
    """Orbit elevation in degrees."""
    fps: int = 12
    """Frames per second."""
    gif: bool = False
    """Write GIFs even when ffmpeg is available."""


def make_videos(args: VideoArgs) -> List[Path]:
    """Render and write every video; returns the files."""
    runs = finished_runs(args.out, args.scene, args.methods)
    written = []
    for scene in dict.fromkeys(r["scene"] for r in runs):
        scene_runs = [r for r in runs if r["scene"] == scene]
        frames_by_method = {}
        for run in scene_runs:
            pipeline = load_pipeline(Path(run["config"]))
            cameras = video_cameras(pipeline, args.path, args.frames, args.resolution, args.elevation)
            print(f"ds-video: rendering {args.frames} frames of {run['method']} on {scene}", flush=True)
            frames_by_method[run["method"]] = render_frames(pipeline, cameras)
            del pipeline
        depth_range = shared_depth_range(frames_by_method)
        folder = args.out / "videos"
        folder.mkdir(parents=True, exist_ok=True)
        for method, frames in frames_by_method.items():
            written.append(
                write_animation(
                    method_frames(frames, depth_range), folder / f"{scene}_{method}", args.fps, not args.gif
                )
            )
        written.append(
            write_animation(
                comparison_frames(frames_by_method, depth_range), folder / f"{scene}_comparison", args.fps, not args.gif
            )
        )
    return written


def video_entrypoint() -> None:
    """Console script ``ds-video``."""
    for path in make_videos(tyro.cli(VideoArgs)):
        print(f"ds-video: wrote {path}")
