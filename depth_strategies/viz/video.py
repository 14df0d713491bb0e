"""Videos and depth figures from a ``ds-compare`` output folder.

* ``ds-video OUT``: renders an orbit (:mod:`depth_strategies.viz.camera_path`) with every method's trained model and
  writes one video per method (RGB | depth) and a side-by-side comparison (a labelled column per method, an RGB
  row and a depth row on one shared depth colour range). MP4 through ffmpeg (Debian: ``apt install ffmpeg``);
  without ffmpeg, an animated GIF, and the command says so.
* ``ds-figures OUT``: per test view, colourised depth and depth-error maps of every method, and the weight
  distribution along the ray through one pixel for every method, with the true surface marked: sharp versus
  smeared surfaces, the thing depth supervision is supposed to change.

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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import tyro
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.pipelines.base_pipeline import Pipeline
from nerfstudio.utils.eval_utils import eval_setup
from PIL import Image, ImageDraw, ImageFont

from depth_strategies.core.colour import DEPTH_ERROR_RANGE, colourise_depth, colourise_error
from depth_strategies.study.evaluation import scene_scale_of
from depth_strategies.viz.camera_path import DEFAULT_ELEVATION_DEG, orbit_poses, scene_camera_geometry

LABEL_HEIGHT = 18
"""Pixels of the label strip above each column of the comparison video."""
BACKGROUND_ACCUMULATION = 0.5
"""Pixels whose accumulation is below this are background: drawn white in depth frames."""


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


@torch.no_grad()
def render_frames(pipeline: Pipeline, cameras: Cameras) -> List[Dict[str, np.ndarray]]:
    """RGB, depth (Blender units) and accumulation of every camera."""
    scale = scene_scale_of(pipeline)
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
def shared_depth_range(frames_by_method: Dict[str, List[Dict[str, np.ndarray]]]) -> Tuple[float, float]:
    """One depth range for every method and frame: 2nd-98th percentile of foreground depth."""
    values = np.concatenate(
        [
            f["depth"][f["accumulation"] > BACKGROUND_ACCUMULATION]
            for frames in frames_by_method.values()
            for f in frames
        ]
        or [np.array([2.0, 6.0])]
    )
    if values.size == 0:
        return 2.0, 6.0
    low, high = np.percentile(values, [2, 98])
    return float(low), float(max(high, low + 1e-3))


def depth_frame(frame: Dict[str, np.ndarray], near: float, far: float) -> np.ndarray:
    """Colourised depth on [near, far], background white, uint8 [H, W, 3]."""
    depth = torch.from_numpy(frame["depth"]).float()
    vis = colourise_depth(depth, near, far).numpy()
    vis[frame["accumulation"][..., 0] < BACKGROUND_ACCUMULATION] = 1.0
    return (vis * 255).round().astype(np.uint8)


def rgb_frame(frame: Dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB."""
    return (np.clip(frame["rgb"], 0, 1) * 255).round().astype(np.uint8)


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
    near, far = depth_range or shared_depth_range(frames_by_method)
    names = list(frames_by_method)
    count = len(next(iter(frames_by_method.values())))
    out = []
    for k in range(count):
        columns = []
        for name in names:
            frame = frames_by_method[name][k]
            rgb = rgb_frame(frame)
            columns.append(np.concatenate([_label(name, rgb.shape[1]), rgb, depth_frame(frame, near, far)], axis=0))
        out.append(np.concatenate(columns, axis=1))
    return out


def method_frames(frames: List[Dict[str, np.ndarray]], depth_range: Tuple[float, float]) -> List[np.ndarray]:
    """One method's video frames: RGB | depth."""
    near, far = depth_range
    return [np.concatenate([rgb_frame(f), depth_frame(f, near, far)], axis=1) for f in frames]


