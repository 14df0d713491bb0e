"""The seven registered methods, as data: four strategies (:data:`STRATEGIES`) and three variants of them for depth
as users have it (:data:`VARIANTS`), each derived from one base ``TrainerConfig`` with ``replace``
(:func:`derive`); nerfstudio's ``depth-nerfacto`` is registered besides them as a reference
(:data:`REFERENCE_NAME`). The strategies:

=================  ====================================  ===================================================
method             sampling during training              extra loss
=================  ====================================  ===================================================
``depth-baseline`` the model's own (proposal) sampler    none (RGB only; never reads training depth)
``depth-soft``     same as baseline                      lambda_soft (D_pred - D_gt)^2
``depth-hard``     75 % of samples in [D - eps, D + eps]  lambda_hard (L_free + L_surf) + lambda_empty L_empty
``depth-hybrid``   50 % own + 50 % guided                soft + hard
=================  ====================================  ===================================================

Defaults are nerfacto's sizes (a GPU); ``configs/sizes.yaml`` holds the smaller CPU profiles, applied with
:func:`apply_overrides` or as ``ns-train`` flags printed by ``ds-flags``.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import yaml
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from depth_strategies.core.config_checks import check_model_config
from depth_strategies.core.data import DepthDataManagerConfig
from depth_strategies.core.model import DepthStrategyModelConfig, default_implementation
from depth_strategies.core.reference import OfflineDepthNerfactoModelConfig, OfflineNerfactoModelConfig
from depth_strategies.core.training import DepthStrategyTrainerConfig, FloatExponentialDecaySchedulerConfig

CONFIGS_PACKAGE_DIR = "configs"
"""Folder of the package (``depth_strategies/configs/``) that ships the size profiles and the comparison protocols
as package data; read through :mod:`importlib.resources`, so they are found from any directory and in a wheel."""
SIZES_FILE = "sizes.yaml"
"""The size profiles, in :data:`CONFIGS_PACKAGE_DIR`."""
SPEEDS_FILE = "speeds.yaml"
"""Measured GPU training speeds for ``ds-compare --plan``, in :data:`CONFIGS_PACKAGE_DIR`."""


def shipped_config(name: str) -> Traversable:
    """The shipped YAML file ``name`` (``sizes.yaml``, ``quick.yaml``, ...), wherever the package is installed."""
    return resources.files("depth_strategies").joinpath(CONFIGS_PACKAGE_DIR, name)


def shipped_configs() -> List[str]:
    """Names of every shipped YAML file, sorted."""
    folder = resources.files("depth_strategies").joinpath(CONFIGS_PACKAGE_DIR)
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".yaml"))

LAMBDA_SOFT = 0.03
"""lambda_soft: weight of the soft depth loss, averaged over the 3 sampling levels (2 proposal + NeRF): the study's
seed setting, 0.01 summed over the levels, as a mean, the same total weight (docs/decisions.md, "Loss weights per
level")."""
LAMBDA_HARD = 0.015
"""lambda_hard: weight of L_free + L_surf on surface rays, averaged over the 3 levels: the study's seed setting,
0.005 summed over the levels, as a mean (docs/decisions.md, "Loss weights per level")."""
LAMBDA_EMPTY = LAMBDA_HARD
"""lambda_empty: weight of L_free on known-empty rays (mask supervision), averaged over the 3 levels; part of
depth-hard and depth-hybrid, at lambda_hard's value (docs/decisions.md, "Mask supervision")."""
HARD_GUIDED_FRACTION = 0.75
"""Share of NeRF samples placed around the surface by depth-hard (the study's seed setting)."""
HYBRID_GUIDED_FRACTION = 0.5
"""Share of NeRF samples placed around the surface by depth-hybrid (the study's seed setting)."""


def __getattr__(name: str) -> MethodSpecification:
    """The entry point ``depth_nerfacto_reference_spec``, built when nerfstudio asks for it (PEP 562).

    Building it reads nerfstudio's ``method_configs``, whose import discovers this module's entry points; built
    at import time, ``import depth_strategies.methods`` would import itself half-initialised.
    """
    if name == "depth_nerfacto_reference_spec":
        return MethodSpecification(
            config=depth_nerfacto_reference(),
            description="Reference: nerfstudio's depth-nerfacto (DS-NeRF loss) on this plugin's datamanager, offline.",
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_device() -> str:
    """CUDA when available, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _base_config() -> TrainerConfig:
    """depth-baseline: nerfacto for Blender object scenes, RGB only."""
    on_gpu = torch.cuda.is_available()
    optimizer = AdamOptimizerConfig(lr=1e-2, eps=1e-15)
    schedule = FloatExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=200000)
    return DepthStrategyTrainerConfig(
        method_name="depth-baseline",
        steps_per_eval_batch=500,
        steps_per_save=2000,
        max_num_iterations=30000,
        mixed_precision=on_gpu,
        machine=MachineConfig(device_type="cuda" if on_gpu else "cpu"),
        pipeline=VanillaPipelineConfig(
            datamanager=DepthDataManagerConfig(
                train_num_rays_per_batch=4096, eval_num_rays_per_batch=4096, train_depth="ignored"
            ),
            model=DepthStrategyModelConfig(eval_num_rays_per_chunk=1 << 15),
        ),
        optimizers={
            "proposal_networks": {"optimizer": optimizer, "scheduler": schedule},
            "fields": {"optimizer": copy.deepcopy(optimizer), "scheduler": copy.deepcopy(schedule)},
            # nerfacto's camera optimiser settings, used where the scene type optimises cameras (captures); a float
            # schedule, so that the checkpoints of those runs reload under torch >= 2.6 too
            "camera_opt": {
                "optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-15),
                "scheduler": FloatExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=5000),
            },
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15, quit_on_train_completion=True),
        vis="viewer+tensorboard",
    )


BASE_CONFIG = _base_config()
"""The one base configuration; every method is derived from it by :func:`derive`."""

STRATEGIES: Dict[str, Dict[str, Any]] = {
    "depth-baseline": {},
    "depth-soft": {"soft_depth_mult": LAMBDA_SOFT},
    "depth-hard": {
        "guided_fraction": HARD_GUIDED_FRACTION,
        "hard_depth_mult": LAMBDA_HARD,
        "empty_space_mult": LAMBDA_EMPTY,
    },
    "depth-hybrid": {
        "guided_fraction": HYBRID_GUIDED_FRACTION,
        "soft_depth_mult": LAMBDA_SOFT,
        "hard_depth_mult": LAMBDA_HARD,
        "empty_space_mult": LAMBDA_EMPTY,
    },
}
"""Model fields that make each method; everything else is shared."""

SIGMA_WINDOW_MULT = 3.0
"""k of the uncertainty-aware variants: eps = max(eps_min, 3 sigma) covers 99.7 % of Gaussian depth errors."""
MAX_TRUSTED_HALF_WIDTH = 0.6
"""Widest window (Blender units) at which the uncertainty-aware variant still uses a ray's depth: twice the narrowest
window (0.3), i.e. sigma <= 0.2 at k = 3: a limit between the sigma where the variant's second version helped on
lego-10 and the sigma where it fell below the baseline, chosen after seeing those runs and not tuned further
(docs/decisions.md, "depth-hybrid-uncertain")."""
ROBUST_PENALTY_SCALE = 0.1
"""delta of the uncertainty-aware variant's Cauchy penalty, Blender units: a third of eps_min (0.3), so residuals
inside the guided window are penalised almost as the l2, and depth further off than the window pulls little."""

VARIANTS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "depth-hybrid-uncertain": (
        "depth-hybrid",
        {
            "sigma_window_mult": SIGMA_WINDOW_MULT,
            "consistency_sigma": True,
            "guide_by_trust": True,
            "max_trusted_half_width": MAX_TRUSTED_HALF_WIDTH,
            "mask_follows_trust": True,
            "depth_penalty": "cauchy",
            "depth_penalty_scale": ROBUST_PENALTY_SCALE,
        },
    ),
    "depth-soft-ssi": ("depth-soft", {"depth_alignment": "scale-shift"}),
    "depth-hybrid-ssi": ("depth-hybrid", {"depth_alignment": "scale-shift"}),
}
"""Methods for depth as users have it (sensor noise, outliers, monocular scale): a registered strategy and the model
fields that change how it trusts the depth (:mod:`depth_strategies.core.model`), as data."""

METHOD_FIELDS: Dict[str, Dict[str, Any]] = {
    **STRATEGIES,
    **{name: {**STRATEGIES[base], **fields} for name, (base, fields) in VARIANTS.items()},
}
"""Every registered method's model fields (the four strategies and their three variants): what each is declared to
change from ``depth-baseline``."""

DESCRIPTIONS: Dict[str, str] = {
    "depth-baseline": "nerfacto for object scenes, RGB only: the reference for every depth strategy.",
    "depth-soft": "Depth as a hint: + lambda_soft * (D_pred - D_gt)^2.",
    "depth-hard": "Depth as a constraint: 75% of samples around the surface, free-space and surface losses.",
    "depth-hybrid": "50% guided samples, soft + hard depth losses.",
    "depth-hybrid-uncertain": (
        "depth-hybrid for depth of unknown quality: sigma = max(reported, multi-view inconsistency); window "
        "max(eps, 3 sigma), guidance and losses weighted by (eps_min / eps)^2, Cauchy loss."
    ),
    "depth-soft-ssi": "depth-soft for monocular depth: soft loss after a per-image scale/shift alignment.",
    "depth-hybrid-ssi": "depth-hybrid for monocular depth: aligned soft loss; guidance once the alignment has settled.",
}


def derive(base: TrainerConfig, method_name: str, **model_fields: Any) -> TrainerConfig:
    """A copy of ``base`` named ``method_name`` with ``model_fields`` replaced in the model config.

    A method that uses depth in any way requires depth for its training split. Model fields that do nothing without
    another are refused (:func:`depth_strategies.core.config_checks.check_model_config`).
    """
    base = copy.deepcopy(base)
    model = dataclasses.replace(base.pipeline.model, **model_fields)
    check_model_config(model)
    uses_depth = model.uses_training_depth()
    datamanager = dataclasses.replace(
        base.pipeline.datamanager, train_depth="required" if uses_depth else base.pipeline.datamanager.train_depth
    )
    pipeline = dataclasses.replace(base.pipeline, datamanager=datamanager, model=model)
    return dataclasses.replace(base, method_name=method_name, pipeline=pipeline)


def method_config(name: str) -> TrainerConfig:
    """A fresh copy of a registered method's config (one of :data:`METHOD_FIELDS`)."""
    if name not in METHOD_FIELDS:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(METHOD_FIELDS)}")
    return derive(BASE_CONFIG, name, **METHOD_FIELDS[name])


def _spec(name: str) -> MethodSpecification:
    return MethodSpecification(config=method_config(name), description=DESCRIPTIONS[name])


depth_baseline = _spec("depth-baseline")
depth_soft = _spec("depth-soft")
depth_hard = _spec("depth-hard")
depth_hybrid = _spec("depth-hybrid")
depth_hybrid_uncertain = _spec("depth-hybrid-uncertain")
depth_soft_ssi = _spec("depth-soft-ssi")
depth_hybrid_ssi = _spec("depth-hybrid-ssi")


# ------------------------------------------------------------------------------------ external reference
REFERENCE_NAME = "depth-nerfacto-reference"
"""Registered name of nerfstudio's depth-nerfacto on our datamanager (:func:`depth_nerfacto_reference`).

A name of its own, because nerfstudio's ``eval_setup`` (``ns-eval``, ``ns-render``, ``ns-viewer``) replaces a run's
datamanager with the one registered under the run's ``method_name``: under nerfstudio's ``depth-nerfacto`` that is
its ``DepthDataset``, which finds no depth files and downloads ZoeDepth."""


OBJECT_SETTINGS: Dict[str, Any] = {
    "pipeline.model.background_color": "white",
    "pipeline.model.random_training_background": True,
    "pipeline.datamanager.keep_alpha": True,
    "pipeline.model.near_plane": 2.0,
    "pipeline.model.far_plane": 6.0,
    "pipeline.model.disable_scene_contraction": True,
    "pipeline.model.proposal_initial_sampler": "uniform",
    "pipeline.model.camera_optimizer.mode": "off",
    "pipeline.model.sample_inside_box": True,
}
"""The object-scene settings of the depth-* methods, as overrides of a nerfstudio reference (the
``-object`` references of ``ds-bench`` and of the lego protocols, whose YAML lists the same keys): the same
background (white at test time, random in training), near and far, scene box and test-time sampling."""


def nerfstudio_reference(stock_name: str) -> TrainerConfig:
    """nerfstudio's ``nerfacto`` or ``depth-nerfacto`` config on our Blender datamanager and device defaults.

    Model fields, optimizers and schedule are nerfstudio's; the model class only builds without a download
    (:mod:`depth_strategies.core.reference`) and the camera optimizer's exponential schedule is swapped for the same
    schedule with float state, so checkpoints reload under torch >= 2.6. ``depth-nerfacto`` is named
    :data:`REFERENCE_NAME`. A fresh deep copy at every call, which shares nothing with :data:`BASE_CONFIG` or
    nerfstudio's configs, so that whoever runs it may mutate it (nerfstudio does).
    """
    # Imported here: nerfstudio's method_configs loads this module's entry points, so a top-level import cycles.
    from nerfstudio.configs.method_configs import method_configs

    model_class, method_name, train_depth, extra = {
        "nerfacto": (OfflineNerfactoModelConfig, "nerfacto", "ignored", {}),
        "depth-nerfacto": (OfflineDepthNerfactoModelConfig, REFERENCE_NAME, "required", {"is_euclidean_depth": True}),
    }[stock_name]
    stock = method_configs[stock_name]
    model_fields = {
        f.name: getattr(stock.pipeline.model, f.name)
        for f in dataclasses.fields(stock.pipeline.model)
        if f.name != "_target" and f.init
    }
    model = model_class(**{**model_fields, **extra, "implementation": default_implementation()})
    optimizers = {}
    for group, entry in stock.optimizers.items():
        scheduler = entry["scheduler"]
        if scheduler is not None:
            scheduler = FloatExponentialDecaySchedulerConfig(
                lr_pre_warmup=scheduler.lr_pre_warmup,
                lr_final=scheduler.lr_final,
                warmup_steps=scheduler.warmup_steps,
                max_steps=scheduler.max_steps,
                ramp=scheduler.ramp,
            )
        optimizers[group] = {"optimizer": entry["optimizer"], "scheduler": scheduler}
    datamanager = dataclasses.replace(BASE_CONFIG.pipeline.datamanager, train_depth=train_depth, keep_alpha=False)
    # a deep copy: dataclasses.replace shares every sub-config it does not replace (the datamanager's pixel sampler,
    # into which nerfstudio writes num_rays_per_batch while it sets up a run, the machine, the viewer) with
    # BASE_CONFIG, and the optimizers with nerfstudio's method_configs
    return copy.deepcopy(dataclasses.replace(
        BASE_CONFIG,
        method_name=method_name,
        pipeline=dataclasses.replace(BASE_CONFIG.pipeline, datamanager=datamanager, model=model),
        optimizers=optimizers,
    ))


def depth_nerfacto_reference() -> TrainerConfig:
    """nerfstudio's ``depth-nerfacto`` as the study runs it (:func:`nerfstudio_reference`), registered as
    :data:`REFERENCE_NAME`."""
    return nerfstudio_reference("depth-nerfacto")


def depth_nerfacto_on_nerfstudio_data() -> TrainerConfig:
    """nerfstudio's ``depth-nerfacto`` as a user runs it on Blender data with depth: the stock model and settings
    (:func:`depth_nerfacto_reference`) on the scene converted to ``nerfstudio-data``
    (``ds-to-nerfstudio-data``: nerfstudio's Blender parser reads no depth; its nerfstudio parser rescales the poses
    into its unit cube), with a white background, which nerfstudio users set for Blender data. Set
    ``pipeline.datamanager.data`` to the converted folder."""
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    config = depth_nerfacto_reference()
    parser = NerfstudioDataParserConfig(depth_unit_scale_factor=1e-3, downscale_factor=1)
    datamanager = dataclasses.replace(config.pipeline.datamanager, dataparser=parser)
    model = dataclasses.replace(config.pipeline.model, background_color="white")
    pipeline = dataclasses.replace(config.pipeline, datamanager=datamanager, model=model)
    return dataclasses.replace(config, pipeline=pipeline)


# ---------------------------------------------------------------------------------------------- sizes
def size_profile(name: str, path: Optional[Path] = None) -> Dict[str, Any]:
    """The whole entry of size profile ``name`` (description, overrides, measured costs) from ``path`` (default: the
    shipped ``configs/sizes.yaml``)."""
    source = shipped_config(SIZES_FILE) if path is None else path
    profiles = yaml.safe_load(source.read_text())
    if name not in profiles:
        raise KeyError(f"unknown size profile {name!r} in {source}; known: {', '.join(profiles)}")
    return dict(profiles[name])


def load_size_profile(name: str, path: Optional[Path] = None) -> Dict[str, Any]:
    """The overrides of size profile ``name`` from ``path`` (default: the shipped ``configs/sizes.yaml``)."""
    return dict(size_profile(name, path)["overrides"])


def apply_overrides(config: TrainerConfig, overrides: Mapping[str, Any]) -> TrainerConfig:
    """A copy of ``config`` with each dotted-path field (``pipeline.model.max_res``) replaced.

    Unknown paths raise ``KeyError`` naming the path; lists become tuples where the field holds a tuple.
    """
    for dotted, value in overrides.items():
        config = _replace_path(config, dotted.split("."), value, dotted)
    return config


def _replace_path(obj: Any, path: Sequence[str], value: Any, dotted: str) -> Any:
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        if head not in obj:
            raise KeyError(f"unknown config path {dotted!r}: no key {head!r}")
        new = dict(obj)
        new[head] = _replace_path(obj[head], rest, value, dotted) if rest else value
        return new
    if not dataclasses.is_dataclass(obj) or head not in {f.name for f in dataclasses.fields(obj)}:
        raise KeyError(f"unknown config path {dotted!r}: {type(obj).__name__} has no field {head!r}")
    current = getattr(obj, head)
    if rest:
        return dataclasses.replace(obj, **{head: _replace_path(current, rest, value, dotted)})
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return dataclasses.replace(obj, **{head: value})


def ns_train_flags(overrides: Mapping[str, Any]) -> List[str]:
    """The ``ns-train`` flags that apply ``overrides`` (``--pipeline.model.max-res 512`` ...)."""
    flags: List[str] = []
    for dotted, value in overrides.items():
        flags.append("--" + dotted.replace("_", "-"))
        flags.extend(str(v) for v in value) if isinstance(value, (list, tuple)) else flags.append(str(value))
    return flags


def flags_entrypoint() -> None:
    """``ds-flags PROFILE``: print the ns-train flags of a size profile from configs/sizes.yaml."""
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(f"usage: ds-flags PROFILE   (profiles in {shipped_config(SIZES_FILE)}, e.g. cpu)")
        raise SystemExit(0 if len(sys.argv) == 2 else 2)
    try:
        overrides = load_size_profile(sys.argv[1])
    except KeyError as err:
        raise SystemExit(f"ds-flags: error: {err.args[0]}") from None
    print(" ".join(ns_train_flags(overrides)))
