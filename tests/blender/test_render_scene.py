"""``ds-blender-render`` with Blender (the ``bpy`` package, in the command's own process): a plane and a cube rendered
at 32x32, whose depth at every pixel that sees the plane or the cube equals the ray-cast distance for the recorded
depth type, with alpha 0 where the ray hits nothing; the resume; the errors; and the demo scene loading through
the datamanager and training ``depth-hybrid``. Skipped, with the reason, only where ``bpy`` cannot be imported."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depth_strategies.core import depth_io
from depth_strategies.core.data import DepthState, pixel_direction_norms
from depth_strategies.core.training import TrainingLoop
from tests.conftest import run_cli, tiny_config
from tests.core.test_data import reprojection_errors
from tests.core.test_model import one_step


def _bpy_problem() -> str:
    proc = subprocess.run([sys.executable, "-c", "import bpy"], capture_output=True, text=True, timeout=120)
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


BPY_PROBLEM = _bpy_problem()
pytestmark = pytest.mark.skipif(
    bool(BPY_PROBLEM), reason=f"bpy cannot be imported here ({BPY_PROBLEM}): pip install -e '.[blender]' "
                              "(bpy==5.0.1, Python 3.11 only)")

PLANE_HALF = 1.0
"""The plane: z = 0, x and y in [-1, 1] (Blender units)."""
CUBE = ((-0.25, -0.25, 0.0), (0.25, 0.25, 0.5))
"""The cube standing on it: 0.5 a side, centred on the z axis."""
SIZE = 32
BUILD_PLANE_AND_CUBE = f"""
import sys, bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.mesh.primitive_plane_add(size={2 * PLANE_HALF}, location=(0, 0, 0))
bpy.ops.mesh.primitive_cube_add(size=0.5, location=(0, 0, 0.25))
bpy.ops.object.light_add(type="SUN", location=(0, 0, 3))
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1])
"""
BUILD_EMPTY = """
import sys, bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.object.light_add(type="SUN", location=(0, 0, 3))
bpy.ops.object.camera_add(location=(0, -4, 0))
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1])
"""


def build_blend(script: str, path: Path) -> Path:
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, capture_output=True, timeout=300)
    assert path.is_file()
    return path


def footprint(reach: float) -> np.ndarray:
    """Offsets (pixels) of the rays that sample a pixel's footprint, every half pixel up to ``reach``: the image's
    pixel filter reaches 0.75 px (Cycles' width 1.5) or 1.5 px and more (EEVEE's filter size 1.5 is a radius)."""
    return np.linspace(-reach, reach, int(4 * reach) + 1)
RENDER_FLAGS = ["--resolution", str(SIZE), "--samples", "4", "--views", "3", "1", "2"]


@pytest.fixture(scope="module")
def plane_scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blender")
    blend = build_blend(BUILD_PLANE_AND_CUBE, folder / "plane_and_cube.blend")
    out = folder / "rendered"
    proc = run_cli(["ds-blender-render", str(blend), str(out), *RENDER_FLAGS], cwd=folder, timeout=600)
    return blend, out, proc


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    run_cli(["ds-blender-render", "--demo", str(out), "--resolution", str(SIZE), "--samples", "4",
             "--views", "6", "2", "2"], cwd=out.parent, timeout=600)
    return out


# ------------------------------------------------------------------------------------------------ ray casting
def ray_plane(origins, dirs, z, half):
    """Distance along unit ``dirs`` to the square z = ``z``, |x|, |y| <= ``half``; inf where missed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (z - origins[..., 2]) / dirs[..., 2]
    hit = origins + t[..., None] * dirs
    inside = (t > 0) & (np.abs(hit[..., 0]) <= half) & (np.abs(hit[..., 1]) <= half)
    return np.where(inside, t, np.inf)


