"""The per-ray depth of a training batch: one pure function, prepared once per step for sampler and losses."""

from __future__ import annotations

import torch

from depth_strategies.core.data import DepthState
from depth_strategies.core.ray_depth import prepare_ray_depth
from depth_strategies.core.training import TrainingLoop
from tests.conftest import NOISY, tiny_config

SURFACE, EMPTY, UNKNOWN = DepthState.SURFACE, DepthState.EMPTY, DepthState.UNKNOWN
STATE = torch.tensor([[SURFACE], [SURFACE], [EMPTY], [UNKNOWN]], dtype=torch.uint8)
DEPTH = torch.tensor([[2.0], [4.0], [0.0], [0.0]])
IMAGE = torch.tensor([[0], [1], [0], [1]])
FIXED = {"scene_scale": 2.0, "guide_half_width": 0.3, "sigma_window_mult": 0.0, "max_trusted_half_width": 0.0}


def test_without_sigma_every_ray_gets_the_fixed_window_and_no_trust_weight():
    prepared = prepare_ray_depth(DEPTH, STATE, IMAGE, None, **FIXED)
    assert torch.equal(prepared.depth, DEPTH) and torch.equal(prepared.state, STATE)
    assert torch.equal(prepared.half_width, torch.full_like(DEPTH, 0.3))
    assert prepared.sigma is None and prepared.trust is None and prepared.ready.all()


def test_the_window_is_k_sigma_in_blender_units_and_the_trust_its_uncertainty_weight():
    sigma = torch.tensor([[0.4], [0.1], [0.0], [0.0]])  # model units, scene scale 2: 0.2 and 0.05 Blender units
    prepared = prepare_ray_depth(DEPTH, STATE, IMAGE, sigma, **{**FIXED, "sigma_window_mult": 3.0})
    torch.testing.assert_close(prepared.half_width, torch.tensor([[0.6], [0.3], [0.3], [0.3]]))
    torch.testing.assert_close(prepared.trust, torch.tensor([[0.25], [1.0], [1.0], [1.0]]))


def test_the_images_inconsistency_raises_each_rays_sigma():
    sigma = torch.tensor([[0.1], [0.1], [0.1], [0.1]])
    prepared = prepare_ray_depth(DEPTH, STATE, IMAGE, sigma, image_consistency=torch.tensor([0.0, 1.0]), **FIXED)
    torch.testing.assert_close(prepared.sigma, torch.tensor([[0.1], [1.0], [0.1], [1.0]]))
    assert torch.equal(prepared.half_width, torch.full_like(DEPTH, 0.3))  # k = 0: the sigma widens nothing


def test_surface_rays_wider_than_the_trusted_limit_become_unknown():
    sigma = torch.tensor([[0.4], [0.1], [0.4], [0.0]])
    prepared = prepare_ray_depth(DEPTH, STATE, IMAGE, sigma, **{**FIXED, "sigma_window_mult": 3.0,
                                                                 "max_trusted_half_width": 0.5})
    assert prepared.state.flatten().tolist() == [UNKNOWN, SURFACE, EMPTY, UNKNOWN]


def test_the_running_alignment_maps_the_depth_and_gates_each_image_until_warm():
    prepared = prepare_ray_depth(DEPTH, STATE, IMAGE, None, alignment_scale=torch.tensor([2.0, 0.5]),
                                 alignment_shift=torch.tensor([1.0, -1.0]), alignment_seen=torch.tensor([3, 1]),
                                 alignment_warmup=2, **FIXED)
    # scale_i D + shift_i (Blender units) x the scene scale 2
    torch.testing.assert_close(prepared.depth, torch.tensor([[6.0], [0.0], [2.0], [-2.0]]))
    assert prepared.ready.flatten().tolist() == [True, False, True, False]


def test_a_training_step_prepares_its_rays_depth_once_for_sampler_and_losses(tiny_scene, monkeypatch):
    from depth_strategies.core import model as model_module
    from depth_strategies.core.model import RAY_DEPTH_OUTPUT

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return prepare_ray_depth(*args, **kwargs)

    monkeypatch.setattr(model_module, "prepare_ray_depth", counted)
    loop = TrainingLoop(tiny_config("depth-hybrid-uncertain", tiny_scene, **NOISY), "cpu")
    pipeline = loop.pipeline
    pipeline.train()
    ray_bundle, batch = pipeline.datamanager.next_train(0)
    outputs = pipeline.model(ray_bundle)
    assert len(calls) == 1 and RAY_DEPTH_OUTPUT in outputs
    pipeline.model.get_loss_dict(outputs, batch, pipeline.model.get_metrics_dict(outputs, batch))
    assert len(calls) == 1
