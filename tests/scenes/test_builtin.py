"""The built-in scene as a dataset (``depth_strategies.scenes.builtin`` / ``ds-make-scene``)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depth_strategies.core.depth_io import read_exr
from depth_strategies.scenes.builtin import make_scene
from depth_strategies.scenes.render import (
    CAMERA_ANGLE_X,
    focal_from_width,
    render_view,
    sample_cameras,
)

SMALL = dict(resolution=32, views_train=3, views_val=1, views_test=2)


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _load_rgba(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGBA"
        return np.asarray(im)


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("scene") / "small", seed=0, **SMALL)


# ----------------------------------------------------------------------------------------------------------------
# 4. Determinism
# ----------------------------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path, small_scene: Path) -> None:
    again = make_scene(tmp_path / "again", seed=0, **SMALL)
    first, second = _hash_tree(small_scene), _hash_tree(again)
    assert len(first) == 3 + 1 + 2 * (3 + 1 + 2)  # 3 jsons, marker, png + exr per view
    assert first == second


def test_different_seed_or_split_gives_different_cameras(tmp_path: Path, small_scene: Path) -> None:
    assert not np.allclose(sample_cameras(5, 0, "train"), sample_cameras(5, 1, "train"))
    assert not np.allclose(sample_cameras(5, 0, "train"), sample_cameras(5, 0, "test"))
    np.testing.assert_array_equal(sample_cameras(5, 7, "val"), sample_cameras(5, 7, "val"))
    other = make_scene(tmp_path / "seed1", seed=1, **SMALL)
    m0 = json.loads((small_scene / "transforms_train.json").read_text())
    m1 = json.loads((other / "transforms_train.json").read_text())
    assert m1["generator"]["seed"] == 1
    assert not np.allclose(
        [fr["transform_matrix"] for fr in m0["frames"]], [fr["transform_matrix"] for fr in m1["frames"]]
    )


# ----------------------------------------------------------------------------------------------------------------
# 5. nerfstudio can load it
# ----------------------------------------------------------------------------------------------------------------


def test_output_loads_with_nerfstudio_blender_dataparser(small_scene: Path) -> None:
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    parser = BlenderDataParserConfig(data=small_scene).setup()
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        outputs = parser.get_dataparser_outputs(split)
        meta = json.loads((small_scene / f"transforms_{split}.json").read_text())
        assert meta["camera_angle_x"] == CAMERA_ANGLE_X
        assert (meta["depth_format"], meta["depth_type"], meta["depth_scale"]) == ("exr", "z", 1.0)
        assert meta["generator"] == {"name": "ds-make-scene", "seed": 0, "resolution": 32, "version": 1}
        assert len(outputs.image_filenames) == n == len(meta["frames"])
        assert all(p.is_file() for p in outputs.image_filenames)
        poses = np.array([fr["transform_matrix"] for fr in meta["frames"]])
        np.testing.assert_allclose(outputs.cameras.camera_to_worlds.numpy(), poses[:, :3], atol=1e-6)
        np.testing.assert_allclose(outputs.cameras.fx.numpy(), focal_from_width(32), rtol=1e-6)
        assert int(outputs.cameras.width[0]) == 32 and int(outputs.cameras.height[0]) == 32
        for fr in meta["frames"]:
            depth = read_exr(small_scene / fr["depth_file_path"], "Z")
            assert depth.shape == (32, 32) and depth.dtype == np.float32


def test_written_frames_match_render_view(small_scene: Path) -> None:
    meta = json.loads((small_scene / "transforms_test.json").read_text())
    fr = meta["frames"][1]
    rgba, depth = render_view(np.array(fr["transform_matrix"]), 32, 32, focal_from_width(32), supersample=2)
    np.testing.assert_array_equal(_load_rgba(small_scene / (fr["file_path"] + ".png")), rgba)
    np.testing.assert_array_equal(read_exr(small_scene / fr["depth_file_path"], "Z"), depth)


# ----------------------------------------------------------------------------------------------------------------
# 6. The CLI, and what the scene promises
# ----------------------------------------------------------------------------------------------------------------


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "ds-make-scene"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("ds-make-scene")
    if found:
        return [found]
    return [sys.executable, "-c", "from depth_strategies.scenes.builtin import entrypoint; entrypoint()"]


def test_cli_writes_a_complete_dataset(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["--resolution", "32", "--views-train", "3", "--views-val", "1", "--views-test", "2"]
    proc = subprocess.run([*_cli(), str(out), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout and "32x32" in proc.stdout
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        meta = json.loads((out / f"transforms_{split}.json").read_text())
        assert [fr["file_path"] for fr in meta["frames"]] == [f"./{split}/r_{i}" for i in range(n)]
        for fr in meta["frames"]:
            rgba = _load_rgba(out / (fr["file_path"] + ".png"))
            assert rgba.shape == (32, 32, 4)
            assert (rgba[..., 3] == 0).any() and (rgba[..., 3] == 255).any()
            assert (out / fr["depth_file_path"]).is_file()
    # rerunning over its own output is allowed, and stale frames of the previous run are removed
    proc = subprocess.run(
        [*_cli(), str(out), "--resolution", "16", "--views-train", "1", "--views-val", "1", "--views-test", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (out / "train").iterdir()) == ["r_0.png", "r_0_depth.exr"]


def test_refuses_to_overwrite_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        make_scene(foreign, resolution=8, views_train=1, views_val=1, views_test=1)
    proc = subprocess.run([*_cli(), str(foreign), "--resolution", "8"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "refusing to overwrite" in proc.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["precious.txt"]


def test_the_scene_defaults_have_one_source():
    """make_scene and ds-make-scene take DEFAULTS; a protocol's generate block takes PROTOCOL_DEFAULTS."""
    import dataclasses
    import inspect

    from depth_strategies.scenes.builtin import DEFAULTS, PROTOCOL_DEFAULTS, make_scene_cli
    from depth_strategies.study.protocol import GenerateSpec

    defaults = {k: p.default for k, p in inspect.signature(make_scene).parameters.items() if k != "out"}
    assert defaults == dataclasses.asdict(DEFAULTS)
    assert inspect.signature(make_scene_cli).parameters["options"].default is DEFAULTS
    generate = dataclasses.asdict(GenerateSpec())
    assert generate == {k: v for k, v in dataclasses.asdict(PROTOCOL_DEFAULTS).items() if k in generate}
    assert generate == {"resolution": 64, "views_train": 30, "views_val": 1, "views_test": 4, "seed": 0,
                        "scene": "builtin"}  # what protocols that leave keys out have always generated
