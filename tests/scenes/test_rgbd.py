"""``ds-import-rgbd``: a real RGB-D capture (7-Scenes or TUM RGB-D layout) as nerfstudio-data with depth. Poses
converted to nerfstudio's axes (a point seen in one real frame lands where the next frame's sensor sees it), depth
in metres with the sensor's non-readings unknown, TUM association and quaternions, registration of a depth camera
into the colour image, errors that name the file, and every method training on the imported kitchen."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depth_strategies.core.data import DepthState, pixel_direction_norms
from depth_strategies.core.reference import OfflineDepthNerfactoModelConfig
from depth_strategies.core.training import TrainingLoop
from depth_strategies.methods import METHOD_FIELDS, apply_overrides, load_size_profile
from depth_strategies.scenes.rgbd import (
    ImportOptions,
    RgbdImportError,
    associate,
    downscale_depth,
    import_rgbd,
    interpolate_poses,
    opencv_to_nerfstudio,
    quaternion_to_matrix,
    register_depth,
    sensor_depth_metres,
)
from tests.conftest import REDKITCHEN, capture_config, run_cli
from tests.core.test_data import reprojection_errors
from tests.core.test_model import one_step

"""The real capture (7-Scenes redkitchen, every 5th frame), read in place."""
R45 = math.sqrt(0.5)


# ------------------------------------------------------------------------------------------ small folders
def write_seven_scenes(folder: Path, frames: int = 4, size=(8, 6)) -> Path:
    """A 7-Scenes folder of ``frames`` frames: colour, 16-bit depth (mm; 0 and 65535 in the top left 2 x 2 block),
    poses moving along x, camera-intrinsics.txt."""
    folder.mkdir(parents=True)
    w, h = size
    (folder / "camera-intrinsics.txt").write_text(f"4 0 {w / 2}\n0 4 {h / 2}\n0 0 1\n")
    for i in range(frames):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(folder / f"frame-{i:06d}.color.jpg")
        depth = np.full((h, w), 1500 + 10 * i, np.uint16)
        depth[:2, :2] = [[0, 65535], [65535, 0]]  # no reading (a 2 x 2 block of it)
        Image.fromarray(depth).save(folder / f"frame-{i:06d}.depth.png")
        pose = np.eye(4)
        pose[0, 3] = 0.1 * i
        np.savetxt(folder / f"frame-{i:06d}.pose.txt", pose)
    return folder


def leftovers(parent: Path) -> list:
    """Temporary folders of an import left in ``parent``."""
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# ------------------------------------------------------------------------------------------------ the math
def test_opencv_poses_become_nerfstudio_poses_by_negating_the_y_and_z_columns():
    # an OpenCV camera at (1, 2, 3) looking along world +x (its z), its y (down) along world -z
    cv = np.array([[0, 0, 1, 1], [-1, 0, 0, 2], [0, -1, 0, 3], [0, 0, 0, 1]], dtype=float)
    ns = opencv_to_nerfstudio(cv)
    np.testing.assert_array_equal(ns, [[0, 0, -1, 1], [-1, 0, 0, 2], [0, 1, 0, 3], [0, 0, 0, 1]])
    assert ns[:3, 2] @ [1, 0, 0] == -1 and ns[:3, 1] @ [0, 0, 1] == 1  # looks down its -z; its y is up
    np.testing.assert_array_equal(cv[0, 3], 1)  # the input is not modified


def test_quaternions_in_tum_order_give_the_hand_computed_rotations():
    rotations = quaternion_to_matrix(np.array([[0, 0, 0, 1], [0, 0, R45, R45], [1, 0, 0, 0], [0, 0, 0, 2]]))
    np.testing.assert_allclose(rotations[0], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rotations[1], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)  # 90 deg about z
    np.testing.assert_allclose(rotations[2], np.diag([1, -1, -1]), atol=1e-12)  # 180 deg about x
    np.testing.assert_allclose(rotations[3], np.eye(3), atol=1e-12)  # normalised first


def test_tum_timestamps_pair_one_to_one_closest_first_within_the_max_difference():
    # colour 1.00 and 1.01 both lie near depth 1.006: the closer (1.01) takes it; 1.30 has no depth within 0.02 s
    pairs = associate(np.array([1.00, 1.01, 1.10, 1.30]), np.array([1.006, 1.104, 1.33]), 0.02)
    assert pairs.tolist() == [[1, 0], [2, 1]]


def test_tum_poses_are_interpolated_between_the_samples_around_each_colour_timestamp():
    sample_t = np.array([0.99, 1.01, 1.50])
    translations = np.array([[0.0, 0, 0], [2, 0, 0], [9, 9, 9]])
    quaternions = np.array([[0, 0, 0, 1], [0, 0, R45, R45], [0, 0, 0, 1]])
    c2w, found = interpolate_poses(np.array([1.00, 1.01, 1.20]), sample_t, translations, quaternions, 0.02)
    assert found.tolist() == [True, True, False]  # 1.20: the samples around it are 0.19 and 0.30 s away
    np.testing.assert_allclose(c2w[0], [[R45, -R45, 0, 1], [R45, R45, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
                               atol=1e-12)  # halfway: 45 deg about z, halfway along x
    np.testing.assert_allclose(c2w[1, :3, 3], [2, 0, 0])  # a sample at exactly the time


def test_registration_with_identity_extrinsic_and_equal_intrinsics_leaves_depth_unchanged():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4.0, (6, 8))
    depth[rng.random((6, 8)) < 0.2] = 0.0
    k = (5.0, 5.0, 4.0, 3.0)
    np.testing.assert_allclose(register_depth(depth, k, k, np.eye(4), (6, 8)), depth, rtol=1e-12)


def test_registration_shifts_depth_by_the_parallax_and_keeps_the_nearest_surface():
    # fx = 1, cx = 2: a point of depth pixel u at depth z is at x = (u + 0.5 - 2) z; moved 1 m along x it lands in
    # colour column floor(u + 0.5 + 1 / z): z = 1 shifts one column, z = 4 none (u + 0.75)
    depth = np.array([[4.0, 1.0, 4.0, 4.0]])
    shift = np.eye(4)
    shift[0, 3] = 1.0
    k = (1.0, 1.0, 2.0, 0.5)
    registered = register_depth(depth, k, k, shift, (1, 4))
    assert registered.tolist() == [[4.0, 0.0, 1.0, 4.0]]  # the near pixel hides the far one; a hole opens behind it
    plane = register_depth(np.full((1, 4), 1.0), k, k, shift, (1, 4))  # a plane at 1 m: all one column right
    assert plane.tolist() == [[0.0, 1.0, 1.0, 1.0]]  # nothing lands in column 0; column 3's point leaves the image


def test_downscaled_depth_is_the_nearest_valid_reading_and_unknown_across_an_edge():
    depth = np.array([[1.00, 0.00, 2.0, 1.0],
                      [1.05, 1.02, 1.0, 1.0]])
    # left block: a hole and three readings within 10 %: the nearest; right block: 1 m and 2 m, two surfaces
    assert downscale_depth(depth, 2).tolist() == [[1.0, 0.0]]
    assert downscale_depth(np.zeros((2, 2)), 2).tolist() == [[0.0]]


def test_no_reading_and_depth_beyond_max_depth_become_unknown_and_the_rest_metres():
    raw = np.array([[0, 65535, 5000, 10000, 20000]])
    assert sensor_depth_metres(raw, 5000.0, None).tolist() == [[0, 0, 1, 2, 4]]
    assert sensor_depth_metres(raw, 5000.0, 2.5).tolist() == [[0, 0, 1, 2, 0]]


# ---------------------------------------------------------------------------------------------- TUM layout
def write_tum(folder: Path) -> Path:
    """A TUM RGB-D folder: 5 colour frames, 5 depth frames (one too late for its colour), ground truth at 100 Hz-like
    pairs around the colour times (none near the last one)."""
    (folder / "rgb").mkdir(parents=True)
    (folder / "depth").mkdir()
    colour_t, depth_t = [1.00, 1.10, 1.20, 1.30, 1.40], [1.005, 1.118, 1.26, 1.31, 1.40]
    for t in colour_t:
        Image.fromarray(np.full((6, 8, 3), 100, np.uint8)).save(folder / "rgb" / f"{t:.6f}.png")
    for t in depth_t:
        depth = np.full((6, 8), 5000, np.uint16)  # 1 m
        depth[0, :3] = (0, 65535, 10000)  # no reading, saturated, 2 m (beyond --max-depth 1.5)
        Image.fromarray(depth).save(folder / "depth" / f"{t:.6f}.png")
    (folder / "rgb.txt").write_text("# colour images\n# timestamp filename\n" + "".join(
        f"{t:.6f} rgb/{t:.6f}.png\n" for t in colour_t))
    (folder / "depth.txt").write_text("# depth maps\n" + "".join(f"{t:.6f} depth/{t:.6f}.png\n" for t in depth_t))
    (folder / "groundtruth.txt").write_text(
        "# timestamp tx ty tz qx qy qz qw\n"
        f"0.99 0 0 0 0 0 0 1\n1.01 2 0 0 0 0 {R45} {R45}\n"
        "1.09 0 0 0 0 0 0 1\n1.11 0 2 0 0 0 0 1\n"
        "1.29 1 1 1 0 0 0 1\n1.31 1 1 1 0 0 0 1\n")
    return folder


def test_a_tum_folder_imports_associated_frames_with_interpolated_poses_and_depth_in_millimetres(tmp_path):
    src = write_tum(tmp_path / "rgbd_dataset_freiburg3_synthetic")
    info = import_rgbd(src, tmp_path / "out", ImportOptions(max_depth=1.5, test_every=2))
    meta = json.loads((tmp_path / "out" / "transforms.json").read_text())
    # 1.20 has no depth within 0.02 s, 1.40 no pose: three frames, posed at the colour timestamps
    assert info["counts"] == {"colour": 5, "depth": 5, "paired": 4, "posed": 3}
    assert [Path(f["file_path"]).name for f in meta["frames"]] == ["1.000000.png", "1.100000.png", "1.300000.png"]
    assert meta["fl_x"] == 535.4 and "freiburg3" in info["intrinsics"]  # the preset named in the folder's name
    expected = [
        [[R45, R45, 0, 1], [R45, -R45, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]],  # 45 deg about z, y and z negated
        [[1, 0, 0, 0], [0, -1, 0, 1], [0, 0, -1, 0], [0, 0, 0, 1]],
        [[1, 0, 0, 1], [0, -1, 0, 1], [0, 0, -1, 1], [0, 0, 0, 1]],
    ]
    np.testing.assert_allclose([f["transform_matrix"] for f in meta["frames"]], expected, atol=1e-9)
    depth = np.asarray(Image.open(tmp_path / "out" / meta["frames"][0]["depth_file_path"]))
    assert depth.dtype == np.uint16 and depth[0, :4].tolist() == [0, 0, 0, 1000] and (depth[1:] == 1000).all()
    assert meta["test_filenames"] == meta["val_filenames"] == [meta["frames"][0]["file_path"], meta["frames"][2][
        "file_path"]] and meta["train_filenames"] == [meta["frames"][1]["file_path"]]
    assert Path(meta["frames"][0]["file_path"]).is_absolute()  # used as they are: referenced, not copied


# ------------------------------------------------------------------------------------------ the real frames
@pytest.fixture(scope="module")
def kitchen(kitchen_src) -> Path:
    """The 12 real frames imported with --stride 2 --downscale 2 (6 frames, 320 x 240)."""
    out = kitchen_src.parent / "ns"
    import_rgbd(kitchen_src, out, ImportOptions(stride=2, downscale=2))
    return out


@pytest.fixture(scope="module")
def kitchen_dataset(kitchen):
    """The training split of the import as the depth-* methods read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manager = capture_config("depth-soft", kitchen).pipeline.datamanager.setup(device="cpu", test_mode="val")
    return manager.train_dataset


