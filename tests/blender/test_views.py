"""What ``ds-blender-render`` renders, without Blender: the camera math (hand-computed), the transforms files and the
keys that the loader reads, the options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from depth_strategies.blender import render_scene, views
from depth_strategies.blender.views import (
    RenderError,
    RenderOptions,
    blender_matrix,
    dataset_cameras,
    depth_bounds,
    direction,
    focal_length_px,
    look_at,
    normalisation,
    sample_directions,
    transforms,
)
from depth_strategies.core import data, depth_io

R = math.sqrt(0.5)


# ------------------------------------------------------------------------------------------------ the math
def test_direction_at_hand_computed_angles():
    np.testing.assert_allclose(direction(0, 0), (1, 0, 0), atol=1e-15)
    np.testing.assert_allclose(direction(math.pi / 2, 0), (0, 1, 0), atol=1e-15)
    np.testing.assert_allclose(direction(1.234, math.pi / 2), (0, 0, 1), atol=1e-15)
    np.testing.assert_allclose(direction(math.pi / 4, math.pi / 4), (0.5, 0.5, R), atol=1e-15)


def test_look_at_from_minus_y_looks_along_plus_y_with_world_z_up():
    m = np.array(look_at((0, -4, 0)))
    # columns: camera x (right) = world +x, camera y (up) = world +z, camera z (back) = world -y; then the position
    np.testing.assert_allclose(m, [[1, 0, 0, 0], [0, 0, -1, -4], [0, 1, 0, 0], [0, 0, 0, 1]], atol=1e-15)


def test_look_at_from_a_diagonal_points_minus_z_at_the_target_and_keeps_the_horizon_level():
    m = np.array(look_at((2, 2, 2 * math.sqrt(2))))  # 45 degrees up, azimuth 45 degrees, 4 from the origin
    np.testing.assert_allclose(m[:3, 3], (2, 2, 2 * math.sqrt(2)))
    np.testing.assert_allclose(-m[:3, 2], (-0.5, -0.5, -R), atol=1e-15)  # looks at the origin
    np.testing.assert_allclose(m[:3, 0], (-R, R, 0), atol=1e-15)  # right: horizontal
    np.testing.assert_allclose(m[:3, 1], (-0.5, -0.5, R), atol=1e-15)  # up: tilted towards world +z
    np.testing.assert_allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-15)
    assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)


def test_look_at_straight_down_uses_world_y_as_up():
    m = np.array(look_at((0, 0, 4)))
    np.testing.assert_allclose(m[:3, :3], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], atol=1e-15)


def test_normalisation_of_a_hand_computed_box():
    # x, y in [-1, 1], z in [0, 0.5]: centre (0, 0, 0.25), half diagonal sqrt(8.25) / 2
    centre, scale = normalisation((-1, -1, 0), (1, 1, 0.5), 1.5)
    assert centre == (0, 0, 0.25)
    assert scale == pytest.approx(1.5 / (0.5 * math.sqrt(8.25)))
    assert scale == pytest.approx(1.0444659357341870)


def test_blender_matrix_maps_the_dataset_position_back_and_keeps_the_rotation():
    m = look_at((0, -4, 0))
    b = np.array(blender_matrix(m, (1, 2, 3), 2.0))
    np.testing.assert_allclose(b[:3, :3], np.array(m)[:3, :3])
    np.testing.assert_allclose(b[:3, 3], (1, 0, 3))  # centre + (0, -4, 0) / 2


def test_focal_length_and_depth_bounds_by_hand():
    assert focal_length_px(32, 90) == pytest.approx(16.0)
    assert focal_length_px(800, math.degrees(0.6911112070083618)) == pytest.approx(1111.11, abs=0.01)  # lego
    assert depth_bounds(4.0, 1.5) == (2.5, 5.5)


@pytest.mark.parametrize("sphere", [False, True])
def test_directions_are_unit_seeded_per_split_and_cover_the_chosen_half(sphere):
    a = np.array(sample_directions(400, 0, "train", sphere))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.array_equal(a, np.array(sample_directions(400, 0, "train", sphere)))  # a rerun resumes
    assert not np.allclose(a[:5], np.array(sample_directions(5, 0, "test", sphere)))
    assert not np.allclose(a[:5], np.array(sample_directions(5, 1, "train", sphere)))
    np.testing.assert_array_equal(a[:10], np.array(sample_directions(10, 0, "train", sphere)))  # a prefix
    if sphere:
        assert (a[:, 2] < 0).mean() == pytest.approx(0.5, abs=0.1)
        assert abs(a[:, 2].mean()) < 0.1
    else:
        assert (a[:, 2] >= 0).all()
        assert a[:, 2].mean() == pytest.approx(0.5, abs=0.05)  # uniform on the hemisphere: z uniform in [0, 1]
    azimuth = np.arctan2(a[:, 1], a[:, 0])
    assert np.histogram(azimuth, bins=4, range=(-math.pi, math.pi))[0].min() > 70  # all around: 360 degrees


def test_every_camera_stands_at_the_radius_and_looks_at_the_centre():
    options = RenderOptions(views=(5, 2, 3), radius=3.7)
    cameras = dataset_cameras(options)
    assert [len(cameras[s]) for s in ("train", "val", "test")] == [5, 2, 3]
    for m in (np.array(m) for ms in cameras.values() for m in ms):
        assert np.linalg.norm(m[:3, 3]) == pytest.approx(3.7)
        np.testing.assert_allclose(m[:3, 2], m[:3, 3] / 3.7, atol=1e-12)  # the back axis points away from 0


# ------------------------------------------------------------------------------------------------ what the loader reads
def test_the_written_keys_are_those_the_loader_reads():
    assert views.DEPTH_FORMAT_KEY == depth_io.META_FORMAT_KEY
    assert views.DEPTH_TYPE_KEY == depth_io.META_TYPE_KEY
    assert views.DEPTH_SCALE_KEY == depth_io.META_SCALE_KEY
    assert views.DEPTH_EXR_CHANNEL_KEY == depth_io.META_EXR_CHANNEL_KEY
    assert views.DEPTH_FILE_PATH_KEY == depth_io.DEPTH_FILE_PATH_KEY
    assert views.DEPTH_FORMAT in depth_io.DEPTH_FORMATS and views.DEPTH_TYPE in depth_io.DEPTH_TYPES
    assert "{stem}" + views.DEPTH_SUFFIX in depth_io.DEPTH_FILE_PATTERNS
    assert (views.LOADER_NEAR, views.LOADER_FAR) == (data.BLENDER_NEAR, data.BLENDER_FAR)
    assert views.DEPTH_EXR_CHANNEL in depth_io.EXR_AUTO_CHANNELS


def test_transforms_resolve_to_the_recorded_encoding_and_name_each_depth_file(tmp_path):
    options = RenderOptions(views=(2, 0, 0), fov=90.0)
    meta = transforms(options, "train", dataset_cameras(options)["train"], (0, 0, 0.25), 1.25)
    meta = json.loads(json.dumps(meta))  # as written
    assert meta["camera_angle_x"] == pytest.approx(math.pi / 2)
    (tmp_path / "train").mkdir()
    exr = tmp_path / "train" / "r_1_depth.exr"
    exr.write_bytes(depth_io.EXR_MAGIC)
    frame = meta["frames"][1]
    assert frame["file_path"] == "./train/r_1"
    assert depth_io.find_depth_file(tmp_path / "train" / "r_1.png", frame, tmp_path) == exr
    encoding = depth_io.resolve_encoding(exr, meta)
    assert encoding == depth_io.DepthEncoding("exr", "z", 1.25, "V")


def test_the_defaults_fit_the_loaders_range_and_box_and_notes_name_the_flag_otherwise():
    assert RenderOptions().notes() == []
    assert RenderOptions().scene_radius == views.SCENE_BOX_HALF == 1.5
    (note,) = RenderOptions(radius=6.0).notes()
    assert "[4.5, 7.5]" in note and "--pipeline.datamanager.depth-range 4.5 7.5" in note
    notes = RenderOptions(scene_radius=2.5).notes()
    assert len(notes) == 2 and "[2, 6]" in notes[0] and "scene box [-1.5, 1.5]^3" in notes[1]


@pytest.mark.parametrize("change, message", [
    ({"views": (0, 0, 0)}, "not all 0"),
    ({"scene_radius": 5.0}, "outside the scene's bounding sphere"),
    ({"fov": 180.0}, "(0, 180)"),
    ({"engine": "workbench"}, "cycles, eevee"),
    ({"samples": 0}, "at least 1"),
])
def test_options_that_cannot_render_are_refused(change, message):
    with pytest.raises(RenderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RenderOptions(**change).validate()


def test_options_survive_the_command_line_that_hands_them_to_blender():
    options = RenderOptions(views=(3, 1, 2), width=40, height=30, fov=50.5, radius=4.2, scene_radius=1.3,
                            sphere=True, seed=7, engine="eevee", samples=9)
    args = render_scene.parser().parse_args(["out", *views.options_argv(options)])
    assert views.options_from(args) == options


def test_eevee_failures_say_to_use_cycles():
    err = render_scene.engine_error(RenderOptions(engine="eevee"), RuntimeError("no GL"), Path("out"))
    assert "--engine cycles" in str(err) and "OpenGL" in str(err) and "out/blender.log" in str(err)
