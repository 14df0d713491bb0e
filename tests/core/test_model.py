"""The strategies end to end: novel views never see ground truth, and depth helps geometry."""

from __future__ import annotations

from typing import Dict

import pytest
import torch

from depth_strategies.core.data import DEPTH_KEY, STATE_KEY
from depth_strategies.core.sampling import DepthGuidedProposalSampler
from depth_strategies.core.training import TrainingLoop
from depth_strategies.methods import STRATEGIES
from depth_strategies.scenes.builtin import make_scene
from tests.conftest import tiny_config

METHODS = tuple(STRATEGIES)


@pytest.mark.parametrize("name", METHODS)
def test_eval_never_reads_ground_truth_depth(name, tiny_scene, monkeypatch):
    loop = TrainingLoop(tiny_config(name, tiny_scene), "cpu", test_mode="test")
    loop.run(3)  # training steps do see depth (for the depth methods)
    pipeline = loop.pipeline
    pipeline.eval()
    guides = []
    original = DepthGuidedProposalSampler.generate_ray_samples

    def spy(self, *args, **kwargs):
        guides.append(kwargs.get("guide_depth"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DepthGuidedProposalSampler, "generate_ray_samples", spy)
    camera, batch = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    with_gt = pipeline.model.get_outputs_for_camera(camera)
    stripped = {k: v for k, v in batch.items() if k not in (DEPTH_KEY, STATE_KEY)}
    without_gt = pipeline.model.get_outputs_for_camera(camera)
    metrics, images = pipeline.model.get_image_metrics_and_images(without_gt, stripped)
    assert guides and all(g is None for g in guides), "the sampler was given ground truth at test time"
    assert torch.equal(with_gt["rgb"], without_gt["rgb"]) and torch.equal(with_gt["depth"], without_gt["depth"])
    assert "psnr" in metrics and "ssim" in metrics and "depth_l1" not in metrics
    assert "img" in images and "depth" in images
    metrics_gt, images_gt = pipeline.model.get_image_metrics_and_images(with_gt, batch)
    assert "depth_l1" in metrics_gt and "depth_error" in images_gt


def average_eval(loop: TrainingLoop) -> Dict[str, float]:
    loop.pipeline.eval()
    metrics = loop.pipeline.get_average_eval_image_metrics()
    loop.pipeline.train()
    return metrics


@pytest.fixture(scope="module")
def convergence_scene(tmp_path_factory):
    return make_scene(
        tmp_path_factory.mktemp("conv") / "scene",
        resolution=48,
        views_train=20,
        views_val=1,
        views_test=3,
        seed=1,
        supersample=1,
    )


CONVERGENCE_ITERATIONS = 200
"""Iterations of the short run: enough for geometry to separate the methods at the tiny size."""


@pytest.fixture(scope="module")
def convergence_results(convergence_scene):
    results = {}
    for name in METHODS:
        torch.manual_seed(0)
        loop = TrainingLoop(tiny_config(name, convergence_scene), "cpu", test_mode="test")
        start = average_eval(loop)
        loop.run(CONVERGENCE_ITERATIONS)
        results[name] = (start, average_eval(loop))
    print({k: (round(v[1]["psnr"], 2), round(v[1]["depth_l1"], 3)) for k, v in results.items()})
    return results


@pytest.mark.slow
def test_baseline_psnr_rises_above_its_start(convergence_results):
    start, end = convergence_results["depth-baseline"]
    assert end["psnr"] > start["psnr"] + 3.0


MAX_DEPTH_L1_RATIO = {"depth-soft": 0.9, "depth-hard": 0.8, "depth-hybrid": 0.8}
"""Largest depth L1 (relative to depth-baseline's) each method may end with after the short run. Soft's prior is the
weakest by design (λ_soft = 0.01 on a squared error of a few tenths of a unit), so its margin is smaller: measured
0.77 and 0.83 of baseline on two machines, against 0.63 (hard) and 0.51 (hybrid)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in METHODS if m != "depth-baseline"])
def test_depth_methods_end_with_clearly_lower_depth_error_than_baseline(name, convergence_results):
    baseline = convergence_results["depth-baseline"][1]["depth_l1"]
    ours = convergence_results[name][1]["depth_l1"]
    limit = MAX_DEPTH_L1_RATIO[name]
    assert ours < limit * baseline, f"{name}: depth L1 {ours:.3f} vs baseline {baseline:.3f} (limit {limit}x)"


@pytest.mark.parametrize("supervise", [True, False])
def test_depth_losses_reach_the_proposal_networks_only_when_supervised(supervise, tiny_scene):
    loop = TrainingLoop(tiny_config("depth-hybrid", tiny_scene, **{"pipeline.model.supervise_proposals": supervise}),
                        "cpu")
    pipeline = loop.pipeline
    pipeline.train()
    ray_bundle, batch = pipeline.datamanager.next_train(0)
    outputs = pipeline.model(ray_bundle)
    loss_dict = pipeline.model.get_loss_dict(outputs, batch, pipeline.model.get_metrics_dict(outputs, batch))
    depth_loss = loss_dict["soft_depth_loss"] + loss_dict["free_space_loss"] + loss_dict["surface_loss"]
    depth_loss.backward()
    proposal_grad = sum(p.grad.abs().sum() for p in pipeline.model.proposal_networks.parameters() if p.grad is not None)
    field_grad = sum(p.grad.abs().sum() for p in pipeline.model.field.parameters() if p.grad is not None)
    assert field_grad > 0
    assert (proposal_grad > 0) == supervise