def test_real_frames_reproject_into_the_next_frame_where_its_sensor_sees_them(kitchen_dataset):
    ds = kitchen_dataset
    depths, states = ds.depths[..., 0].double().numpy(), ds.states[..., 0].numpy()
    scale = float(ds.metadata["dataparser_scale"])
    unconverted = copy.deepcopy(ds.cameras)  # the same poses left in OpenCV axes: the mistake the import avoids
    unconverted.camera_to_worlds[:, :3, 1:3] *= -1
    moved = copy.deepcopy(ds.cameras)  # frame B's camera 5 cm off
    moved.camera_to_worlds[:, :3, 3] += torch.tensor([0.05 * scale, 0, 0])
    errors, wrong_axes, wrong_place = [], [], []
    for a in range(len(depths) - 1):
        b = a + 1
        ok_a, ok_b = states[a] == DepthState.SURFACE, states[b] == DepthState.SURFACE
        residual = reprojection_errors(ds, depths[a], ok_a, a, depths[b], ok_b, b) / scale  # metres
        assert residual.size > 20000, (a, b, residual.size)  # many points of A land on B's valid depth
        errors.append(np.median(np.abs(residual)))
        for cameras, out in ((unconverted, wrong_axes), (moved, wrong_place)):
            shim = types.SimpleNamespace(cameras=copy.deepcopy(ds.cameras))
            shim.cameras.camera_to_worlds[b] = cameras.camera_to_worlds[b]
            if cameras is unconverted:
                shim.cameras.camera_to_worlds[a] = cameras.camera_to_worlds[a]
            out.append(np.median(np.abs(reprojection_errors(shim, depths[a], ok_a, a, depths[b], ok_b, b) / scale)))
    # about 5 mm (Kinect noise, KinectFusion poses) where a misplaced camera gives about 5 cm
    assert max(errors) < 0.01, errors
    assert min(wrong_place) > 3 * max(errors) and np.median(wrong_axes) > 3 * max(errors), (wrong_place, wrong_axes)


