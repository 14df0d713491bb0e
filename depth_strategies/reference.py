"""nerfstudio's own ``depth-nerfacto`` as an external reference for the comparison.

The model is nerfstudio's ``DepthNerfactoModel`` (its DS-NeRF loss on every level, its outputs, its settings),
fed by our datamanager, with two changes that do not touch what it learns:

* modules are built by :func:`depth_strategies.model.build_nerfacto_modules` instead of
  ``NerfactoModel.populate_modules``, whose LPIPS downloads AlexNet, so the reference also runs offline;
* test views are scored by :func:`depth_strategies.metrics.image_metrics`, like every other method.

Our datamanager gives ``depth_image`` as distance along the ray, so ``is_euclidean_depth`` is True.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Tuple, Type

import torch
from nerfstudio.configs.method_configs import method_configs
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.models.depth_nerfacto import DepthNerfactoModel, DepthNerfactoModelConfig
from nerfstudio.utils import colormaps
from torch import Tensor

from depth_strategies.methods import BASE_CONFIG
from depth_strategies.metrics import image_metrics
from depth_strategies.model import build_nerfacto_modules, default_implementation
from depth_strategies.training import FloatExponentialDecaySchedulerConfig


@dataclass
class OfflineDepthNerfactoModelConfig(DepthNerfactoModelConfig):
    """nerfstudio's depth-nerfacto model config; only the module construction differs (see module docstring)."""

    _target: Type = field(default_factory=lambda: OfflineDepthNerfactoModel)


class OfflineDepthNerfactoModel(DepthNerfactoModel):
    """nerfstudio's ``DepthNerfactoModel`` that builds without network access."""

    config: OfflineDepthNerfactoModelConfig

    def populate_modules(self) -> None:
        build_nerfacto_modules(self)
        sigma = self.config.starting_depth_sigma if self.config.should_decay_sigma else self.config.depth_sigma
        self.depth_sigma = torch.tensor([sigma])

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        metrics = image_metrics(
            outputs, batch, float(self.kwargs.get("metadata", {}).get("dataparser_scale", 1.0)), self.lpips
        )
        images = {
            "img": torch.cat([batch["image"].to(self.device), outputs["rgb"]], dim=1),
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
        }
        return metrics, images


def depth_nerfacto_reference() -> TrainerConfig:
    """nerfstudio's ``depth-nerfacto`` config on our Blender datamanager and device defaults.

    Model, optimizers and schedule are nerfstudio's; the camera optimizer's exponential schedule is swapped for
    the same schedule with float state, so its checkpoints reload under torch >= 2.6.
    """
    stock = method_configs["depth-nerfacto"]
    model_fields = {
        f.name: getattr(stock.pipeline.model, f.name)
        for f in dataclasses.fields(stock.pipeline.model)
        if f.name != "_target" and f.init
    }
    model = OfflineDepthNerfactoModelConfig(
        **{**model_fields, "is_euclidean_depth": True, "implementation": default_implementation()}
    )
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
    datamanager = dataclasses.replace(BASE_CONFIG.pipeline.datamanager, train_depth="required")
    return dataclasses.replace(
        BASE_CONFIG,
        method_name="depth-nerfacto",
        pipeline=dataclasses.replace(BASE_CONFIG.pipeline, datamanager=datamanager, model=model),
        optimizers=optimizers,
    )
