"""``ds-split-scene``: train/val/test views redistributed from one split that has depth, nothing copied."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from depth_strategies.core.depth_io import DepthFileError
from depth_strategies.core.training import TrainingLoop
from depth_strategies.scenes.split import DEFAULT_VAL_VIEWS, plan_split, split_scene
from tests.conftest import run_cli, tiny_config

SPLITS = ("train", "val", "test")


def frames_of(out: Path) -> dict:
    return {s: json.loads((out / f"transforms_{s}.json").read_text())["frames"] for s in SPLITS}


# ---------------------------------------------------------------------------------------------------- plan_split
def test_plan_puts_even_views_in_train_and_odd_views_in_disjoint_val_and_test():
    for seed in range(5):
        plan = plan_split(20, n_train=3, n_val=2, n_test=4, seed=seed)
        assert [len(plan[s]) for s in SPLITS] == [3, 2, 4]
        assert all(i % 2 == 0 for i in plan["train"])
        assert all(i % 2 == 1 for i in plan["val"] + plan["test"])
        assert len(set(plan["train"]) | set(plan["val"]) | set(plan["test"])) == 9  # disjoint
        assert all(0 <= i < 20 for s in SPLITS for i in plan[s])
        # evenly spread: 3 of the 10 even views, stride 10/3 candidates -> gaps of 3 or 4 candidates (6 or 8)
        assert all(b - a in (6, 8) for a, b in zip(plan["train"], plan["train"][1:]))


def test_plan_defaults_use_every_view():
    plan = plan_split(20, n_train=None, n_val=2, n_test=None, seed=0)
    assert plan["train"] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert sorted(plan["val"] + plan["test"]) == list(range(1, 20, 2))
    assert plan_split(20, 30, 2, 30, 0)["train"] == plan["train"]  # more than available: all


def test_plan_is_deterministic_per_seed_and_the_seed_moves_the_choice():
    assert plan_split(20, 3, 2, 4, seed=7) == plan_split(20, 3, 2, 4, seed=7)
    plans = {json.dumps(plan_split(20, 3, 2, 4, seed=s)) for s in range(10)}
    assert len(plans) > 1


def test_plan_rejects_too_few_views():
    with pytest.raises(ValueError, match="too few"):
        plan_split(10, None, 5, None, 0)  # 5 odd views: none left for test
    with pytest.raises(ValueError, match="at least one view"):
        plan_split(20, 0, 2, None, 0)


# ---------------------------------------------------------------------------------------------------- split_scene
def test_split_of_a_generated_scene_references_its_images_and_depth_by_absolute_path(scene_copy, tmp_path):
    out = tmp_path / "split"
    plan = split_scene(scene_copy, out, from_split="train", n_val=1)  # 6 train views: 0 2 4 | 1 of 1 3 5 | rest
    assert plan["train"] == [0, 2, 4] and len(plan["val"]) == 1 and len(plan["test"]) == 2
    for split, frames in frames_of(out).items():
        assert [f["source_index"] for f in frames] == plan[split]
        for f in frames:
            i = f["source_index"]
            assert f["file_path"] == str((scene_copy / "train" / f"r_{i}").resolve())
            assert f["depth_file_path"] == str((scene_copy / "train" / f"r_{i}_depth.exr").resolve())
    assert sorted(p.name for p in out.iterdir()) == [f"transforms_{s}.json" for s in ("test", "train", "val")]


def test_split_into_the_source_folder_is_refused_and_changes_nothing(scene_copy):
    before = {p.name: p.read_bytes() for p in scene_copy.glob("transforms_*.json")}
    with pytest.raises(ValueError, match="source scene"):
        split_scene(scene_copy, scene_copy)
    assert {p.name: p.read_bytes() for p in scene_copy.glob("transforms_*.json")} == before


def test_ds_split_scene_on_lego_writes_disjoint_splits_that_train(lego_dir, tmp_path):
    out = tmp_path / "lego_split"
    proc = run_cli(["ds-split-scene", str(lego_dir), str(out), "--n-train", "10", "--n-test", "20"], cwd=tmp_path)
    assert "train: 10" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "transforms_test.json",
        "transforms_train.json",
        "transforms_val.json",
    ]  # nothing copied
    frames = frames_of(out)
    assert [len(frames[s]) for s in SPLITS] == [10, DEFAULT_VAL_VIEWS, 20]
    sources = {s: [f["source_index"] for f in frames[s]] for s in SPLITS}
    assert all(i % 2 == 0 for i in sources["train"]) and all(i % 2 == 1 for i in sources["val"] + sources["test"])
    assert len(set(sources["train"]) | set(sources["val"]) | set(sources["test"])) == 35  # disjoint
    source_json = json.loads((lego_dir / "transforms_test.json").read_text())
    for split in SPLITS:
        for f in frames[split]:
            i = f["source_index"]
            assert Path(f["file_path"] + ".png").is_file() and Path(f["depth_file_path"]).is_file()
            assert Path(f["file_path"]) == (lego_dir / "test" / f"r_{i}").resolve()
            assert Path(f["depth_file_path"]) == (lego_dir / "test" / f"r_{i}_depth_0001.png").resolve()
            assert f["transform_matrix"] == source_json["frames"][i]["transform_matrix"]
    assert json.loads((out / "transforms_train.json").read_text())["camera_angle_x"] == source_json["camera_angle_x"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("depth-baseline", "depth-hybrid"):
            timer = TrainingLoop(tiny_config(method, out), "cpu")
            assert len(timer.pipeline.datamanager.train_dataset) == 10
            assert np.isfinite(timer.run(2))
        assert timer.pipeline.datamanager.train_dataset.has_depth


def test_source_split_without_depth_is_an_error_naming_the_image_and_the_split_with_depth(lego_dir, tmp_path):
    out = tmp_path / "from_train"
    with pytest.raises(DepthFileError) as info:
        split_scene(lego_dir, out, from_split="train")
    msg = str(info.value)
    assert str(lego_dir / "train" / "r_0.png") in msg and "--from-split" in msg and "test" in msg
    assert not out.exists()
    proc = run_cli(["ds-split-scene", str(lego_dir), str(out), "--from-split", "train"], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "r_0.png" in proc.stderr and "--from-split" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
