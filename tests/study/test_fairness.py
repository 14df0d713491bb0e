"""Fair comparisons: every method of every shipped protocol samples and composites rays exactly as the protocol's
baseline does, except where the method is declared to differ (its own fields, its protocol overrides)."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Set, Tuple

import pytest
import torch

from depth_strategies.core.colliders import BoxNearFarCollider
from depth_strategies.core.training import TrainingLoop
from depth_strategies.methods import METHOD_FIELDS, OBJECT_SETTINGS
from depth_strategies.study.protocol import load_protocol, shipped_protocols
from depth_strategies.study.runs import RunSpec, expand_runs
from depth_strategies.study.worker import build_config

SIGNATURE_FIELDS: Dict[str, Tuple[str, ...]] = {
    "collider": ("sample_inside_box", "near_plane", "far_plane"),
    "initial_sampler": ("proposal_initial_sampler",),
    "samples": ("num_proposal_samples_per_ray", "num_nerf_samples_per_ray"),
    "background": ("background_color", "random_training_background", "random_training_background_steps"),
    "contraction": ("disable_scene_contraction",),
}
"""What is compared, and the model fields that may change it."""


def sampling_signature(model: torch.nn.Module) -> Dict[str, Any]:
    """How the built model samples, bounds and composites a ray, at training and at test time."""
    collider = model.collider
    return {
        "collider": (
            type(collider).__name__,
            collider.near_plane,
            collider.far_plane,
            getattr(collider, "reset_near_plane", False),  # True: the near plane drops to 0 at test time
            tuple(collider.aabb.flatten().tolist()) if isinstance(collider, BoxNearFarCollider) else None,
        ),
        "initial_sampler": type(model.proposal_sampler.initial_sampler).__name__,
        "samples": (tuple(model.proposal_sampler.num_proposal_samples_per_ray),
                    model.proposal_sampler.num_nerf_samples_per_ray),
        "background": (model.renderer_rgb.background_color, type(model.renderer_rgb).__name__,
                       getattr(model.renderer_rgb, "random_steps", None)),
        "contraction": model.field.spatial_distortion is not None,
    }


def declared_fields(run: RunSpec, protocol_overrides: Set[str], baseline_model: Any) -> Set[str]:
    """Model fields a run is declared to change: its registered method's fields, its own overrides in the protocol
    that set a value other than the baseline's, and, for nerfstudio's reference as shipped, the object settings it
    does not take. (An override to the baseline's own value declares nothing: such a run must match.)"""
    declared = set(METHOD_FIELDS.get(run.base, {})) if run.base else set()
    own = {key: value for key, value in run.overrides if key not in protocol_overrides}
    for key, value in own.items():
        field = key.split(".")[-1]
        if not key.startswith("pipeline.model.") or getattr(baseline_model, field, object()) != value:
            declared.add(field)
    if run.external and not own:
        declared |= {key.split(".")[-1] for key in OBJECT_SETTINGS}
    return declared


def protocol_runs():
    for name in shipped_protocols():
        protocol = load_protocol(name)
        first_condition = protocol.conditions[0].name if protocol.conditions else None
        runs = [r for r in expand_runs(protocol) if r.seed == protocol.seeds[0] and r.scene == protocol.scenes[0].name
                and r.condition in (None, first_condition)]  # conditions change the training depth, not sampling
        yield pytest.param(protocol, runs, id=name)


@pytest.mark.slow
@pytest.mark.parametrize("protocol,runs", protocol_runs())
def test_every_method_of_a_protocol_samples_like_its_baseline_except_where_declared(protocol, runs, tiny_scene,
                                                                                     tmp_path):
    from depth_strategies.methods import load_size_profile

    common = set(load_size_profile(protocol.sizes)) if protocol.sizes else set()
    common |= set(protocol.overrides)
    signatures, configs = {}, {}
    for run in runs:
        job = {"run": dataclasses.asdict(run), "data": str(tiny_scene), "output_dir": str(tmp_path / "out"),
               "device": "cpu"}
        configs[run.method] = build_config(job)
        loop = TrainingLoop(configs[run.method], "cpu")
        signatures[run.method] = (run, sampling_signature(loop.pipeline.model))
        if run.external:
            loop.run(2)  # the references are in the headline tables: they must train, not only build
    _, reference = signatures[protocol.baseline]
    for method, (run, signature) in signatures.items():
        declared = declared_fields(run, common, configs[protocol.baseline].pipeline.model)
        for key, fields in SIGNATURE_FIELDS.items():
            if not declared & set(fields):
                assert signature[key] == reference[key], f"{protocol.name}/{method}: {key} differs from the baseline"


def test_the_object_reference_samples_inside_the_box_like_the_methods(tiny_scene, tmp_path):
    protocol = load_protocol("lego-fewview")
    runs = {r.method: r for r in expand_runs(protocol) if r.seed == protocol.seeds[0]}
    signatures = {}
    for method in ("depth-baseline", "depth-nerfacto-object", "depth-nerfacto"):
        job = {"run": dataclasses.asdict(runs[method]), "data": str(tiny_scene), "output_dir": str(tmp_path / method),
               "device": "cpu"}
        signatures[method] = sampling_signature(TrainingLoop(build_config(job), "cpu").pipeline.model)
    assert signatures["depth-nerfacto-object"] == signatures["depth-baseline"]
    as_shipped = signatures["depth-nerfacto"]["collider"]
    assert as_shipped[0] == "NearFarCollider" and as_shipped[3] is True  # nerfstudio's: near plane 0 at test time


def ray_batches_and_stream(name: str, scene, steps: int = 3):
    """The training pixels of ``steps`` + 1 batches of a method from seed 0 (noisy depth, so that the
    uncertainty-aware variant draws which rays follow their trust), and torch's global stream after them."""
    from depth_strategies.core.training import seed_everything
    from tests.conftest import NOISY, tiny_config

    seed_everything(0)
    loop = TrainingLoop(tiny_config(name, scene, **NOISY), "cpu")
    loop.run(steps)
    _, batch = loop.pipeline.datamanager.next_train(steps)
    return batch["indices"], torch.get_rng_state()


@pytest.fixture(scope="module")
def baseline_batches_and_stream(tiny_scene):
    return ray_batches_and_stream("depth-baseline", tiny_scene)


@pytest.mark.parametrize("name", [m for m in METHOD_FIELDS if m != "depth-baseline"])
def test_every_method_sees_the_baselines_ray_batches_at_the_same_seed(name, tiny_scene, baseline_batches_and_stream):
    # common random numbers: guidance draws from the model's own stream, so a method differs from the baseline in
    # how it uses depth, not in which rays and nerfacto samples its random stream gives it
    indices, stream = ray_batches_and_stream(name, tiny_scene)
    reference_indices, reference_stream = baseline_batches_and_stream
    assert torch.equal(indices, reference_indices)
    assert torch.equal(stream, reference_stream)


@pytest.mark.parametrize("steps", [None, 2])
def test_random_training_backgrounds_leave_the_ray_batches_of_the_fixed_background(steps, tiny_scene):
    # common random numbers across the background recipes: the random colours come from the renderer's own stream,
    # so depth-baseline on random backgrounds (throughout, or as a warm-up) sees the rays of depth-baseline on white
    from depth_strategies.core.training import seed_everything
    from tests.conftest import tiny_config

    def batches(**overrides):
        seed_everything(0)
        loop = TrainingLoop(tiny_config("depth-baseline", tiny_scene, **overrides), "cpu")
        loop.run(3)
        _, batch = loop.pipeline.datamanager.next_train(3)
        return batch["indices"], torch.get_rng_state()

    white = batches(**{"pipeline.model.random_training_background": False})
    random = batches(**{"pipeline.model.random_training_background": True,
                        "pipeline.model.random_training_background_steps": steps})
    assert torch.equal(white[0], random[0]) and torch.equal(white[1], random[1])
