"""The one model behind all four methods: nerfacto for Blender-style object scenes, plus depth strategies.

Config fields select how depth is used (see ``methods.py`` for the four settings):

* ``guided_fraction``: share of the NeRF-level samples placed around the known surface while training
  (:mod:`depth_strategies.sampling`); 0 keeps nerfacto's proposal sampler.
* ``soft_depth_mult`` / ``soft_depth_loss``: depth as a hint, lambda_soft * (D_pred - D_gt)^2, or the DS-NeRF
  and URF losses of nerfstudio's ``depth-nerfacto``.
* ``hard_depth_mult``: depth as a constraint, lambda_hard * (L_free + L_surf) (:mod:`depth_strategies.losses`).

Ground truth depth reaches the model only through training batches. Evaluation, ``ns-eval``, ``ns-render``
and the viewer build rays from cameras, so every method renders with its own learned sampler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from torch import Tensor

from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.field_components.spatial_distortions import SceneContraction
from nerfstudio.fields.density_fields import HashMLPDensityField
from nerfstudio.fields.nerfacto_field import NerfactoField
from nerfstudio.model_components import losses as ns_losses
from nerfstudio.model_components.losses import DepthLossType, MSELoss
from nerfstudio.model_components.ray_samplers import UniformSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, NormalsRenderer, RGBRenderer
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.model_components.shaders import NormalsShader
from nerfstudio.models.base_model import Model
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.external import TCNN_EXISTS

from depth_strategies import losses
from depth_strategies.data import BLENDER_FAR, BLENDER_NEAR, DEPTH_KEY, STATE_KEY, DepthState
from depth_strategies.metrics import depth_errors, masked_average
from depth_strategies.offline import build_lpips
from depth_strategies.sampling import DepthGuidedProposalSampler

SoftLossType = Literal["l2", "ds-nerf", "urf"]

OUTPUT_VARIANCE = "weight_variance"
"""Per-ray output: sum_i w_i (t_i - D)^2, the spread of the termination distribution (distance^2)."""
OUTPUT_ENTROPY = "weight_entropy"
"""Per-ray output: entropy (nats) of the normalised weights along the ray."""


def default_implementation() -> Literal["tcnn", "torch"]:
    """tiny-cuda-nn when it imports, else nerfstudio's torch hash grid and MLPs."""
    return "tcnn" if TCNN_EXISTS else "torch"


@dataclass
class DepthStrategyModelConfig(NerfactoModelConfig):
    """nerfacto set up for Blender object scenes, with the depth strategy chosen by the fields below."""

    _target: Type = field(default_factory=lambda: DepthStrategyModel)
    near_plane: float = BLENDER_NEAR
    """Where sampling starts along each ray, in Blender units (multiplied by the dataparser's scale)."""
    far_plane: float = BLENDER_FAR
    """Where sampling stops along each ray, in Blender units (multiplied by the dataparser's scale)."""
    background_color: Literal["random", "last_sample", "black", "white"] = "white"
    """Background composited behind the object; NeRF-synthetic images are RGBA on white."""
    disable_scene_contraction: bool = True
    """Object scenes live inside the scene box: no contraction of unbounded space."""
    proposal_initial_sampler: Literal["piecewise", "uniform"] = "uniform"
    """Uniform initial proposal samples between near and far (piecewise is for unbounded scenes)."""
    average_init_density: float = 0.01
    """Average initial density of the fields (nerfacto's method config uses 0.01)."""
    implementation: Literal["tcnn", "torch"] = field(default_factory=default_implementation)
    """Hash grid and MLP implementation: tcnn when tiny-cuda-nn imports, else torch."""
    camera_optimizer: CameraOptimizerConfig = field(default_factory=lambda: CameraOptimizerConfig(mode="off"))
    """Poses of synthetic scenes are exact: no camera optimisation."""

    guided_fraction: float = 0.0
    """Share of NeRF-level samples placed in [D_gt - eps, D_gt + eps] on rays with known depth (training only)."""
    guide_half_width: float = 0.3
    """eps: half width of the guided window and free-space margin, in Blender units (times the dataparser scale)."""
    soft_depth_mult: float = 0.0
    """lambda_soft: weight of the soft depth loss; 0 disables it."""
    soft_depth_loss: SoftLossType = "l2"
    """Soft loss: "l2" = mean (D_pred - D_gt)^2 over rays with depth; "ds-nerf" / "urf" = nerfstudio's losses."""
    soft_depth_sigma: float = 0.01
    """sigma of the "ds-nerf" and "urf" losses in Blender units (nerfstudio's depth-nerfacto default)."""
    hard_depth_mult: float = 0.0
    """lambda_hard: weight of L_free + L_surf; 0 disables the hard losses."""
    surface_variance_mult: float = 1.0
    """lambda in L_surf = |D_pred - D_gt| + lambda * Var(w), Var(w) in Blender units squared."""


