"""ds-to-nerfstudio-data: a Blender-format scene with depth as nerfstudio-data, read back with the same ground
truth; nerfstudio's depth-nerfacto, as a user runs it on that conversion, trains and is scored."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from PIL import Image

from depth_strategies.core.data import DepthDataManagerConfig, DepthState
from depth_strategies.core.training import TrainingLoop
from depth_strategies.methods import load_size_profile
from depth_strategies.scenes.nerfstudio_data import MILLIMETRES_PER_UNIT, to_nerfstudio_data, z_depth_millimetres
from depth_strategies.study.evaluation import evaluate_views
from depth_strategies.study.runs import RunSpec
from depth_strategies.study.worker import build_config
from tests.conftest import run_cli


def test_z_depth_of_a_ray_distance_map_hand_computed():
    # 1 x 2 image, fx = fy = 1, cx = 1, cy = 0.5: pixel centres at u = -0.5 and +0.5, v = 0: norms sqrt(1.25)
    ray = np.full((1, 2), 2.0 * np.sqrt(1.25))
    state = np.array([[DepthState.SURFACE, DepthState.EMPTY]], dtype=np.uint8)
    mm = z_depth_millimetres(ray, state, 1.0, 1.0, 1.0, 0.5)
    assert mm.dtype == np.uint16 and mm.tolist() == [[2000, 0]]  # 2 units of z; no depth where not a surface


@pytest.fixture(scope="module")
def converted(tiny_scene, tmp_path_factory):
    return to_nerfstudio_data(tiny_scene, tmp_path_factory.mktemp("ns") / "tiny-nerfstudio-data")


def test_conversion_keeps_the_splits_and_references_the_images(tiny_scene, converted):
    meta = json.loads((converted / "transforms.json").read_text())
    for split in ("train", "val", "test"):
        blender = json.loads((tiny_scene / f"transforms_{split}.json").read_text())
        assert len(meta[f"{split}_filenames"]) == len(blender["frames"])
    assert all(Path(f["file_path"]).is_file() and Path(f["file_path"]).is_relative_to(tiny_scene.resolve())
               for f in meta["frames"])  # not copied
    assert not list(converted.glob("*.png")) and len(list((converted / "depth").glob("*.png"))) == len(meta["frames"])
    assert to_nerfstudio_data(tiny_scene, converted) == converted  # a finished conversion is reused


def test_nerfstudio_data_reads_back_the_same_depth_and_states(tiny_scene, converted):
    def datasets(dataparser, data):
        config = DepthDataManagerConfig(dataparser=dataparser, data=data, eval_depth="required")
        manager = config.setup(device="cpu", test_mode="test")
        return manager.eval_dataset

    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    blender = datasets(BlenderDataParserConfig(), tiny_scene)
    ns = datasets(NerfstudioDataParserConfig(depth_unit_scale_factor=1e-3, downscale_factor=1), converted)
    scale = float(ns._dataparser_outputs.dataparser_scale)
    assert scale != 1.0  # nerfstudio-data rescales the poses: the comparison below is in Blender units
    order = {Path(p).name: i for i, p in enumerate(blender._dataparser_outputs.image_filenames)}
    for j, image in enumerate(ns._dataparser_outputs.image_filenames):
        i = order[Path(image).name]
        surface = blender.states[i] == DepthState.SURFACE
        assert torch.equal(ns.states[j] == DepthState.SURFACE, surface)
        error = (ns.depths[j] / scale - blender.depths[i])[surface].abs().max()
        assert error < 1.0 / MILLIMETRES_PER_UNIT  # millimetre quantisation of z, at most a little more along the ray


@pytest.mark.slow
def test_stock_depth_nerfacto_on_the_conversion_trains_and_is_scored_on_the_same_test_views(tiny_scene, tmp_path):
    spec = RunSpec("tiny", "depth-nerfacto-nsdata", None, "depth-nerfacto-nerfstudio-data",
                   tuple(load_size_profile("tiny").items()), 0, 3)
    job = {"run": dataclasses.asdict(spec), "data": str(tiny_scene), "output_dir": str(tmp_path / "out"),
           "device": "cpu"}
    config = build_config(job)
    assert config.pipeline.model.background_color == "white" and not config.pipeline.model.disable_scene_contraction
    loop = TrainingLoop(config, "cpu", test_mode="test")
    loop.run(3)
    views = evaluate_views(loop.pipeline)
    assert len(views) == len(json.loads((tiny_scene / "transforms_test.json").read_text())["frames"])
    assert all(np.isfinite(v.metrics["psnr"]) and "depth_l1" in v.metrics for v in views)


def test_ds_to_nerfstudio_data_as_a_user_types_it(tiny_scene, tmp_path):
    result = run_cli(["ds-to-nerfstudio-data", str(tiny_scene), str(tmp_path / "out")], cwd=tmp_path)
    assert (tmp_path / "out" / "transforms.json").is_file() and "ns-train depth-nerfacto" in result.stdout
    depth = np.asarray(Image.open(next((tmp_path / "out" / "depth").glob("*.png"))))
    assert depth.dtype == np.uint16 and depth.max() > 0