# ------------------------------------------------------------------------------------------- writing
def write_video(frames: List[np.ndarray], path: Path, fps: int) -> Path:
    """MP4 (H.264) through ffmpeg; raises :class:`VideoWriterMissing` when ffmpeg is not installed."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise VideoWriterMissing("ffmpeg is not installed (Debian/Ubuntu: sudo apt install ffmpeg)")
    height, width = frames[0].shape[:2]
    pad_h, pad_w = height % 2, width % 2  # yuv420p needs even sizes
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
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
        str(tmp),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for frame in frames:
        proc.stdin.write(np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge").tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}")
    tmp.replace(path)
    return path


def write_gif(frames: List[np.ndarray], path: Path, fps: int) -> Path:
    """Animated GIF with Pillow (the fallback without ffmpeg)."""
    tmp = path.with_name(f".{path.stem}.tmp.gif")
    images = [Image.fromarray(f) for f in frames]
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    tmp.replace(path)
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
    """Render an orbit with every method of a ds-compare output and write per-method and comparison videos."""

    out: tyro.conf.Positional[Path]
    """ds-compare output folder (holds results.json)."""
    scene: Optional[str] = None
    """Scene of the comparison (default: every scene)."""
    methods: Tuple[str, ...] = ()
    """Only these methods (default: every finished method)."""
    frames: int = 48
    """Frames of the orbit."""
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
    results = json.loads((args.out / "results.json").read_text())
    written = []
    for scene in dict.fromkeys(r["scene"] for r in runs):
        scene_runs = [r for r in runs if r["scene"] == scene]
        frames_by_method = {}
        for run in scene_runs:
            pipeline = load_pipeline(Path(run["config"]))
            scene_dir = Path(pipeline.datamanager.get_datapath())  # type: ignore[attr-defined]
            cameras = orbit_cameras(scene_dir, args.frames, args.resolution, args.elevation, scene_scale_of(pipeline))
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
    del results
    return written


def video_entrypoint() -> None:
    """Console script ``ds-video``."""
    for path in make_videos(tyro.cli(VideoArgs)):
        print(f"ds-video: wrote {path}")


# ------------------------------------------------------------------------------------------- ds-figures
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
    from nerfstudio.field_components.field_heads import FieldHeadNames

    weights = samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
    scale = scene_scale_of(pipeline)
    mids = ((samples.frustums.starts + samples.frustums.ends) / 2 / scale)[0, :, 0].cpu().numpy()
    return mids, weights[0, :, 0].cpu().numpy()


def default_pixel(arrays: Dict[str, np.ndarray]) -> Tuple[int, int]:
    """A pixel with known surface depth, the one nearest the image centre."""
    state = arrays.get("gt_state")
    h, w = arrays["depth"].shape[:2]
    if state is None or not (state[..., 0] == 1).any():
        return w // 2, h // 2
    ys, xs = np.nonzero(state[..., 0] == 1)
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
        surface = None if gt_state is None else torch.from_numpy(gt_state == 1)
        near, far = _figure_range(first)
        for method, arrays in arrays_by_method.items():
            depth = torch.from_numpy(arrays["depth"]).float()
            vis = colourise_depth(depth, near, far).numpy()
            vis[arrays["accumulation"][..., 0].astype(np.float32) < BACKGROUND_ACCUMULATION] = 1.0
            written.append(_save_png(vis, folder / f"{scene}_{view}_depth_{method}.png"))
            if surface is not None and gt_depth is not None:
                err = colourise_error(depth - torch.from_numpy(gt_depth).float(), surface, DEPTH_ERROR_RANGE).numpy()
                written.append(_save_png(err, folder / f"{scene}_{view}_depth_error_{method}.png"))
        pixel = args.pixel or default_pixel(first)
        fig = Figure(figsize=(7, 3.6), dpi=130)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for run in scene_runs:
            pipeline = load_pipeline(Path(run["config"]), test_mode="test")
            names = [Path(p).stem for p in pipeline.datamanager.eval_dataset._dataparser_outputs.image_filenames]
            if view not in names:
                continue
            camera = pipeline.datamanager.eval_dataset.cameras[names.index(view) : names.index(view) + 1]
            t, w = termination_profile(pipeline, camera, pixel)
            ax.plot(t, w, marker=".", markersize=3, linewidth=1.2, label=run["method"])
        if gt_depth is not None and gt_state is not None and gt_state[pixel[1], pixel[0], 0] == 1:
            ax.axvline(float(gt_depth[pixel[1], pixel[0], 0]), color="black", linestyle="--", label="true surface")
        ax.set_xlabel("distance along the ray [Blender units]")
        ax.set_ylabel("weight w_i")
        ax.set_title(f"{scene}, view {view}, pixel (x={pixel[0]}, y={pixel[1]}): where each model stops the ray")
        ax.legend(fontsize=8)
        fig.tight_layout()
        target = folder / f"{scene}_{view}_weights_x{pixel[0]}_y{pixel[1]}.png"
        tmp = target.with_name(f".{target.stem}.tmp.png")
        fig.savefig(tmp)
        tmp.replace(target)
        written.append(target)
    return written


def _figure_range(arrays: Dict[str, np.ndarray]) -> Tuple[float, float]:
    if "gt_depth" in arrays and (arrays["gt_state"] == 1).any():
        values = arrays["gt_depth"][arrays["gt_state"] == 1]
    else:
        values = arrays["depth"][arrays["accumulation"].astype(np.float32) > BACKGROUND_ACCUMULATION]
    if values.size == 0:
        return 2.0, 6.0
    low, high = np.percentile(values, [2, 98])
    return float(low), float(max(high, low + 1e-3))


def _save_png(image: np.ndarray, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(tmp)
    tmp.replace(path)
    return path


def figures_entrypoint() -> None:
    """Console script ``ds-figures``."""
    for path in make_figures(tyro.cli(FiguresArgs)):
        print(f"ds-figures: wrote {path}")