class DepthStrategyModel(NerfactoModel):
    """nerfacto with depth-guided sampling and depth losses selected by :class:`DepthStrategyModelConfig`."""

    config: DepthStrategyModelConfig

    @property
    def scene_scale(self) -> float:
        """The dataparser's scale factor: Blender units -> model units."""
        return float(self.kwargs.get("metadata", {}).get("dataparser_scale", 1.0))

    def populate_modules(self) -> None:
        """nerfacto's modules, except LPIPS only when cached and the proposal sampler's last level guided.

        ``NerfactoModel.populate_modules`` is not called because it builds LPIPS unconditionally, which
        downloads AlexNet; everything else here matches it.
        """
        Model.populate_modules(self)
        cfg = self.config
        scale = self.scene_scale
        contraction = None if cfg.disable_scene_contraction else SceneContraction(order=float("inf"))
        self.field = NerfactoField(
            self.scene_box.aabb,
            hidden_dim=cfg.hidden_dim,
            num_levels=cfg.num_levels,
            max_res=cfg.max_res,
            base_res=cfg.base_res,
            features_per_level=cfg.features_per_level,
            log2_hashmap_size=cfg.log2_hashmap_size,
            hidden_dim_color=cfg.hidden_dim_color,
            hidden_dim_transient=cfg.hidden_dim_transient,
            spatial_distortion=contraction,
            num_images=self.num_train_data,
            use_pred_normals=cfg.predict_normals,
            use_average_appearance_embedding=cfg.use_average_appearance_embedding,
            appearance_embedding_dim=cfg.appearance_embed_dim if cfg.use_appearance_embedding else 0,
            average_init_density=cfg.average_init_density,
            implementation=cfg.implementation,
        )
        self.camera_optimizer = cfg.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")

        self.proposal_networks = torch.nn.ModuleList()
        num_nets = 1 if cfg.use_same_proposal_network else cfg.num_proposal_iterations
        for i in range(num_nets):
            args = cfg.proposal_net_args_list[min(i, len(cfg.proposal_net_args_list) - 1)]
            self.proposal_networks.append(
                HashMLPDensityField(
                    self.scene_box.aabb,
                    spatial_distortion=contraction,
                    **args,
                    average_init_density=cfg.average_init_density,
                    implementation=cfg.implementation,
                )
            )
        self.density_fns = [
            self.proposal_networks[min(i, num_nets - 1)].density_fn for i in range(cfg.num_proposal_iterations)
        ]

        def update_schedule(step: int) -> float:
            return float(
                np.clip(np.interp(step, [0, cfg.proposal_warmup], [0, cfg.proposal_update_every]), 1,
                        cfg.proposal_update_every)
            )

        initial_sampler = UniformSampler(single_jitter=cfg.use_single_jitter)
        if cfg.proposal_initial_sampler != "uniform":
            raise ValueError("depth strategies need proposal_initial_sampler='uniform' (object scenes)")
        self.proposal_sampler = DepthGuidedProposalSampler(
            guided_fraction=cfg.guided_fraction,
            num_nerf_samples_per_ray=cfg.num_nerf_samples_per_ray,
            num_proposal_samples_per_ray=cfg.num_proposal_samples_per_ray,
            num_proposal_network_iterations=cfg.num_proposal_iterations,
            single_jitter=cfg.use_single_jitter,
            update_sched=update_schedule,
            initial_sampler=initial_sampler,
        )
        self.collider = NearFarCollider(near_plane=cfg.near_plane * scale, far_plane=cfg.far_plane * scale)

        self.renderer_rgb = RGBRenderer(background_color=cfg.background_color)
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="median")
        self.renderer_expected_depth = DepthRenderer(method="expected")
        self.renderer_normals = NormalsRenderer()
        self.normals_shader = NormalsShader()
        self.rgb_loss = MSELoss()

        from torchmetrics.functional import structural_similarity_index_measure
        from torchmetrics.image import PeakSignalNoiseRatio

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = structural_similarity_index_measure
        self.lpips = build_lpips()
        self.step = 0

    # ------------------------------------------------------------------ forward
    def _training_guide(self, ray_bundle: RayBundle) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Known surface depth of each training ray for the guided sampler; (None, None) otherwise."""
        meta = ray_bundle.metadata or {}
        if not self.training or self.config.guided_fraction <= 0 or DEPTH_KEY not in meta:
            return None, None
        return meta[DEPTH_KEY], meta[STATE_KEY] == DepthState.SURFACE

    def get_outputs(self, ray_bundle: RayBundle):
        if self.training:
            self.camera_optimizer.apply_to_raybundle(ray_bundle)
        guide_depth, guide_valid = self._training_guide(ray_bundle)
        ray_samples: RaySamples
        ray_samples, weights_list, ray_samples_list = self.proposal_sampler(
            ray_bundle,
            density_fns=self.density_fns,
            guide_depth=guide_depth,
            guide_valid=guide_valid,
            guide_half_width=self.config.guide_half_width * self.scene_scale,
        )
        field_outputs = self.field.forward(ray_samples, compute_normals=self.config.predict_normals)
        weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        weights_list.append(weights)
        ray_samples_list.append(ray_samples)

        t_mid = (ray_samples.frustums.starts + ray_samples.frustums.ends) / 2
        rgb = self.renderer_rgb(rgb=field_outputs[FieldHeadNames.RGB], weights=weights)
        with torch.no_grad():
            depth = self.renderer_depth(weights=weights, ray_samples=ray_samples)
            variance = losses.termination_variance(weights, t_mid, losses.expected_termination(weights, t_mid))
            entropy = losses.weight_entropy(weights)
        outputs = {
            "rgb": rgb,
            "accumulation": self.renderer_accumulation(weights=weights),
            "depth": depth,
            "expected_depth": self.renderer_expected_depth(weights=weights, ray_samples=ray_samples),
            OUTPUT_VARIANCE: variance,
            OUTPUT_ENTROPY: entropy,
        }
        if self.config.predict_normals:
            outputs["normals"] = self.normals_shader(
                self.renderer_normals(normals=field_outputs[FieldHeadNames.NORMALS], weights=weights)
            )
            outputs["pred_normals"] = self.normals_shader(
                self.renderer_normals(field_outputs[FieldHeadNames.PRED_NORMALS], weights=weights)
            )
            if self.training:
                outputs["rendered_orientation_loss"] = ns_losses.orientation_loss(
                    weights.detach(), field_outputs[FieldHeadNames.NORMALS], ray_bundle.directions
                )
                outputs["rendered_pred_normal_loss"] = ns_losses.pred_normal_loss(
                    weights.detach(),
                    field_outputs[FieldHeadNames.NORMALS].detach(),
                    field_outputs[FieldHeadNames.PRED_NORMALS],
                )
        if self.training:
            outputs["weights_list"] = weights_list
            outputs["ray_samples_list"] = ray_samples_list
            if ray_bundle.metadata and "directions_norm" in ray_bundle.metadata:
                outputs["directions_norm"] = ray_bundle.metadata["directions_norm"]
        for i in range(self.config.num_proposal_iterations):
            outputs[f"prop_depth_{i}"] = self.renderer_depth(weights=weights_list[i], ray_samples=ray_samples_list[i])
        return outputs

    # ------------------------------------------------------------------ losses
    def get_loss_dict(self, outputs, batch, metrics_dict=None):
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        if not self.training or DEPTH_KEY not in batch:
            return loss_dict
        cfg = self.config
        scale = self.scene_scale
        state = batch[STATE_KEY].to(self.device)
        surface = state == DepthState.SURFACE
        empty = state == DepthState.EMPTY
        # Depth losses are computed in Blender units, so their weights do not depend on the dataparser scale.
        gt = batch[DEPTH_KEY].to(self.device) / scale
        weights: Tensor = outputs["weights_list"][-1]
        samples: RaySamples = outputs["ray_samples_list"][-1]
        t_mid = (samples.frustums.starts + samples.frustums.ends) / (2 * scale)
        if cfg.soft_depth_mult > 0:
            loss_dict["soft_depth_loss"] = cfg.soft_depth_mult * self._soft_loss(outputs, gt, surface, t_mid)
        if cfg.hard_depth_mult > 0:
            free_until = torch.where(empty, torch.full_like(gt, float("inf")), gt - cfg.guide_half_width)
            l_free = losses.free_space_loss(weights, samples.frustums.ends / scale, free_until)
            l_surf = losses.surface_loss(weights, t_mid, gt, cfg.surface_variance_mult)
            loss_dict["free_space_loss"] = cfg.hard_depth_mult * losses.masked_mean(l_free, surface | empty)
            loss_dict["surface_loss"] = cfg.hard_depth_mult * losses.masked_mean(l_surf, surface)
        return loss_dict

    def _soft_loss(self, outputs, gt: Tensor, surface: Tensor, t_mid: Tensor) -> Tensor:
        """The configured soft loss on the NeRF level ("l2") or on every level like depth-nerfacto.

        ``gt`` and ``t_mid`` are in Blender units; nerfstudio's losses get model units and a scaled sigma.
        """
        cfg = self.config
        if cfg.soft_depth_loss == "l2":
            predicted = losses.expected_termination(outputs["weights_list"][-1], t_mid)
            return losses.masked_mean(losses.soft_depth_loss(predicted, gt), surface)
        loss_type = DepthLossType.DS_NERF if cfg.soft_depth_loss == "ds-nerf" else DepthLossType.URF
        scale = self.scene_scale
        sigma = torch.tensor([cfg.soft_depth_sigma * scale], device=self.device)
        termination = torch.where(surface, gt * scale, torch.zeros_like(gt))
        levels = len(outputs["weights_list"])
        return sum(
            ns_losses.depth_loss(
                weights=outputs["weights_list"][i],
                ray_samples=outputs["ray_samples_list"][i],
                termination_depth=termination,
                predicted_depth=outputs["expected_depth"],
                sigma=sigma,
                directions_norm=outputs["directions_norm"],
                is_euclidean=True,
                depth_loss_type=loss_type,
            )
            for i in range(levels)
        ) / levels

    # ------------------------------------------------------------------ evaluation
    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """RGB metrics, depth metrics on pixels with known surface depth, sharpness, and depth images.

        Uses only the rendered ``outputs`` (rendered from cameras, without ground truth) and the batch's
        ground truth for scoring. Depth is compared in Blender units (the dataparser scale divided out).
        """
        gt_rgb = self.renderer_rgb.blend_background(batch["image"].to(self.device))
        predicted_rgb = outputs["rgb"]
        gt_chw = torch.moveaxis(gt_rgb, -1, 0)[None, ...]
        pred_chw = torch.moveaxis(predicted_rgb, -1, 0)[None, ...]
        metrics: Dict[str, float] = {
            "psnr": float(self.psnr(gt_chw, pred_chw).item()),
            "ssim": float(self.ssim(gt_chw, pred_chw)),  # type: ignore[arg-type]
        }
        if self.lpips is not None:
            metrics["lpips"] = float(self.lpips(gt_chw, pred_chw))
        images: Dict[str, Tensor] = {
            "img": torch.cat([gt_rgb, predicted_rgb], dim=1),
            "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
        }
        scale = self.scene_scale
        depth = outputs["depth"] / scale
        if DEPTH_KEY in batch:
            gt_depth = batch[DEPTH_KEY].to(self.device) / scale
            surface = batch[STATE_KEY].to(self.device) == DepthState.SURFACE
            metrics.update(depth_errors(depth, gt_depth, surface))
            rays_with_surface = surface
        else:
            gt_depth, surface = None, None
            rays_with_surface = outputs["accumulation"] > 0.5
        metrics[OUTPUT_VARIANCE] = masked_average(outputs[OUTPUT_VARIANCE] / scale**2, rays_with_surface)
        metrics[OUTPUT_ENTROPY] = masked_average(outputs[OUTPUT_ENTROPY], rays_with_surface)
        images.update(depth_images(depth, outputs["accumulation"], gt_depth, surface))
        for i in range(self.config.num_proposal_iterations):
            images[f"prop_depth_{i}"] = colormaps.apply_depth_colormap(
                outputs[f"prop_depth_{i}"], accumulation=outputs["accumulation"]
            )
        return metrics, images


DEPTH_ERROR_RANGE = 0.5
"""Depth error that saturates the error colour map, in Blender units (above the default eps = 0.3)."""


def depth_images(
    depth: Tensor, accumulation: Tensor, gt_depth: Optional[Tensor], surface: Optional[Tensor]
) -> Dict[str, Tensor]:
    """Colourised depth (GT | prediction on one shared range) and |error| maps, [H, W, 3] in [0, 1]."""
    if gt_depth is None or surface is None or not bool(surface.any()):
        return {"depth": colormaps.apply_depth_colormap(depth, accumulation=accumulation)}
    near, far = float(gt_depth[surface].min()), float(gt_depth[surface].max())
    gt_vis = colormaps.apply_depth_colormap(gt_depth, near_plane=near, far_plane=far) * surface
    pred_vis = colormaps.apply_depth_colormap(depth, accumulation=accumulation, near_plane=near, far_plane=far)
    error = torch.where(surface, (depth - gt_depth).abs() / DEPTH_ERROR_RANGE, torch.zeros_like(depth))
    error_vis = colormaps.apply_colormap(error.clamp(0, 1), colormaps.ColormapOptions(colormap="inferno"))
    return {"depth": torch.cat([gt_vis, pred_vis], dim=1), "depth_error": error_vis * surface}
