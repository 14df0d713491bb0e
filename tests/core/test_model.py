"""The strategies end to end: novel views never see ground truth, and depth helps geometry."""

from __future__ import annotations

import dataclasses
from typing import Dict

import pytest
import torch

from depth_strategies.core import losses
from depth_strategies.core.data import DEPTH_KEY, STATE_KEY, DepthState
from depth_strategies.core.training import TrainingLoop
from depth_strategies.methods import METHOD_FIELDS
from depth_strategies.scenes.builtin import make_scene
from tests.conftest import NOISY, capture_config, tiny_config

METHODS = tuple(METHOD_FIELDS)


@pytest.mark.parametrize("name", METHODS)
def test_eval_never_reads_ground_truth_depth(name, tiny_scene):
    """A ray bundle that *carries* (wrong) ground-truth depth renders exactly as one without, in eval mode."""
    loop = TrainingLoop(tiny_config(name, tiny_scene), "cpu", test_mode="test")
    loop.run(3)  # training steps do see depth (for the depth methods)
    pipeline = loop.pipeline
    pipeline.eval()
    camera, batch = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    plain = camera.generate_rays(camera_indices=0, keep_shape=True)
    carrying = camera.generate_rays(camera_indices=0, keep_shape=True)
    shape = carrying.origins.shape[:-1] + (1,)
    carrying.metadata = {**(carrying.metadata or {}), DEPTH_KEY: torch.full(shape, 3.0),
                         STATE_KEY: torch.full(shape, DepthState.SURFACE, dtype=torch.uint8)}
    with torch.no_grad():
        without_gt = pipeline.model.get_outputs_for_camera_ray_bundle(plain)
        with_gt = pipeline.model.get_outputs_for_camera_ray_bundle(carrying)
    for key in ("rgb", "depth", "accumulation"):
        assert torch.equal(with_gt[key], without_gt[key]), key
    stripped = {k: v for k, v in batch.items() if k not in (DEPTH_KEY, STATE_KEY)}
    metrics, images = pipeline.model.get_image_metrics_and_images(without_gt, stripped)
    assert "psnr" in metrics and "ssim" in metrics and "depth_l1" not in metrics
    assert "img" in images and "depth" in images
    metrics_gt, images_gt = pipeline.model.get_image_metrics_and_images(with_gt, batch)
    assert "depth_l1" in metrics_gt and "depth_error" in images_gt


@pytest.mark.parametrize("loss", ["ds-nerf", "urf"])
def test_nerfstudio_soft_losses_train(loss, tiny_scene):
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-soft", tiny_scene, **{"pipeline.model.soft_depth_loss": loss}), "cpu")
    pipeline = loop.pipeline
    ray_bundle, batch = pipeline.datamanager.next_train(0)
    outputs = pipeline.model(ray_bundle)
    loss_dict = pipeline.model.get_loss_dict(outputs, batch, pipeline.model.get_metrics_dict(outputs, batch))
    assert torch.isfinite(loss_dict["soft_depth_loss"]) and loss_dict["soft_depth_loss"] > 0
    loop.run(3)


