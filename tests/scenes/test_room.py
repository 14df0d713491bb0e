"""The generated room capture (``ds-make-room``): nerfstudio-data files a phone app would write, read back by the
datamanager with depth that agrees between frames."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from depth_strategies.core.data import DepthState
from depth_strategies.scenes.room import ROOM, Room, confidence_of, make_room, room_cameras
from tests.conftest import capture_config, run_cli
from tests.core.test_data import reprojection_errors


def test_the_capture_is_nerfstudio_data_with_low_resolution_millimetre_depth_and_confidence(tiny_capture):
    meta = json.loads((tiny_capture / "transforms.json").read_text())
    assert (meta["w"], meta["h"]) == (64, 48) and len(meta["frames"]) == 12
    assert meta["test_filenames"] == ["images/frame_0000.jpg", "images/frame_0006.jpg"]
    frame = meta["frames"][1]
    with Image.open(tiny_capture / frame["file_path"]) as image:
        assert image.mode == "RGB" and image.size == (64, 48)  # no alpha: nothing marks a ray empty
    depth = np.asarray(Image.open(tiny_capture / frame["depth_file_path"]))
    assert depth.dtype == np.uint16 and depth.shape == (12, 16)
    assert 500 < depth.min() and depth.max() < 8000  # millimetres: the walls are within 8 m
    confidence = np.asarray(Image.open(tiny_capture / "depth" / "frame_0001_confidence.png"))
    assert confidence.shape == (12, 16) and set(np.unique(confidence)) <= {0, 1, 2}


def test_confidence_is_low_at_depth_jumps_and_medium_far_away():
    depth = np.full((4, 6), 2.0)
    depth[:, 3:] = 4.0  # a jump between columns 2 and 3; the right part is beyond 3.5 m
    np.testing.assert_array_equal(confidence_of(depth), [[2, 2, 0, 0, 1, 1]] * 4)


def test_the_walk_circles_the_middle_at_hand_height_and_is_deterministic():
    cams = room_cameras(24, seed=3)
    np.testing.assert_array_equal(cams, room_cameras(24, seed=3))
    eyes = cams[:, :3, 3]
    assert np.all((eyes[:, 2] >= 0.9) & (eyes[:, 2] <= 1.6))
    distance = np.linalg.norm(eyes[:, :2], axis=1)
    assert np.all((distance >= 1.6) & (distance <= 2.8))
    azimuth = np.unwrap(np.arctan2(eyes[:, 1], eyes[:, 0]))
    assert np.all(np.diff(azimuth) > 0) and azimuth[-1] - azimuth[0] > 1.8 * np.pi  # walking once around
    assert {s.obj for s in ROOM} >= {"room", "cabinet", "bench", "sphere", "cup"}


def room_dataset(path: Path, depth_factor: int):
    capture = make_room(path, Room(width=96, height=72, views=24, test_every=24, depth_factor=depth_factor, seed=1),
                        supersample=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datamanager = capture_config("depth-soft", capture).pipeline.datamanager.setup(device="cpu", test_mode="val")
    ds = datamanager.train_dataset
    return ds, ds.depths[..., 0].double().numpy(), ds.states[..., 0].numpy(), float(ds.metadata["dataparser_scale"])


def test_depth_of_the_capture_reprojects_between_neighbouring_frames_as_far_as_its_resolution_allows(tmp_path):
    exact_ds, exact, exact_states, scale = room_dataset(tmp_path / "exact", 1)
    low_ds, low, low_states, low_scale = room_dataset(tmp_path / "low", 4)
    assert scale == low_scale and not (exact_states == DepthState.EMPTY).any()
    for i in (1, 5, 9, 13):
        j = i + 1
        # exact depth (the sensor at the image's resolution) agrees between frames to a millimetre's rounding
        residual = reprojection_errors(exact_ds, exact[i], exact_states[i] == DepthState.SURFACE, i, exact[j],
                                       exact_states[j] == DepthState.SURFACE, j) / scale
        residual = residual[residual < 0.1]  # points hidden in the other frame are nearer there
        assert residual.size > 500 and np.median(np.abs(residual)) < 0.002
        # depth at a quarter of the resolution, picked: its reprojection error is what picking costs in each frame
        ok_i, ok_j = low_states[i] == DepthState.SURFACE, low_states[j] == DepthState.SURFACE
        residual = reprojection_errors(low_ds, low[i], ok_i, i, low[j], ok_j, j) / scale
        residual = residual[residual < 0.1]
        picking = [np.median(np.abs(low[k] - exact[k])[low_states[k] == DepthState.SURFACE]) / scale for k in (i, j)]
        assert residual.size > 200 and np.median(np.abs(residual)) < 2 * max(picking) + 0.002, (residual, picking)


def test_ds_make_room_writes_a_capture_and_refuses_a_foreign_folder(tmp_path):
    run_cli(["ds-make-room", str(tmp_path / "room"), "--width", "32", "--height", "24", "--views", "4",
             "--test-every", "2"], cwd=tmp_path)
    assert (tmp_path / "room" / "transforms.json").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    proc = run_cli(["ds-make-room", str(tmp_path / "other")], cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "holds no ds-make-room capture" in proc.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
