"""Rendering trained models: ds-camera-path, ns-render on every method, ds-video (``viz/video.py``) and
ds-figures (``viz/ray_figures.py``)."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from nerfstudio.cameras.camera_paths import get_path_from_json
from nerfstudio.scripts.render import RenderCameraPath
from PIL import Image

from depth_strategies.core.training import TrainingLoop
from depth_strategies.methods import STRATEGIES
from depth_strategies.scenes.render import CAMERA_ANGLE_X, CAMERA_RADIUS
from depth_strategies.study.evaluation import evaluate_views
from depth_strategies.viz import ray_figures, video
from depth_strategies.viz.camera_path import trajectory_poses
from tests.conftest import capture_config, run_cli, tiny_config

METHODS = tuple(STRATEGIES)
HAS_FFMPEG = shutil.which("ffmpeg") is not None


@pytest.fixture(scope="module")
def compare_dir(tiny_scene, tmp_path_factory) -> Path:
    """A ds-compare-shaped output folder with every method trained a few iterations in-process."""
    out = tmp_path_factory.mktemp("compare")
    runs = []
    for name in METHODS:
        run_dir = out / "runs" / "builtin" / name / "seed0"
        config = tiny_config(name, tiny_scene, output_dir=run_dir / "nerfstudio", experiment_name="run",
                             timestamp="nerfstudio", vis="tensorboard")
        torch.manual_seed(0)
        loop = TrainingLoop(config, "cpu", test_mode="test")
        loop.run(3)
        views = evaluate_views(loop.pipeline, save_dir=run_dir / "views", save_indices=[0])
        runs.append({"scene": "builtin", "method": name, "seed": 0, "status": "ok", "sweep": None,
                     "run_dir": str(Path("runs") / "builtin" / name / "seed0"), "config": str(loop.save()),
                     "views": [{"index": v.index, "name": v.name, "metrics": v.metrics} for v in views]})
    (out / "results.json").write_text(json.dumps({"runs": runs}))
    return out


def config_of(compare_dir: Path, method: str) -> Path:
    return Path(next(r for r in json.loads((compare_dir / "results.json").read_text())["runs"]
                     if r["method"] == method)["config"])


@pytest.fixture(scope="module")
def camera_path(tiny_scene, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("path") / "orbit.json"
    run_cli(["ds-camera-path", str(tiny_scene), str(path), "--frames", "3", "--elevation", "30"], cwd=path.parent)
    return path


def test_camera_path_matches_the_dataset_and_loads_in_nerfstudio(camera_path):
    data = json.loads(camera_path.read_text())
    assert (data["render_width"], data["render_height"]) == (32, 32)
    # square images: the vertical field of view equals camera_angle_x
    assert data["camera_path"][0]["fov"] == pytest.approx(math.degrees(CAMERA_ANGLE_X))
    cameras = get_path_from_json(data)
    assert len(cameras) == 3
    centres = cameras.camera_to_worlds[:, :3, 3]
    assert torch.allclose(centres.norm(dim=-1), torch.full((3,), CAMERA_RADIUS), atol=1e-4)
    assert torch.allclose(centres[:, 2], torch.full((3,), CAMERA_RADIUS * math.sin(math.radians(30))), atol=1e-4)
    # focal length as the dataset's: 0.5 W / tan(camera_angle_x / 2)
    assert float(cameras.fx[0]) == pytest.approx(0.5 * 32 / math.tan(CAMERA_ANGLE_X / 2), rel=1e-4)
    # every camera looks at the origin: its -z axis points to the centre
    view_dirs = -cameras.camera_to_worlds[:, :3, 2]
    assert torch.allclose(view_dirs, -centres / centres.norm(dim=-1, keepdim=True), atol=1e-5)


@pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed (apt install ffmpeg); ns-render camera-path "
                    "checks for it even when it writes images")
@pytest.mark.parametrize("method", METHODS)
def test_ns_render_camera_path_renders_rgb_and_depth_for_every_method(method, compare_dir, camera_path, tmp_path):
    out = tmp_path / "frames"
    args = dict(load_config=config_of(compare_dir, method), camera_path_filename=camera_path, output_path=out,
                output_format="images", rendered_output_names=["rgb", "depth", "weight_variance"])
    if method == "depth-hybrid":  # as a user types it
        run_cli(["ns-render", "camera-path", "--load-config", str(args["load_config"]), "--camera-path-filename",
                 str(camera_path), "--output-path", str(out), "--output-format", "images",
                 "--rendered-output-names", "rgb", "depth", "weight_variance"], cwd=tmp_path)
    else:  # the same command object ns-render builds, without paying its start-up again
        RenderCameraPath(**args).main()
    frames = sorted(out.glob("*.jpg")) + sorted(out.glob("*.png"))
    assert len(frames) == 3
    with Image.open(frames[0]) as img:
        assert img.size == (3 * 32, 32)  # rgb | depth | weight_variance side by side


@pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed (apt install ffmpeg); ns-render video needs it")
def test_ns_render_spiral_and_interpolate_write_videos(compare_dir, tmp_path):
    config = str(config_of(compare_dir, "depth-hybrid"))
    run_cli(["ns-render", "spiral", "--load-config", config, "--output-path", str(tmp_path / "spiral.mp4"),
             "--seconds", "0.5", "--frame-rate", "6", "--rendered-output-names", "rgb", "depth"], cwd=tmp_path)
    run_cli(["ns-render", "interpolate", "--load-config", config, "--output-path", str(tmp_path / "interp.mp4"),
             "--interpolation-steps", "1", "--pose-source", "train", "--frame-rate", "6",
             "--rendered-output-names", "rgb"], cwd=tmp_path)
    with av.open(str(tmp_path / "spiral.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    assert (tmp_path / "interp.mp4").stat().st_size > 0


# ------------------------------------------------------------------------------------------- videos
def fake_frames(depth: float, n: int = 2, h: int = 6, w: int = 8):
    return [{"rgb": np.full((h, w, 3), 0.5, np.float32), "depth": np.full((h, w, 1), depth, np.float32),
             "accumulation": np.ones((h, w, 1), np.float32)} for _ in range(n)]


def test_comparison_frames_have_a_labelled_column_per_method_and_a_shared_depth_range():
    frames = video.comparison_frames({"a": fake_frames(3.0), "b": fake_frames(3.0), "c": fake_frames(5.0)})
    assert len(frames) == 2
    assert frames[0].shape == (video.LABEL_HEIGHT + 2 * 6, 3 * 8, 3)
    label = frames[0][: video.LABEL_HEIGHT, :8]
    assert (label < 128).any() and (label == 255).any(), "each column has a dark label on white"
    depth_row = frames[0][video.LABEL_HEIGHT + 6 :]
    assert np.array_equal(depth_row[:, :8], depth_row[:, 8:16]), "same depth, same colour across methods"
    assert not np.array_equal(depth_row[:, :8], depth_row[:, 16:24])


def test_animation_falls_back_to_gif_without_ffmpeg(monkeypatch, tmp_path):
    monkeypatch.setattr(video.shutil, "which", lambda name: None)
    frames = [np.full((6, 8, 3), k * 40, np.uint8) for k in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = video.write_animation(frames, tmp_path / "clip", fps=5)
    assert path.suffix == ".gif" and any("ffmpeg is not installed" in str(w.message) for w in caught)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (8, 6)


def _frame_count_and_size(path: Path):
    if path.suffix == ".gif":
        with Image.open(path) as gif:
            return gif.n_frames, gif.size
    with av.open(str(path)) as container:
        frames = [f for f in container.decode(video=0)]
        return len(frames), (frames[0].width, frames[0].height)


def test_ds_video_writes_per_method_and_comparison_videos(compare_dir, tmp_path):
    run_cli(["ds-video", str(compare_dir), "--frames", "3", "--resolution", "16"], cwd=tmp_path)
    folder = compare_dir / "videos"
    suffix = ".mp4" if HAS_FFMPEG else ".gif"
    for method in METHODS:
        count, size = _frame_count_and_size(folder / f"builtin_{method}{suffix}")
        assert count == 3 and size == (2 * 16, 16)  # RGB | depth
    count, size = _frame_count_and_size(folder / f"builtin_comparison{suffix}")
    assert count == 3 and size == (len(METHODS) * 16, video.LABEL_HEIGHT + 2 * 16)


def test_ds_figures_writes_depth_error_and_weight_plots(compare_dir, tmp_path):
    run_cli(["ds-figures", str(compare_dir)], cwd=tmp_path)
    folder = compare_dir / "figures"
    for method in METHODS:
        assert (folder / f"builtin_r_0_depth_{method}.png").is_file()
        assert (folder / f"builtin_r_0_depth_error_{method}.png").is_file()
    weights = list(folder.glob("builtin_r_0_weights_x*_y*.png"))
    assert len(weights) == 1
    with Image.open(weights[0]) as img:
        assert img.size[0] > 400


def test_termination_profile_weights_are_a_distribution_along_the_ray(compare_dir):
    pipeline = video.load_pipeline(config_of(compare_dir, "depth-hybrid"), test_mode="test")
    camera = pipeline.datamanager.eval_dataset.cameras[0:1]
    t, w = ray_figures.termination_profile(pipeline, camera, (16, 16))
    assert t.shape == w.shape and np.all(np.diff(t) > 0)
    assert np.all(w >= 0) and w.sum() <= 1 + 1e-5
    assert t[0] >= 2.0 - 1e-4 and t[-1] <= 6.0 + 1e-4  # inside near/far (Blender units)


def test_a_trajectory_passes_through_the_recorded_cameras_and_halfway_interpolates_position_and_rotation():
    quarter_turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    recorded = np.stack([np.concatenate([np.eye(3), [[0.0], [0.0], [0.0]]], axis=1),
                         np.concatenate([quarter_turn, [[2.0], [0.0], [0.0]]], axis=1)])
    poses = trajectory_poses(recorded, 3)
    assert poses.shape == (3, 3, 4)
    np.testing.assert_allclose(poses[0], recorded[0], atol=1e-12)
    np.testing.assert_allclose(poses[2], recorded[1], atol=1e-12)
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)  # halfway: 45 degrees about z, halfway along x
    np.testing.assert_allclose(poses[1], [[c, -s, 0.0, 1.0], [s, c, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 cameras"):
        trajectory_poses(recorded[:1], 3)


def test_ds_video_walks_a_capture_along_its_recorded_trajectory(tiny_capture, tmp_path):
    out = tmp_path / "compare"
    run_dir = out / "runs" / "room" / "depth-hybrid" / "seed0"
    config = capture_config("depth-hybrid", tiny_capture, output_dir=run_dir / "nerfstudio", experiment_name="run",
                            timestamp="nerfstudio", vis="tensorboard")
    torch.manual_seed(0)
    loop = TrainingLoop(config, "cpu", test_mode="test")
    loop.run(2)
    train = loop.pipeline.datamanager.train_dataset.cameras
    cameras = video.trajectory_cameras(loop.pipeline, frames=4, width=32)
    assert cameras.camera_to_worlds.shape == (4, 3, 4) and int(cameras.height[0, 0]) == 24  # 64x48 at 32 px wide
    torch.testing.assert_close(cameras.camera_to_worlds[0], train.camera_to_worlds[0].float())  # starts and ends
    torch.testing.assert_close(cameras.camera_to_worlds[-1], train.camera_to_worlds[-1].float())  # on recorded ones
    assert float(cameras.fx[0, 0]) == pytest.approx(float(train.fx[0, 0]) / 2)
    (out / "results.json").write_text(json.dumps({"runs": [
        {"scene": "room", "method": "depth-hybrid", "seed": 0, "status": "ok", "sweep": None,
         "run_dir": "runs/room/depth-hybrid/seed0", "config": str(loop.save())}]}))
    run_cli(["ds-video", str(out), "--frames", "3", "--resolution", "16"], cwd=tmp_path)
    count, size = _frame_count_and_size(out / "videos" / f"room_depth-hybrid{'.mp4' if HAS_FFMPEG else '.gif'}")
    assert count == 3 and size == (2 * 16, 12)
    refused = run_cli(["ds-video", str(out), "--path", "orbit", "--frames", "3"], cwd=tmp_path, check=False)
    assert refused.returncode != 0 and "--path trajectory" in refused.stderr