def ray_box(origins, dirs, low, high):
    """Entry distance along unit ``dirs`` into the box [low, high]; inf where missed (slab method)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (np.asarray(low) - origins) / dirs
        t2 = (np.asarray(high) - origins) / dirs
    near = np.nanmax(np.minimum(t1, t2), axis=-1)
    far = np.nanmin(np.maximum(t1, t2), axis=-1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def pixel_rays(pose, focal, offset=(0.0, 0.0)):
    """Unit ray directions and origins (dataset units) through each pixel's centre + ``offset`` (pixels)."""
    pose = np.asarray(pose)
    u = np.arange(SIZE) + 0.5 + offset[0]
    v = np.arange(SIZE) + 0.5 + offset[1]
    x = (u[None, :] - SIZE / 2) / focal
    y = -(v[:, None] - SIZE / 2) / focal  # image rows go down, the camera's y up
    cam = np.stack(np.broadcast_arrays(x, y, -np.ones_like(x)), axis=-1)
    dirs = cam @ pose[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return np.broadcast_to(pose[:3, 3], dirs.shape), dirs


def cast(meta, pose, offset=(0.0, 0.0)):
    """(distance to the plane, distance to the cube) per pixel in dataset units, from the recorded mapping."""
    centre = np.array(meta["blender_to_dataset"]["centre"])
    scale = meta["blender_to_dataset"]["scale"]
    focal = 0.5 * SIZE / math.tan(0.5 * meta["camera_angle_x"])
    origins, dirs = pixel_rays(pose, focal, offset)
    plane = ray_plane(origins, dirs, (0 - centre[2]) * scale, PLANE_HALF * scale)
    cube = ray_box(origins, dirs, (np.array(CUBE[0]) - centre) * scale, (np.array(CUBE[1]) - centre) * scale)
    return plane, cube


def load_view(out: Path, split: str, index: int):
    """(meta, frame, decoded depth as the loader decodes it, its validity, its encoding, 8-bit alpha)."""
    meta = json.loads((out / f"transforms_{split}.json").read_text())
    frame = meta["frames"][index]
    image = out / (frame["file_path"] + ".png")
    path = depth_io.find_depth_file(image, frame, out)
    encoding = depth_io.resolve_encoding(path, meta)
    depth, valid = depth_io.decode_depth(path, encoding, expected_hw=(SIZE, SIZE))
    alpha = np.asarray(Image.open(image))[..., 3]
    return meta, frame, depth, valid, encoding, alpha


def every_view(out: Path):
    for split in ("train", "val", "test"):
        meta = json.loads((out / f"transforms_{split}.json").read_text())
        for i in range(len(meta["frames"])):
            yield split, i


# ------------------------------------------------------------------------------------------------ the tests
def test_the_mapping_to_dataset_units_is_the_hand_computed_one(plane_scene):
    _, out, _ = plane_scene
    meta = json.loads((out / "transforms_train.json").read_text())
    scale = 1.5 / (0.5 * math.sqrt(8.25))  # the bounding box [-1, 1]^2 x [0, 0.5]: half diagonal sqrt(8.25) / 2
    np.testing.assert_allclose(meta["blender_to_dataset"]["centre"], (0, 0, 0.25), atol=1e-6)
    assert meta["blender_to_dataset"]["scale"] == pytest.approx(scale, rel=1e-6)
    assert meta["depth_scale"] == meta["blender_to_dataset"]["scale"]
    assert (meta["depth_format"], meta["depth_type"], meta["depth_exr_channel"]) == ("exr", "z", "V")
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        frames = json.loads((out / f"transforms_{split}.json").read_text())["frames"]
        assert len(frames) == count
        for frame in frames:
            assert (out / (frame["file_path"] + ".png")).is_file()
            assert (out / frame["depth_file_path"]).is_file()
            assert np.linalg.norm(np.array(frame["transform_matrix"])[:3, 3]) == pytest.approx(4.0)


def check_depth_and_alpha(out: Path, reach: float = 1.0) -> dict:
    """Every view of ``out``: the depth of each pixel whose footprint sees only the plane or only the cube equals the
    ray-cast distance (after the loader's conversion of the recorded type), alpha is 255 there, and 0 with no depth
    where nothing is hit. Returns the number of pixels of each kind checked."""
    counts = {"plane": 0, "cube": 0, "empty": 0, "off_axis": 0}
    for split, index in every_view(out):
        meta, frame, depth, valid, encoding, alpha = load_view(out, split, index)
        assert encoding.format == "exr"
        pose = frame["transform_matrix"]
        plane, cube = cast(meta, pose)
        # Pixels whose whole footprint sees one surface: a grid of rays every half pixel, fine enough for the
        # plane's thin sliver at grazing views.
        rays = [cast(meta, pose, (dx, dy)) for dx in footprint(reach) for dy in footprint(reach)]
        all_plane = np.all([np.isfinite(p) & ~np.isfinite(c) for p, c in rays], axis=0)
        all_cube = np.all([np.isfinite(c) for _, c in rays], axis=0)
        all_empty = np.all([~np.isfinite(p) & ~np.isfinite(c) for p, c in rays], axis=0)
        focal = 0.5 * SIZE / math.tan(0.5 * meta["camera_angle_x"])
        norms = pixel_direction_norms(focal, focal, SIZE / 2, SIZE / 2, SIZE, SIZE)
        ray_distance = depth * norms if encoding.depth_type == "z" else depth  # as core/data.py converts it
        for name, mask, expected in (("plane", all_plane, plane), ("cube", all_cube, cube)):
            assert valid[mask].all(), f"{split} {index}: {name} pixels without depth"
            np.testing.assert_allclose(ray_distance[mask], expected[mask], rtol=1e-3,
                                       err_msg=f"{split} view {index}: {name}")
            if encoding.depth_type == "z":
                np.testing.assert_allclose(depth[mask], (expected / norms)[mask], rtol=1e-3)  # planar z itself
            assert (alpha[mask] == 255).all()
            counts[name] += int(mask.sum())
            counts["off_axis"] += int((mask & (norms > 1.01)).sum())
        assert (alpha[all_empty] == 0).all(), f"{split} {index}: alpha where nothing is hit"
        assert not valid[all_empty].any()
        counts["empty"] += int(all_empty.sum())
    return counts


def test_depth_equals_the_ray_cast_distance_for_the_recorded_type_and_alpha_is_0_where_nothing_is_hit(plane_scene):
    counts = check_depth_and_alpha(plane_scene[1])
    # enough pixels of each kind, many off the axis (where z-depth and ray distance differ by more than 1 %)
    assert counts["plane"] > 300 and counts["cube"] > 50 and counts["empty"] > 300 and counts["off_axis"] > 300, counts


def test_eevee_renders_the_same_depth_headless_or_says_to_use_cycles(plane_scene, tmp_path):
    # EEVEE needs an OpenGL context: here Mesa's llvmpipe gives one (about 6 s a view at 32 x 32); where there is
    # none, the command must stop with the message, not a traceback or a crash
    blend = plane_scene[0]
    out = tmp_path / "eevee"
    proc = run_cli(["ds-blender-render", str(blend), str(out), "--engine", "eevee", "--resolution", str(SIZE),
                    "--samples", "4", "--views", "2", "0", "1"], cwd=tmp_path, timeout=600, check=False)
    if proc.returncode != 0:  # no OpenGL context: a render error, or a crash of the render process
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "EEVEE could not render here" in proc.stderr or "Blender crashed" in proc.stderr, proc.stderr[-3000:]
        assert "--engine cycles" in proc.stderr and "Traceback" not in proc.stderr
        return
    counts = check_depth_and_alpha(out, reach=2.0)
    assert counts["plane"] > 100 and counts["empty"] > 1000, counts


def test_a_rerun_keeps_every_view_and_renders_only_what_is_missing(plane_scene, tmp_path):
    blend, out, first = plane_scene
    assert "6 views rendered, 0 kept" in first.stderr
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("r_*")}
    again = run_cli(["ds-blender-render", str(blend), str(out), *RENDER_FLAGS], cwd=tmp_path)
    assert "0 views rendered, 6 kept" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("r_*")} == stamps
    missing = out / "val" / "r_0_depth.exr"
    missing.unlink()
    third = run_cli(["ds-blender-render", str(blend), str(out), *RENDER_FLAGS], cwd=tmp_path)
    assert "1 views rendered, 5 kept" in third.stderr and missing.is_file()
    assert (out / "train" / "r_0.png").stat().st_mtime_ns == stamps[out / "train" / "r_0.png"]
    other = run_cli(["ds-blender-render", str(blend), str(out), *RENDER_FLAGS[:-3], "4", "1", "2"], cwd=tmp_path,
                    check=False)
    assert other.returncode == 2 and "rendered with other options (views: [3, 1, 2] then, [4, 1, 2] now)" in \
        other.stderr


