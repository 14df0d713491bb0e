"""The four registered methods, as data: one base ``TrainerConfig`` and three derived with ``replace``.

=================  ====================================  ==========================================
method             sampling during training              extra loss
=================  ====================================  ==========================================
``depth-baseline`` the model's own (proposal) sampler    none (RGB only; never reads training depth)
``depth-soft``     same as baseline                      lambda_soft (D_pred - D_gt)^2
``depth-hard``     75 % of samples in [D - eps, D + eps]  lambda_hard (L_free + L_surf)
``depth-hybrid``   50 % own + 50 % guided                soft + hard
=================  ====================================  ==========================================

Defaults are nerfacto's sizes (a GPU); ``configs/sizes.yaml`` holds the smaller CPU profiles, applied with
:func:`apply_overrides` or as ``ns-train`` flags printed by ``ds-flags``.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import torch
import yaml
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from depth_strategies.data import DepthDataManagerConfig
from depth_strategies.model import DepthStrategyModelConfig
from depth_strategies.training import DepthStrategyTrainerConfig, FloatExponentialDecaySchedulerConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
"""The repository's ``configs/`` folder (size profiles and comparison protocols)."""

LAMBDA_SOFT = 0.01
"""Weight of the soft depth loss (the study's seed setting)."""
LAMBDA_HARD = 0.005
"""Weight of the hard losses L_free + L_surf (the study's seed setting)."""
HARD_GUIDED_FRACTION = 0.75
"""Share of NeRF samples placed around the surface by depth-hard (the study's seed setting)."""
HYBRID_GUIDED_FRACTION = 0.5
"""Share of NeRF samples placed around the surface by depth-hybrid (the study's seed setting)."""


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
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15, quit_on_train_completion=True),
        vis="viewer+tensorboard",
    )


BASE_CONFIG = _base_config()
"""The one base configuration; every method is derived from it by :func:`derive`."""

STRATEGIES: Dict[str, Dict[str, Any]] = {
    "depth-baseline": {},
    "depth-soft": {"soft_depth_mult": LAMBDA_SOFT},
    "depth-hard": {"guided_fraction": HARD_GUIDED_FRACTION, "hard_depth_mult": LAMBDA_HARD},
    "depth-hybrid": {
        "guided_fraction": HYBRID_GUIDED_FRACTION,
        "soft_depth_mult": LAMBDA_SOFT,
        "hard_depth_mult": LAMBDA_HARD,
    },
}
"""Model fields that make each method; everything else is shared."""

DESCRIPTIONS: Dict[str, str] = {
    "depth-baseline": "nerfacto for object scenes, RGB only: the reference for every depth strategy.",
    "depth-soft": "Depth as a hint: + lambda_soft * (D_pred - D_gt)^2.",
    "depth-hard": "Depth as a constraint: 75% of samples around the surface, free-space and surface losses.",
    "depth-hybrid": "50% guided samples, soft + hard depth losses.",
}


def derive(base: TrainerConfig, method_name: str, **model_fields: Any) -> TrainerConfig:
    """A copy of ``base`` named ``method_name`` with ``model_fields`` replaced in the model config.

    A method that uses depth in any way requires depth for its training split.
    """
    base = copy.deepcopy(base)
    model = dataclasses.replace(base.pipeline.model, **model_fields)
    uses_depth = any(model_fields.get(k, 0) for k in ("guided_fraction", "soft_depth_mult", "hard_depth_mult"))
    datamanager = dataclasses.replace(
        base.pipeline.datamanager, train_depth="required" if uses_depth else base.pipeline.datamanager.train_depth
    )
    pipeline = dataclasses.replace(base.pipeline, datamanager=datamanager, model=model)
    return dataclasses.replace(base, method_name=method_name, pipeline=pipeline)


def method_config(name: str) -> TrainerConfig:
    """A fresh copy of a registered method's config."""
    if name not in STRATEGIES:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(STRATEGIES)}")
    return derive(BASE_CONFIG, name, **STRATEGIES[name])


def _spec(name: str) -> MethodSpecification:
    return MethodSpecification(config=method_config(name), description=DESCRIPTIONS[name])


depth_baseline = _spec("depth-baseline")
depth_soft = _spec("depth-soft")
depth_hard = _spec("depth-hard")
depth_hybrid = _spec("depth-hybrid")


# ---------------------------------------------------------------------------------------------- sizes
def load_size_profile(name: str, path: Path = CONFIG_DIR / "sizes.yaml") -> Dict[str, Any]:
    """The overrides of size profile ``name`` from ``configs/sizes.yaml``."""
    profiles = yaml.safe_load(path.read_text())
    if name not in profiles:
        raise KeyError(f"unknown size profile {name!r} in {path}; known: {', '.join(profiles)}")
    return dict(profiles[name]["overrides"])


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
        print("usage: ds-flags PROFILE   (profiles in configs/sizes.yaml, e.g. cpu)")
        raise SystemExit(0 if len(sys.argv) == 2 else 2)
    print(" ".join(ns_train_flags(load_size_profile(sys.argv[1]))))