def test_real_depth_is_read_in_metres_and_pixels_without_a_reading_are_unknown(kitchen, kitchen_dataset):
    ds = kitchen_dataset
    meta = json.loads((kitchen / "transforms.json").read_text())
    scale = float(ds.metadata["dataparser_scale"])
    norms = pixel_direction_norms(meta["fl_x"], meta["fl_y"], meta["cx"], meta["cy"], meta["h"], meta["w"])
    for k, image in enumerate(ds._dataparser_outputs.image_filenames):
        raw = np.asarray(Image.open(REDKITCHEN / Path(image).name.replace(".jpg", ".depth.png"))).astype(float)
        blocks = raw.reshape(meta["h"], 2, meta["w"], 2).transpose(0, 2, 1, 3).reshape(meta["h"], meta["w"], 4)
        readings = np.where((blocks > 0) & (blocks < 65535), blocks, np.nan)
        z = ds.depths[k, ..., 0].double().numpy() / scale / norms  # ray distance (model units) -> z in metres
        surface = ds.states[k, ..., 0].numpy() == DepthState.SURFACE
        assert surface.mean() > 0.8
        # each known pixel is the nearest reading of its 2 x 2 block, millimetres -> metres
        np.testing.assert_allclose(z[surface], np.nanmin(readings[surface], axis=-1) / 1000.0, atol=2e-4)
        assert not surface[np.isnan(readings).all(axis=-1)].any()  # no reading in the block: unknown
        assert 0.5 < z[surface].min() and z[surface].max() < 4.0  # the kitchen's 0.8-3.5 m, in metres