def test_a_scene_without_geometry_and_an_unwritable_output_are_refused_with_what_to_do(tmp_path):
    empty = build_blend(BUILD_EMPTY, tmp_path / "lights_only.blend")
    proc = run_cli(["ds-blender-render", str(empty), str(tmp_path / "out")], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "holds no geometry that renders" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    (tmp_path / "a_file").write_text("")
    proc = run_cli(["ds-blender-render", "--demo", str(tmp_path / "a_file" / "out")], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "cannot write the output folder" in proc.stderr, proc.stderr


def test_the_demo_loads_through_the_datamanager_and_trains_depth_hybrid(demo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop = TrainingLoop(tiny_config("depth-hybrid", demo), "cpu")
    manager = loop.pipeline.datamanager
    assert loop.pipeline.model.config.scene_type == "object"
    train, evaluation = manager.train_dataset, manager.eval_dataset
    aabb = manager.train_dataparser_outputs.scene_box.aabb
    assert torch.equal(aabb, torch.tensor([[-1.5] * 3, [1.5] * 3])), aabb  # the box views.SCENE_BOX_HALF names
    centres = train.cameras.camera_to_worlds[:, :, 3]
    torch.testing.assert_close(centres.norm(dim=-1), torch.full((6,), 4.0))  # --radius, in the parser's units
    assert len(train) == 6
    states = train.states
    assert (states == DepthState.SURFACE).float().mean() > 0.05, "the demo's depth was not read as surface"
    assert (states == DepthState.EMPTY).float().mean() > 0.3
    assert all(path is not None and path.name.endswith("_depth.exr") for path in evaluation.depth_files)
    # nerfstudio's own rays of one view, at the loaded depth, land where the next view sees its surface
    depths, ok = train.depths[..., 0].numpy(), (states[..., 0] == DepthState.SURFACE).numpy()
    errors = np.abs(reprojection_errors(train, depths[0], ok[0], 0, depths[1], ok[1], 1))
    assert errors.size > 20 and np.median(errors) < 0.01, (errors.size, np.median(errors))
    torch.manual_seed(0)
    _, batch, _, losses = one_step(loop)
    assert all(torch.isfinite(value) for value in losses.values()), losses
    assert any("depth" in key for key in losses), sorted(losses)
    loop.run(3)


def test_the_file_renders_without_the_package_as_a_stock_blender_runs_it(tmp_path):
    # a stock Blender has bpy but not this package: the file reads views.py from beside it
    from depth_strategies.blender.command import SCRIPT

    out = tmp_path / "out"
    code = ("import runpy, sys; sys.modules['depth_strategies'] = None; "
            f"sys.argv = ['blender', '-b', '-P', {str(SCRIPT)!r}, '--', {str(out)!r}, '--demo', '--resolution', '16', "
            "'--samples', '2', '--views', '2', '1', '1']; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "transforms_test.json").read_text())
    assert meta["depth_type"] == "z" and len(meta["frames"]) == 1
    assert (out / "val" / "r_0_depth.exr").is_file() and (out / "train" / "r_1.png").is_file()


def test_ds_inspect_calls_the_demos_depth_clean_and_metric(demo, tmp_path):
    run_cli(["ds-inspect", str(demo), "--output", str(tmp_path / "inspect")], cwd=tmp_path, timeout=600)
    report = json.loads((tmp_path / "inspect" / "inspect.json").read_text())
    assert [finding["kind"] for finding in report["findings"]] == ["clean"], report["findings"]
    assert "metric" in report["findings"][0]["evidence"]
    assert report["measurements"]["coverage"] == pytest.approx(1.0, abs=0.01)
    assert report["measurements"]["scale_range"] < 1.1  # one scale for every view: metric, not per-image relative