def test_interlevel_and_distortion_losses_stay_finite_on_guided_samples(tiny_scene):
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hard", tiny_scene), "cpu")
    loop.run(2)
    pipeline = loop.pipeline
    ray_bundle, batch = pipeline.datamanager.next_train(2)
    outputs = pipeline.model(ray_bundle)
    loss_dict = pipeline.model.get_loss_dict(outputs, batch, pipeline.model.get_metrics_dict(outputs, batch))
    for name in ("interlevel_loss", "distortion_loss", "free_space_loss", "surface_loss", "empty_space_loss"):
        assert torch.isfinite(loss_dict[name]), name
    sum(loss_dict.values()).backward()
    grads = [p.grad for p in pipeline.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_depth_losses_need_depth_in_the_batch(tiny_scene):
    loop = TrainingLoop(tiny_config("depth-baseline", tiny_scene, **{"pipeline.model.empty_space_mult": 0.01}), "cpu")
    pipeline = loop.pipeline
    ray_bundle, batch = pipeline.datamanager.next_train(0)  # depth-baseline's datamanager ignores training depth
    outputs = pipeline.model(ray_bundle)
    with pytest.raises(ValueError, match="train-depth required"):
        pipeline.model.get_loss_dict(outputs, batch, pipeline.model.get_metrics_dict(outputs, batch))


def test_depth_losses_do_not_depend_on_the_dataparser_scale():
    from nerfstudio.cameras.rays import Frustums, RaySamples

    from depth_strategies.core.model import depth_losses, resolve_scene
    from depth_strategies.methods import method_config

    torch.manual_seed(0)
    config = resolve_scene(method_config("depth-hybrid").pipeline.model, {})
    starts = [torch.linspace(2.0, 5.5, 8).expand(4, 8)[..., None], torch.linspace(2.0, 5.0, 4).expand(4, 4)[..., None]]
    widths = [0.5, 1.0]
    weights = [torch.rand(4, 8, 1) / 8, torch.rand(4, 4, 1) / 4]
    depth = torch.tensor([[3.0], [4.2], [0.0], [0.0]])
    state = torch.tensor([[DepthState.SURFACE], [DepthState.SURFACE], [DepthState.EMPTY], [DepthState.UNKNOWN]])

    def at_scale(scale):
        samples = [
            RaySamples(frustums=Frustums(origins=torch.zeros(*s.shape[:-1], 3), directions=torch.ones(*s.shape[:-1], 3),
                                         starts=s * scale, ends=(s + w) * scale, pixel_area=torch.ones_like(s)))
            for s, w in zip(starts, widths)
        ]
        return depth_losses(weights, samples, depth * scale, state, scale, config)

    half, one = at_scale(0.5), at_scale(1.0)
    assert set(half) == {"soft_depth_loss", "free_space_loss", "surface_loss", "empty_space_loss"}
    for name in one:
        torch.testing.assert_close(half[name], one[name], msg=name)


def test_the_samplers_ray_bundle_leaves_the_batch_depth_out_and_the_callers_bundle_keeps_it():
    from nerfstudio.cameras.rays import RayBundle

    from depth_strategies.core.data import SIGMA_KEY
    from depth_strategies.core.model import without_batch_depth

    norms = torch.rand(4, 1)
    bundle = RayBundle(origins=torch.zeros(4, 3), directions=torch.ones(4, 3), pixel_area=torch.ones(4, 1),
                       metadata={DEPTH_KEY: torch.rand(4, 1), STATE_KEY: torch.zeros(4, 1, dtype=torch.uint8),
                                 SIGMA_KEY: torch.rand(4, 1), "directions_norm": norms})
    stripped = without_batch_depth(bundle)
    assert set(stripped.metadata) == {"directions_norm"} and torch.equal(stripped.metadata["directions_norm"], norms)
    assert set(bundle.metadata) == {DEPTH_KEY, STATE_KEY, SIGMA_KEY, "directions_norm"}  # the caller's is unchanged
    assert stripped.origins is bundle.origins and stripped.directions is bundle.directions
    assert without_batch_depth(stripped) is stripped  # nothing to leave out: the bundle itself


def test_build_nerfacto_modules_gives_nerfstudios_parameters(tiny_scene, monkeypatch):
    """Our module construction (offline LPIPS, guided sampler) builds exactly nerfstudio's parameters."""
    from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig

    loop = TrainingLoop(tiny_config("depth-baseline", tiny_scene), "cpu")
    ours = loop.pipeline.model
    fields = {f.name: getattr(ours.config, f.name) for f in dataclasses.fields(NerfactoModelConfig)
              if f.init and f.name != "_target"}
    # nerfstudio's populate_modules ends by building LPIPS, which downloads AlexNet: a stand-in without parameters
    no_lpips = lambda **_: torch.nn.Identity()  # noqa: E731
    monkeypatch.setattr("torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity", no_lpips)
    theirs = NerfactoModel(NerfactoModelConfig(**fields), scene_box=ours.scene_box, num_train_data=ours.num_train_data,
                           metadata=ours.kwargs.get("metadata", {}))
    ours_shapes = {k: tuple(v.shape) for k, v in ours.named_parameters()}
    theirs_shapes = {k: tuple(v.shape) for k, v in theirs.named_parameters()}
    assert ours_shapes == theirs_shapes


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


SOFT_TEST_METHODS = ("depth-soft", "depth-baseline")
"""The methods whose per-pixel training-view depth errors the soft strategy's test compares."""


def training_view_depth_errors(loop: TrainingLoop, truth) -> torch.Tensor:
    """|expected depth - D_gt| on every surface pixel of every training view (Blender units): the error the soft
    loss targets, on the rays it trains on, rendered without ground truth. ``truth``: the training split read with
    its depth (depth-baseline's own datamanager does not read it)."""
    pipeline = loop.pipeline
    pipeline.eval()
    cameras = pipeline.datamanager.train_dataset.cameras
    scale = pipeline.model.scene_scale
    errors = []
    for index in range(len(cameras)):
        data = truth[index]
        with torch.no_grad():
            outputs = pipeline.model.get_outputs_for_camera(cameras[index : index + 1])
        surface = data[STATE_KEY] == DepthState.SURFACE
        errors.append(((outputs["expected_depth"] - data[DEPTH_KEY]) / scale).abs()[surface])
    pipeline.train()
    return torch.cat(errors)


@pytest.fixture(scope="module")
def convergence_results(convergence_scene):
    """{method: (metrics before, metrics after, per-pixel training-view depth errors after (None except for the
    soft strategy's test))}."""
    results = {}
    truth = None
    from depth_strategies.core.training import seed_everything

    for name in METHODS:
        seed_everything(0)  # torch, Python and NumPy: nerfstudio's pixel sampler draws from the latter two, whose
        # state would otherwise be whatever the tests run before left (the outcome depended on the test order)
        loop = TrainingLoop(tiny_config(name, convergence_scene), "cpu", test_mode="test")
        if truth is None and loop.pipeline.datamanager.train_dataset.has_depth:
            truth = loop.pipeline.datamanager.train_dataset
        start = average_eval(loop)
        loop.run(CONVERGENCE_ITERATIONS)
        results[name] = (start, average_eval(loop), loop)
    for name, (start, end, loop) in results.items():
        errors = training_view_depth_errors(loop, truth) if name in SOFT_TEST_METHODS else None
        results[name] = (start, end, errors)
    print({k: (round(v[1]["psnr"], 2), round(v[1]["depth_l1"], 3)) for k, v in results.items()})
    return results


@pytest.mark.slow
def test_baseline_psnr_rises_above_its_start(convergence_results):
    start, end, _ = convergence_results["depth-baseline"]
    assert end["psnr"] > start["psnr"] + 3.0


MAX_DEPTH_L1_RATIO = {"depth-hard": 0.8, "depth-hybrid": 0.8}
"""Largest test-view depth L1 (relative to depth-baseline's) the guided methods may end with after the short run
(measured 0.63 and 0.51 of the baseline's in version 0.1)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MAX_DEPTH_L1_RATIO))
def test_guided_methods_end_with_clearly_lower_depth_error_than_baseline(name, convergence_results):
    baseline = convergence_results["depth-baseline"][1]["depth_l1"]
    ours = convergence_results[name][1]["depth_l1"]
    limit = MAX_DEPTH_L1_RATIO[name]
    assert ours < limit * baseline, f"{name}: depth L1 {ours:.3f} vs baseline {baseline:.3f} (limit {limit}x)"


@pytest.mark.slow
def test_soft_strategy_lowers_the_depth_error_it_targets_on_most_training_rays(convergence_results):
    """The soft loss pulls the expected depth of training rays to D_gt: after the short run, on the same pixels of
    the same training views, the soft strategy's error is smaller than the baseline's on more pixels than chance
    allows (one-sided sign test, p < 0.001). No margin to tune: a soft loss with no effect fails it.

    The effect is small after 200 iterations at lambda_soft = 0.03 and CPU training is not bitwise reproducible,
    so the pixels of all 20 training views are compared: on the first 4 alone CI once measured 1959 of 3776
    (p = 0.011). Neighbouring pixels are not independent, so the p-value only detects an effect; it does not size
    it."""
    from scipy.stats import binomtest

    soft, baseline = convergence_results["depth-soft"][2], convergence_results["depth-baseline"][2]
    differs = soft != baseline
    wins = int((soft[differs] < baseline[differs]).sum())
    n = int(differs.sum())
    p = binomtest(wins, n, 0.5, alternative="greater").pvalue
    assert p < 1e-3, f"soft beats the baseline on {wins} of {n} surface pixels (p = {p:.3g})"


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


# ------------------------------------------------------------------------------------ depth as users have it


def one_step(loop: TrainingLoop, step: int = 0):
    pipeline = loop.pipeline
    pipeline.train()
    ray_bundle, batch = pipeline.datamanager.next_train(step)
    outputs = pipeline.model(ray_bundle)
    return ray_bundle, batch, outputs, pipeline.model.get_loss_dict(outputs, batch,
                                                                    pipeline.model.get_metrics_dict(outputs, batch))


def losses_again(model, outputs, batch):
    """The loss terms of the same rendered batch under the model's current config: the per-ray depth that the step
    prepared under the old config is dropped, so the losses prepare it again from the batch."""
    from depth_strategies.core.model import RAY_DEPTH_OUTPUT

    outputs = {k: v for k, v in outputs.items() if k != RAY_DEPTH_OUTPUT}
    return model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch))


def test_the_uncertain_variant_widens_the_window_to_three_sigma_and_down_weights_noisy_rays(tiny_scene):
    from depth_strategies.core.data import SIGMA_KEY

    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hybrid-uncertain", tiny_scene, **NOISY), "cpu")
    model = loop.pipeline.model
    ray_bundle, batch, outputs, loss_dict = one_step(loop)
    scale = model.scene_scale
    # the reported sigma, raised to the image's multi-view inconsistency where that is larger
    sigma = torch.maximum(ray_bundle.metadata[SIGMA_KEY], model.image_consistency[ray_bundle.camera_indices])
    _, valid, half_width = model._training_guide(ray_bundle)
    expected = torch.clamp(3.0 * sigma / scale, min=0.3) * scale  # sigma = 0.02 + 0.05 D: 3 sigma > 0.3 for D > 1.6
    torch.testing.assert_close(half_width, expected)
    assert (half_width[valid] > 0.3 * scale * 1.5).all()  # every surface ray of the scene (D in [2, 6]) is wider
    # the same batch through depth-hybrid (the fixed window, equal weights) gives larger depth losses
    loop.pipeline.model.config.sigma_window_mult = 0.0
    fixed = losses_again(model, outputs, batch)
    assert loss_dict["surface_loss"] < fixed["surface_loss"]
    for value in loss_dict.values():
        assert torch.isfinite(value)


def test_with_exact_depth_the_uncertain_variant_samples_like_depth_hybrid(tiny_scene):
    # exact depth reports no sigma and agrees across views (inconsistency < 0.1 = 0.3 / 3): the fixed window, and
    # every ray with depth guided
    loop = TrainingLoop(tiny_config("depth-hybrid-uncertain", tiny_scene), "cpu")
    model = loop.pipeline.model
    assert 0 <= float(model.image_consistency.max()) < 0.1 * model.scene_scale
    ray_bundle, _, _, _ = one_step(loop)
    _, valid, half_width = model._training_guide(ray_bundle)
    torch.testing.assert_close(half_width, torch.full_like(half_width, 0.3 * model.scene_scale))
    assert torch.equal(valid, ray_bundle.metadata[STATE_KEY] == DepthState.SURFACE)


MONOCULAR = {"pipeline.datamanager.depth_degradations": (
    "monocular(scale_lo=0.5, scale_hi=2.0, shift_lo=-1.0, shift_hi=1.0)",)}


def test_inconsistent_monocular_depth_widens_the_uncertain_windows_and_thins_the_guidance(tiny_scene):
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hybrid-uncertain", tiny_scene, **MONOCULAR), "cpu")
    model = loop.pipeline.model
    scale = model.scene_scale
    assert float(torch.median(model.image_consistency)) > 1.0 * scale  # a monocular network reports no sigma
    ray_bundle, batch, outputs, loss_dict = one_step(loop)
    surface = ray_bundle.metadata[STATE_KEY] == DepthState.SURFACE
    _, valid, half_width = model._training_guide(ray_bundle)
    consistency = model.image_consistency[ray_bundle.camera_indices]
    torch.testing.assert_close(half_width, torch.clamp(3.0 * consistency / scale, min=0.3) * scale)
    trust = losses.uncertainty_weight(half_width / scale, 0.3)
    assert (valid <= surface).all()  # only rays with depth, and only some of them
    assert valid.sum() < 0.5 * surface.sum() and float(trust[surface].mean()) < 0.5
    # without the inconsistency (the variant as first defined), the same batch pulls harder on this depth
    model.image_consistency = None
    fixed = losses_again(model, outputs, batch)
    assert loss_dict["surface_loss"] < fixed["surface_loss"]


def test_depth_too_uncertain_for_the_widest_trusted_window_trains_like_a_ray_without_depth(tiny_scene):
    # every image inconsistent by 1 unit: each ray's window 3 sigma = 3 exceeds the variant's limit of 0.6
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hybrid-uncertain", tiny_scene, **MONOCULAR), "cpu")
    model = loop.pipeline.model
    assert model.config.max_trusted_half_width == 0.6
    model.image_consistency = torch.full_like(model.image_consistency, 1.0 * model.scene_scale)
    ray_bundle, batch, outputs, loss_dict = one_step(loop)
    assert (batch[STATE_KEY] == DepthState.SURFACE).any() and (batch[STATE_KEY] == DepthState.EMPTY).any()
    _, valid, _ = model._training_guide(ray_bundle)
    assert not valid.any()
    for name in ("soft_depth_loss", "free_space_loss", "surface_loss", "empty_space_loss"):
        assert loss_dict[name].item() == 0.0, name  # the mask follows the trust in the image's depth: none here
    # the mask loss without mask_follows_trust; without the limit, the same batch is guided and pulled by the depth
    model.config.mask_follows_trust = False
    masked = losses_again(model, outputs, batch)
    assert masked["empty_space_loss"].item() > 0.0 and masked["surface_loss"].item() == 0.0
    model.config.max_trusted_half_width = 0.0
    unlimited = losses_again(model, outputs, batch)
    assert unlimited["surface_loss"].item() > 0.0 and unlimited["soft_depth_loss"].item() > 0.0
    assert unlimited["empty_space_loss"].item() == masked["empty_space_loss"].item()


def test_where_it_trusts_no_depth_the_uncertain_variant_trains_exactly_like_the_baseline(tiny_scene):
    from depth_strategies.core.training import seed_everything

    parameters = {}
    for name in ("depth-baseline", "depth-hybrid-uncertain"):
        seed_everything(0)
        loop = TrainingLoop(tiny_config(name, tiny_scene, **MONOCULAR), "cpu")
        model = loop.pipeline.model
        if model.image_consistency is not None:  # every image inconsistent by 1 unit: every window exceeds 0.6
            model.image_consistency = torch.full_like(model.image_consistency, 1.0 * model.scene_scale)
        loop.run(4)
        parameters[name] = {k: v.detach().clone() for k, v in model.named_parameters()}
    baseline, variant = parameters["depth-baseline"], parameters["depth-hybrid-uncertain"]
    assert baseline.keys() == variant.keys()
    for key in baseline:
        assert torch.equal(baseline[key], variant[key]), key


def test_the_trusted_window_limit_drops_exactly_the_rays_wider_than_it(tiny_scene):
    # sigma = 0.02 + 0.05 D on D in [2, 6]: windows from 0.36 to 0.96, on both sides of the limit 0.6
    torch.manual_seed(0)
    loop = TrainingLoop(tiny_config("depth-hybrid-uncertain", tiny_scene, **{
        **NOISY, "pipeline.model.guide_by_trust": False}), "cpu")
    model = loop.pipeline.model
    ray_bundle, _, _, _ = one_step(loop)
    surface = ray_bundle.metadata[STATE_KEY] == DepthState.SURFACE
    _, valid, half_width = model._training_guide(ray_bundle)
    narrow = half_width <= 0.6 * model.scene_scale
    assert (surface & narrow).any() and (surface & ~narrow).any()
    assert torch.equal(valid, surface & narrow)


def test_the_strategies_without_consistency_sigma_ignore_the_measured_inconsistency(tiny_scene):
    loop = TrainingLoop(tiny_config("depth-hybrid", tiny_scene, **MONOCULAR), "cpu")
    model = loop.pipeline.model
    assert model.image_consistency is None
    ray_bundle, _, _, _ = one_step(loop)
    _, valid, half_width = model._training_guide(ray_bundle)
    torch.testing.assert_close(half_width, torch.full_like(half_width, 0.3 * model.scene_scale))
    assert torch.equal(valid, ray_bundle.metadata[STATE_KEY] == DepthState.SURFACE)


def test_alignment_recovers_a_monocular_scale_and_gates_guidance_until_warm(tiny_scene):
    torch.manual_seed(0)
    overrides = {"pipeline.datamanager.depth_degradations": ("monocular(scale_lo=0.5, scale_hi=0.5, shift_lo=1.0, "
                                                              "shift_hi=1.0)",),
                 "pipeline.model.alignment_warmup": 3, "pipeline.model.alignment_min_rays": 2}
    loop = TrainingLoop(tiny_config("depth-hybrid-ssi", tiny_scene, **overrides), "cpu")
    model = loop.pipeline.model
    ray_bundle, batch, outputs, loss_dict = one_step(loop)
    assert not model._training_guide(ray_bundle)[1].any()  # no image warm yet: no guided window
    assert loss_dict["surface_loss"].item() == 0.0 and loss_dict["free_space_loss"].item() == 0.0
    assert loss_dict["soft_depth_loss"].item() > 0.0
    assert int(model.alignment_updates) == 1 and not torch.equal(model.alignment_scale, torch.ones_like(
        model.alignment_scale))
    loop.run(3)
    ray_bundle, batch, outputs, loss_dict = one_step(loop, 3)
    assert model._training_guide(ray_bundle)[1].any()  # warm images: guided by the aligned depth
    assert loss_dict["surface_loss"].item() > 0.0
    # the running alignment maps the given depth (0.5 D + 1) to the model's depth: exactly so when the model's depth
    # is the truth, which a checkpoint-free check can set up directly
    given = batch[DEPTH_KEY] / model.scene_scale
    surface = batch[STATE_KEY] == DepthState.SURFACE
    truth = (given - 1.0) / 0.5

    scale, shift, _ = losses.least_squares_scale_shift(truth, given, surface, batch["indices"][:, :1],
                                                       model.num_train_data, min_rays=2)
    seen = torch.unique(batch["indices"][:, 0][surface[:, 0]])
    torch.testing.assert_close(scale[seen], torch.full_like(scale[seen], 2.0))
    torch.testing.assert_close(shift[seen], torch.full_like(shift[seen], -2.0))


def test_the_alignment_is_saved_with_the_model(tiny_scene):
    loop = TrainingLoop(tiny_config("depth-soft-ssi", tiny_scene, **{"pipeline.model.alignment_min_rays": 2}), "cpu")
    loop.run(2)
    state = loop.pipeline.model.state_dict()
    assert int(state["alignment_updates"]) == 2 and state["alignment_scale"].shape == (6,)
    assert state["alignment_seen"].sum() > 0 and state["alignment_seen"].max() <= 2
    assert state["alignment_moments"].shape == (6, 5) and state["alignment_moments"][:, 0].sum() > 0


# ------------------------------------------------------------------------------------ scene types
def test_the_scene_type_fills_only_the_scene_fields_left_unset():
    from depth_strategies.core.model import SCENE_PRESETS, resolve_scene
    from depth_strategies.methods import method_config

    config = method_config("depth-hybrid").pipeline.model
    assert config.near_plane is None and config.scene_type == "auto"
    obj = resolve_scene(config, {})  # no word from the data: the object scenes this plugin started with
    assert obj.scene_type == "object" and obj.camera_optimizer.mode == "off"
    assert {k: getattr(obj, k) for k in SCENE_PRESETS["object"]} == SCENE_PRESETS["object"]
    unbounded = resolve_scene(config, {"scene_type": "unbounded"})
    assert {k: getattr(unbounded, k) for k in SCENE_PRESETS["unbounded"]} == SCENE_PRESETS["unbounded"]
    assert unbounded.camera_optimizer.mode == "SO3xR3" and unbounded.surface_variance_mult == 0.0
    mine = resolve_scene(dataclasses.replace(config, near_plane=0.5, optimize_cameras=False), {"scene_type":
                                                                                                 "unbounded"})
    assert mine.near_plane == 0.5 and mine.far_plane == 1000.0 and mine.camera_optimizer.mode == "off"
    forced = resolve_scene(dataclasses.replace(config, scene_type="object"), {"scene_type": "unbounded"})
    assert forced.scene_type == "object" and forced.near_plane == 2.0


@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_on_a_capture_without_alpha_as_an_unbounded_scene(name, tiny_capture):
    from nerfstudio.field_components.spatial_distortions import SceneContraction
    from nerfstudio.model_components.ray_samplers import UniformLinDispPiecewiseSampler

    torch.manual_seed(0)
    loop = TrainingLoop(capture_config(name, tiny_capture), "cpu")
    model = loop.pipeline.model
    assert model.config.scene_type == "unbounded"
    assert isinstance(model.field.spatial_distortion, SceneContraction)
    assert isinstance(model.proposal_sampler.initial_sampler, UniformLinDispPiecewiseSampler)
    states = loop.pipeline.datamanager.train_dataset.states
    if states is not None:
        assert not (states == DepthState.EMPTY).any()  # no alpha: no ray is known to be empty
        assert (states == DepthState.SURFACE).any()
    ray_bundle, batch, outputs, loss_dict = one_step(loop)
    for key, value in loss_dict.items():
        assert torch.isfinite(value), key
    if model.config.guided_fraction > 0 and model.config.depth_alignment == "none":
        depth, valid, half_width = model._training_guide(ray_bundle)
        assert depth is not None and valid.any()
    loop.run(2)


# ------------------------------------------------------------------------------------ fields that need another
def _rule_cases():
    """Per rule: the fields that break it (on depth-hybrid-uncertain, which sets every trust field) and the ones
    that would mend it."""
    return {
        "consistency_sigma_needs_sigma_window_mult": ({"sigma_window_mult": 0.0, "guide_by_trust": False,
                                                       "max_trusted_half_width": 0.0, "mask_follows_trust": False},
                                                      {"sigma_window_mult": 3.0}),
        "guide_by_trust_needs_sigma_window_mult": ({"sigma_window_mult": 0.0, "consistency_sigma": False,
                                                    "max_trusted_half_width": 0.0, "mask_follows_trust": False},
                                                   {"sigma_window_mult": 3.0}),
        "guide_by_trust_needs_guided_fraction": ({"guided_fraction": 0.0}, {"guided_fraction": 0.5}),
        "max_trusted_half_width_needs_sigma_window_mult": ({"sigma_window_mult": 0.0, "consistency_sigma": False,
                                                            "guide_by_trust": False},
                                                           {"sigma_window_mult": 3.0}),
        "mask_follows_trust_needs_max_trusted_half_width": ({"max_trusted_half_width": 0.0},
                                                            {"max_trusted_half_width": 0.6}),
        "mask_follows_trust_needs_empty_space_mult": ({"empty_space_mult": 0.0}, {"empty_space_mult": 0.015}),
        "alignment_momentum_needs_depth_alignment": ({"alignment_momentum": 0.5}, {"depth_alignment": "scale-shift"}),
        "alignment_warmup_needs_depth_alignment": ({"alignment_warmup": 10}, {"depth_alignment": "scale-shift"}),
        "alignment_min_rays_needs_depth_alignment": ({"alignment_min_rays": 2}, {"depth_alignment": "scale-shift"}),
        "random_training_background_steps_needs_random_training_background": (
            {"random_training_background": False, "random_training_background_steps": None},
            {"random_training_background": True}),
        "soft_depth_loss_needs_soft_depth_mult": ({"soft_depth_loss": "urf", "soft_depth_mult": 0.0,
                                                   "depth_penalty": "l2", "depth_penalty_scale": 0.1},
                                                  {"soft_depth_mult": 0.03}),
        "soft_depth_sigma_needs_soft_depth_loss": ({"soft_depth_sigma": 0.05}, {"soft_depth_loss": "ds-nerf",
                                                                                "depth_penalty": "l2",
                                                                                "depth_penalty_scale": 0.1}),
        "depth_penalty_needs_soft_depth_mult": ({"soft_depth_mult": 0.0}, {"soft_depth_mult": 0.03}),
        "depth_penalty_needs_soft_depth_loss": ({"soft_depth_loss": "ds-nerf"}, {"soft_depth_loss": "l2"}),
        "depth_penalty_scale_needs_depth_penalty": ({"depth_penalty": "l2", "depth_penalty_scale": 0.5},
                                                    {"depth_penalty": "huber"}),
        "appearance_check_from_needs_appearance_check_every": ({"appearance_check_every": 0,
                                                                "appearance_check_from": 50},
                                                               {"appearance_check_every": 100}),
    }


def test_every_config_rule_has_a_test():
    from depth_strategies.core.config_checks import RULES

    assert {rule.name for rule in RULES} == set(_rule_cases())


@pytest.mark.parametrize("rule", list(_rule_cases()))
def test_a_field_that_does_nothing_without_another_is_refused(rule):
    from depth_strategies.core.config_checks import RULES, check_model_config
    from depth_strategies.methods import derive, method_config

    (checked,) = [r for r in RULES if r.name == rule]
    broken, mend = _rule_cases()[rule]
    config = dataclasses.replace(method_config("depth-hybrid-uncertain").pipeline.model, **broken)
    with pytest.raises(ValueError) as error:
        check_model_config(config)
    message = str(error.value)
    assert checked.field in message and checked.needs in message and checked.fix in message
    assert checked.fix.startswith("--pipeline.model." + checked.needs.replace("_", "-"))
    check_model_config(dataclasses.replace(config, **mend))  # the flag the message names mends it
    with pytest.raises(ValueError, match=checked.field):  # a method config cannot be made with it either
        derive(method_config("depth-hybrid-uncertain"), "broken", **broken)


def test_every_registered_method_passes_the_config_rules_on_either_scene_type():
    from depth_strategies.core.config_checks import check_model_config
    from depth_strategies.core.model import resolve_scene
    from depth_strategies.methods import method_config

    for name in METHODS:
        for kind in ("object", "unbounded"):
            check_model_config(resolve_scene(method_config(name).pipeline.model, {"scene_type": kind}))


def test_the_model_refuses_a_field_without_the_one_it_needs_when_built(tiny_scene):
    # left to the scene type, random_training_background is decided only when the model is built
    config = tiny_config("depth-baseline", tiny_scene, **{"pipeline.model.random_training_background_steps": None,
                                                          "pipeline.model.scene_type": "unbounded",
                                                          "pipeline.model.background_color": "white"})
    with pytest.raises(ValueError, match="random_training_background_steps.*random-training-background True"):
        TrainingLoop(config, "cpu")
