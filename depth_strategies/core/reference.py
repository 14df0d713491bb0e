"""nerfstudio's own ``depth-nerfacto`` (and ``nerfacto``, a reference row of ``ds-bench``) as external references.

The models are nerfstudio's ``DepthNerfactoModel`` (its DS-NeRF loss on every level, its outputs, its settings)
and ``NerfactoModel``, fed by our datamanager, with two changes that do not touch what they learn:

* modules are built by :func:`depth_strategies.core.model.build_nerfacto_modules` instead of
  ``NerfactoModel.populate_modules``, whose LPIPS downloads AlexNet, so the reference also runs offline;
* with ``sample_inside_box`` (the object settings) they sample rays exactly as the ``depth-*`` methods do, in
  training and at test time;
* their hash grids are computed as the ``depth-*`` methods' are (:class:`~depth_strategies.core.model.HashGridOptions`:
  the same function, faster; ``ds-bench`` times them with nerfstudio's own grid code, as shipped);
* test views are scored and drawn by :func:`depth_strategies.core.model.metrics_and_images`, like every other
  method.

Our datamanager gives ``depth_image`` as distance along the ray, so ``is_euclidean_depth`` is True.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple, Type

import torch
from nerfstudio.models.depth_nerfacto import DepthNerfactoModel, DepthNerfactoModelConfig
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig
from torch import Tensor

from depth_strategies.core.model import ColourOptions, HashGridOptions, build_nerfacto_modules, metrics_and_images


@dataclass
class ReferenceSampling:
    """Where a reference samples its rays: nerfstudio's way, or exactly as the ``depth-*`` methods do."""

    sample_inside_box: bool = False
    """Sample each ray only where it crosses the scene box within [near_plane, far_plane], in training and at test
    time, exactly as the ``depth-*`` methods (:class:`depth_strategies.core.colliders.BoxNearFarCollider`; set by
    the object settings, ``methods.OBJECT_SETTINGS``). False, as shipped: nerfstudio's ``NearFarCollider``, whose
    near plane drops to 0 outside training."""


@dataclass
class OfflineDepthNerfactoModelConfig(DepthNerfactoModelConfig, HashGridOptions, ColourOptions, ReferenceSampling):
    """nerfstudio's depth-nerfacto model config; only the module construction differs (see module docstring)."""

    _target: Type = field(default_factory=lambda: OfflineDepthNerfactoModel)


class OfflineDepthNerfactoModel(DepthNerfactoModel):
    """nerfstudio's ``DepthNerfactoModel`` that builds without network access."""

    config: OfflineDepthNerfactoModelConfig

    def populate_modules(self) -> None:
        build_nerfacto_modules(self, inside_box=self.config.sample_inside_box)
        sigma = self.config.starting_depth_sigma if self.config.should_decay_sigma else self.config.depth_sigma
        self.depth_sigma = torch.tensor([sigma])

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        return metrics_and_images(self, outputs, batch)


@dataclass
class OfflineNerfactoModelConfig(NerfactoModelConfig, HashGridOptions, ColourOptions, ReferenceSampling):
    """nerfstudio's nerfacto model config; only the module construction differs (see module docstring)."""

    _target: Type = field(default_factory=lambda: OfflineNerfactoModel)


class OfflineNerfactoModel(NerfactoModel):
    """nerfstudio's ``NerfactoModel`` that builds without network access."""

    config: OfflineNerfactoModelConfig

    def populate_modules(self) -> None:
        build_nerfacto_modules(self, inside_box=self.config.sample_inside_box)

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        return metrics_and_images(self, outputs, batch)