# ---------------------------------------------------------------------------------------------- bad input
def test_a_folder_without_a_recognised_layout_is_refused_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RgbdImportError, match="no recognised RGB-D layout") as err:
        import_rgbd(tmp_path / "empty", tmp_path / "out")
    assert str(tmp_path / "empty") in str(err.value) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage, message", [
    ("missing pose", "frame-000002.pose.txt is missing"),
    ("missing depth", "frame-000002.depth.png is missing"),
    ("not rigid", "frame-000002.pose.txt: not a rigid transform"),
    ("corrupt depth", "frame-000002.depth.png"),
])
def test_a_bad_frame_stops_the_import_naming_its_file_and_leaves_the_previous_import(tmp_path, damage, message):
    src = write_seven_scenes(tmp_path / "src")
    out = tmp_path / "out"
    import_rgbd(src, out, ImportOptions(test_every=2))
    before = (out / "transforms.json").read_text()
    frame = src / "frame-000002"
    if damage == "missing pose":
        Path(f"{frame}.pose.txt").unlink()
    elif damage == "missing depth":
        Path(f"{frame}.depth.png").unlink()
    elif damage == "not rigid":
        np.savetxt(f"{frame}.pose.txt", np.diag([1.1, 1.0, 1.0, 1.0]))
    else:
        Path(f"{frame}.depth.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # found while writing frame 2
    with pytest.raises(ValueError, match=message):
        import_rgbd(src, out, ImportOptions(test_every=2, downscale=2))
    assert (out / "transforms.json").read_text() == before and not leftovers(tmp_path)  # nothing half-written


def test_an_unwritable_or_foreign_output_folder_is_refused(tmp_path):
    src = write_seven_scenes(tmp_path / "src")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RgbdImportError, match="choose an OUT folder you can write"):
        import_rgbd(src, tmp_path / "a-file" / "out")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(RgbdImportError, match="holds no ds-import-rgbd import"):
        import_rgbd(src, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine" and not leftovers(tmp_path)


def test_ds_import_rgbd_as_a_user_types_it(tmp_path):
    src = write_seven_scenes(tmp_path / "src", frames=3)
    result = run_cli(["ds-import-rgbd", str(src), str(tmp_path / "out"), "--downscale", "2", "--test-every", "2"],
                     cwd=tmp_path)
    assert "ns-train depth-hybrid nerfstudio-data --data" in result.stdout
    meta = json.loads((tmp_path / "out" / "transforms.json").read_text())
    assert (meta["w"], meta["h"], meta["fl_x"], meta["cx"]) == (4, 3, 2.0, 2.0)  # downscaled with the images
    depth = np.asarray(Image.open(tmp_path / "out" / meta["frames"][0]["depth_file_path"]))
    assert depth.tolist() == [[0, 1500, 1500, 1500]] + [[1500] * 4] * 2  # 0 and 65535 unknown, the rest mm
    (tmp_path / "empty").mkdir()
    failed = run_cli(["ds-import-rgbd", str(tmp_path / "empty"), str(tmp_path / "out2")], cwd=tmp_path, check=False)
    assert failed.returncode != 0 and "ds-import-rgbd: error:" in failed.stderr and "Traceback" not in failed.stderr


# --------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", (*METHOD_FIELDS, "depth-nerfacto"))
def test_every_method_trains_on_the_imported_kitchen_with_no_extra_flag(name, kitchen_tiny):
    torch.manual_seed(0)
    if name == "depth-nerfacto":
        # nerfstudio's own, with its datamanager and depth dataset, as ns-train runs it; its model class only builds
        # LPIPS without a download (depth_strategies.core.reference)
        from nerfstudio.configs.method_configs import method_configs

        config = copy.deepcopy(method_configs[name])
        fields = {f.name: getattr(config.pipeline.model, f.name) for f in dataclasses.fields(config.pipeline.model)
                  if f.name != "_target" and f.init}
        config.pipeline.model = OfflineDepthNerfactoModelConfig(**{**fields, "implementation": "torch"})
        config = apply_overrides(config, {**load_size_profile("tiny"), "pipeline.datamanager.data": kitchen_tiny,
                                          "machine.device_type": "cpu"})
    else:
        config = capture_config(name, kitchen_tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop = TrainingLoop(config, "cpu")
    dataset = loop.pipeline.datamanager.train_dataset
    assert len(dataset) == 5  # frame 0 is the test view
    if name == "depth-nerfacto":
        depth = dataset[0]["depth_image"]  # metres times the parser's scale, 0 without a reading
        assert depth.shape[:2] == (60, 80) and (depth > 0).float().mean() > 0.8
    else:
        assert loop.pipeline.model.config.scene_type == "unbounded"
        if dataset.states is not None:
            assert (dataset.states == DepthState.SURFACE).float().mean() > 0.8
            assert not (dataset.states == DepthState.EMPTY).any()
    _, _, _, losses = one_step(loop)
    assert all(torch.isfinite(value) for value in losses.values()), losses
    loop.run(2)
