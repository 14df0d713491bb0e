"""The one model behind every registered method: nerfacto for Blender-style object scenes, plus depth strategies.

Config fields select how depth is used (see ``methods.py`` for the settings of the four strategies and of their
three variants):

* ``guided_fraction``: share of the NeRF-level samples placed around the known surface while training
  (:mod:`depth_strategies.core.sampling`); 0 keeps nerfacto's proposal sampler.
* ``soft_depth_mult`` / ``soft_depth_loss``: depth as a hint, lambda_soft * (D_pred - D_gt)^2, or the DS-NeRF
  and URF losses of nerfstudio's ``depth-nerfacto``.
* ``hard_depth_mult``: depth as a constraint, lambda_hard * (L_free + L_surf) (:mod:`depth_strategies.core.losses`).

Ground truth depth reaches the model only through training batches (and, for ``consistency_sigma``, one number
per training image measured from them at start-up). Evaluation, ``ns-eval``, ``ns-render``
and the viewer build rays from cameras, so every method renders with its own learned sampler.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Type

import torch
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components import losses as ns_losses
from nerfstudio.model_components.losses import DepthLossType
from nerfstudio.models.base_model import Model
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig
from nerfstudio.utils import colormaps, colors
from nerfstudio.utils.external import TCNN_EXISTS
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from depth_strategies.core import losses
from depth_strategies.core.appearance import (
    AppearanceMonitor,
    appearance_statistics,
    appearance_status,
    object_mask_from_background,
)
from depth_strategies.core.colour import depth_images
from depth_strategies.core.config_checks import check_model_config
from depth_strategies.core.data import (
    BLENDER_FAR,
    BLENDER_NEAR,
    CONSISTENCY_KEY,
    DEPTH_KEY,
    SCENE_TYPE_KEY,
    SIGMA_KEY,
    STATE_KEY,
    DepthState,
)
from depth_strategies.core.metrics import OUTPUT_ENTROPY, OUTPUT_VARIANCE, ground_truth_rgb, image_metrics

# the nerfacto module building lives in its own module; re-exported here, where the references and older code
# import it from
from depth_strategies.core.nerfacto_modules import (  # noqa: F401
    BACKGROUND_STREAM_OFFSET,
    ColourOptions,
    HashGridOptions,
    RandomTrainingBackgroundRenderer,
    apply_hash_grid_options,
    build_nerfacto_modules,
)
from depth_strategies.core.ray_depth import RayDepth, align_depth, alignment_ready, prepare_ray_depth
from depth_strategies.core.sampling import trusted_rays

RAY_DEPTH_OUTPUT = "ray_depth"
"""Key of a training step's outputs: the :class:`~depth_strategies.core.ray_depth.RayDepth` of its rays, prepared
once in :meth:`DepthStrategyModel.get_outputs` for the guided sampler and reused by the depth losses."""

BATCH_DEPTH_KEYS = (DEPTH_KEY, STATE_KEY, SIGMA_KEY)
"""The keys of a training ray bundle's metadata that carry its batch's depth (``DepthDataManager.next_train``)."""

SoftLossType = Literal["l2", "ds-nerf", "urf"]
SceneType = Literal["auto", "object", "unbounded"]
Alignment = Literal["none", "scale-shift"]

SCENE_PRESETS: Dict[str, Dict[str, object]] = {
    "object": {
        "near_plane": BLENDER_NEAR,
        "far_plane": BLENDER_FAR,
        "sample_inside_box": True,
        "background_color": "white",
        "random_training_background": True,
        "disable_scene_contraction": True,
        "proposal_initial_sampler": "uniform",
        "average_init_density": 1.0,
        "optimize_cameras": False,
        "surface_variance_mult": 1.0,
    },
    "unbounded": {
        "near_plane": 0.05,
        "far_plane": 1000.0,
        "sample_inside_box": False,
        "background_color": "last_sample",
        "random_training_background": False,
        "disable_scene_contraction": False,
        "proposal_initial_sampler": "piecewise",
        "average_init_density": 0.01,
        "optimize_cameras": True,
        "surface_variance_mult": 0.0,
    },
}
"""The scene fields of each scene type: "object" are this plugin's Blender settings (Mildenhall et al. 2020's near
and far; a white test background, random backgrounds in training), "unbounded" nerfstudio's nerfacto settings
for captures (its method config: near 0.05, far 1000, scene contraction, piecewise sampler, average_init_density
0.01, camera optimiser SO3xR3), and no variance term in L_surf for unbounded scenes (see
``surface_variance_mult``)."""


def resolve_scene(config: "DepthStrategyModelConfig", metadata: Dict[str, object]) -> "DepthStrategyModelConfig":
    """``config`` with its scene type decided ("auto": the data's, from ``metadata``; object when unknown) and every
    scene field left at None filled from :data:`SCENE_PRESETS`; fields set explicitly are kept."""
    kind = config.scene_type
    if kind == "auto":
        kind = str(metadata.get(SCENE_TYPE_KEY, "object"))
    if kind not in SCENE_PRESETS:
        raise ValueError(f"unknown scene type {kind!r}; use one of {', '.join(SCENE_PRESETS)} or auto")
    filled = {name: value for name, value in SCENE_PRESETS[kind].items() if getattr(config, name) is None}
    resolved = dataclasses.replace(config, scene_type=kind, **filled)
    mode = resolved.camera_optimizer.mode
    if resolved.optimize_cameras and mode == "off":
        mode = "SO3xR3"
    elif not resolved.optimize_cameras:
        mode = "off"
    return dataclasses.replace(resolved, camera_optimizer=dataclasses.replace(resolved.camera_optimizer, mode=mode))


def default_implementation() -> Literal["tcnn", "torch"]:
    """tiny-cuda-nn when it imports, else nerfstudio's torch hash grid and MLPs."""
    return "tcnn" if TCNN_EXISTS else "torch"


@dataclass
class DepthStrategyModelConfig(NerfactoModelConfig, HashGridOptions, ColourOptions):
    """nerfacto set up for Blender object scenes, with the depth strategy chosen by the fields below."""

    _target: Type = field(default_factory=lambda: DepthStrategyModel)
    scene_type: SceneType = "auto"
    """Which preset fills the scene fields below that are left at None (:data:`SCENE_PRESETS`): "object" (a
    Blender-style object in front of a background: [2, 6] inside the scene box, no contraction, white background,
    uniform initial samples, no camera optimisation) or "unbounded" (a capture of a room or a street: nerfacto's
    scene contraction, piecewise initial samples, near 0.05 and far 1000, last-sample background, camera
    optimisation on). "auto": "object" when the training images have an alpha channel, else "unbounded" (the
    datamanager tells, ``scene_type`` in the dataset's metadata)."""
    near_plane: Optional[float] = None
    """Where sampling starts along each ray, in data units (Blender units; multiplied by the dataparser's scale), in
    training and at test time alike (nerfstudio's collider drops it to 0 outside training, which would spread a
    third of the test-time samples over space no training ray ever sampled). None: the scene type's (2 / 0.05)."""
    far_plane: Optional[float] = None
    """Where sampling stops along each ray, in data units. None: the scene type's (6 / 1000)."""
    sample_inside_box: Optional[bool] = None
    """Sample each ray only where it crosses the scene box, within [near_plane, far_plane]
    (:mod:`depth_strategies.core.colliders`; instant-ngp's sampling of object scenes), in training and at test
    time. False: nerfacto's fixed [near_plane, far_plane] for every ray (for an object scene, samples outside the box
    are zeroed by the fields and all hashed to one grid corner). None: the scene type's (object: True)."""
    background_color: Optional[Literal["random", "last_sample", "black", "white"]] = None
    """Background composited behind the scene. None: the scene type's (object: white, as NeRF-synthetic's RGBA
    images are shown; unbounded: nerfacto's last sample)."""
    random_training_background: Optional[bool] = None  # type: ignore[assignment]
    """See :class:`ColourOptions`. None: the scene type's (object: True; unbounded: False, its images have no
    alpha)."""
    disable_scene_contraction: Optional[bool] = None
    """No contraction of unbounded space. None: the scene type's (object: True; unbounded: nerfacto's contraction)."""
    proposal_initial_sampler: Optional[Literal["piecewise", "uniform"]] = None
    """Initial proposal samples: uniform between near and far, or piecewise (uniform to distance 1, then uniform
    in disparity) for unbounded scenes. None: the scene type's."""
    average_init_density: Optional[float] = None
    """Average initial density of the fields. None: the scene type's: object 1.0, nerfstudio's model default
    (nerfacto's method config lowers it to 0.01 for unbounded captures; on object scenes in front of a white
    background that start learns geometry far more slowly: docs/decisions.md, "Object and unbounded scenes");
    unbounded 0.01."""
    optimize_cameras: Optional[bool] = None
    """Refine the camera poses with nerfacto's camera optimiser (``camera_optimizer``; "SO3xR3" when its mode is
    "off"). None: the scene type's (object: off, synthetic poses are exact; unbounded: on, captured poses are not)."""
    implementation: Literal["tcnn", "torch"] = field(default_factory=default_implementation)
    """Hash grid and MLP implementation: tcnn when tiny-cuda-nn imports, else torch."""
    camera_optimizer: CameraOptimizerConfig = field(default_factory=lambda: CameraOptimizerConfig(mode="off"))
    """nerfacto's camera optimiser; its mode is set by ``optimize_cameras``."""

    guided_fraction: float = 0.0
    """Share of NeRF-level samples placed in [D_gt - eps, D_gt + eps] on rays with known depth (training only)."""
    guide_half_width: float = 0.3
    """eps: half width of the guided window and free-space margin, in Blender units (times the dataparser scale)."""
    soft_depth_mult: float = 0.0
    """lambda_soft: weight of the soft depth loss, per level (every depth loss is a mean over the rays it applies to
    and then over the supervised levels: :func:`depth_strategies.core.losses.assemble_depth_losses`); 0 disables
    it."""
    soft_depth_loss: SoftLossType = "l2"
    """Soft loss: "l2" = mean (D_pred - D_gt)^2 over rays with depth; "ds-nerf" / "urf" = nerfstudio's losses."""
    soft_depth_sigma: float = 0.01
    """sigma of the "ds-nerf" and "urf" losses in Blender units (nerfstudio's depth-nerfacto default)."""
    hard_depth_mult: float = 0.0
    """lambda_hard: weight of L_free + L_surf on rays with a known surface, per level; 0 disables them."""
    empty_space_mult: float = 0.0
    """lambda_empty: weight of L_free on rays known to be empty (alpha = 0: the object's mask), per level; 0
    disables this mask supervision. A switch of its own, so that a comparison can separate what depth adds from
    what the mask adds (the RGB loss already sees the mask through the white background)."""
    surface_variance_mult: Optional[float] = None
    """lambda in L_surf = |D_pred - D_gt| + lambda * a * Var(p), in 1 / data units (Var in data units squared, a the
    detached accumulation). None: the scene type's: 1.0 for object scenes, 0 for unbounded ones, where Var(p) is
    minimised by gathering the weight into any one wide far bin of the contracted space, which ruins the depth
    (docs/decisions.md, "Object and unbounded scenes")."""
    sigma_window_mult: float = 0.0
    """k of the uncertainty-aware strategies: on a ray whose depth has a reported standard deviation sigma (the
    degradation's noise model, ``depth_sigma`` in the batch), the guided window and the free-space margin are
    eps = max(guide_half_width, k sigma), and the ray's soft, free-space and surface losses are weighted by
    (guide_half_width / eps)^2 (:func:`depth_strategies.core.losses.uncertainty_weight`, a Gaussian 1 / sigma^2
    relative to the narrowest window). 0: the fixed window and equal weights; rays without a sigma keep them too."""
    consistency_sigma: bool = False
    """With ``sigma_window_mult`` > 0: take each training image's multi-view inconsistency (measured by the
    datamanager, ``depth_consistency``; :mod:`depth_strategies.core.consistency`) as a lower bound on the sigma of
    every ray of that image, sigma = max(sigma_reported, sigma_consistency) (:func:`depth_strategies.core.losses.
    combined_sigma`). It catches what no sensor reports: a monocular depth's scale and shift per image, a wrong unit,
    a misregistered frame. False: only the reported sigma."""
    guide_by_trust: bool = False
    """With ``sigma_window_mult`` > 0: guide a ray with known depth only with probability equal to its uncertainty
    weight (guide_half_width / eps)^2, drawn per ray and step (:func:`depth_strategies.core.sampling.trusted_rays`);
    the other rays keep all of the model's own samples. False: every ray with depth is guided, however wide its
    window (a noisy depth then costs the NeRF a share of its samples on a window that no longer locates the
    surface)."""
    max_trusted_half_width: float = 0.0
    """With ``sigma_window_mult`` > 0: the widest window eps (Blender units) at which a ray's depth is still used. A
    ray whose eps = max(guide_half_width, k sigma) is wider is treated as a ray without depth: it is not guided and
    gets no soft, free-space or surface loss (:func:`depth_strategies.core.losses.trusted_depth`), so depth too
    uncertain to locate the surface leaves the ray exactly as the RGB-only baseline trains it (rays known to be
    empty keep their mask loss unless ``mask_follows_trust``). 0: no limit (every ray with depth is used,
    down-weighted by its trust)."""
    mask_follows_trust: bool = False
    """With ``max_trusted_half_width`` > 0: weight the mask loss (``empty_space_mult``) of each known-empty ray by the
    share of its image's rays with depth in the batch whose depth is trusted (:func:`depth_strategies.core.losses.
    image_trust_share`; 1 where the batch holds none). The mask is L_free on rays known to be empty, a constraint
    meant to work together with depth: on lego-fewview the mask showed no gain on its own, without depth
    (``depth-baseline+mask``; docs/decisions.md, "Mask supervision"). So an image whose depth is trusted nowhere
    trains exactly like the RGB-only baseline. False: every known-empty ray keeps its mask loss."""
    depth_penalty: losses.Penalty = "l2"
    """How the soft loss penalises the residual D_pred - D_gt: "l2", or the robust "huber" or "cauchy" (equal to
    the l2 for residuals well below ``depth_penalty_scale``; :func:`depth_strategies.core.losses.robust_penalty`),
    where a fraction of the depth is wrong (outliers, flying pixels)."""
    depth_penalty_scale: float = 0.1
    """delta of the huber and cauchy penalties, Blender units."""
    depth_alignment: Alignment = "none"
    """"scale-shift": the depth is right only up to a scale and shift per image (a monocular network). Per image of
    the batch, the given depth is aligned to the NeRF's expected depth by least squares
    (:func:`depth_strategies.core.losses.least_squares_scale_shift`, MiDaS's scale- and shift-invariant loss) before
    the soft loss compares them. Guided sampling and the free-space and surface losses need a metric depth: they use
    a running per-image estimate of the alignment (``alignment_momentum``) and stay off until it has been updated
    ``alignment_warmup`` times (before that, a guided window would sit at the wrong distance)."""
    alignment_momentum: float = 0.9
    """Decay of each image's accumulated alignment statistics per batch that holds rays of it (the statistics of
    about the last 1 / (1 - momentum) such batches count)."""
    alignment_warmup: int = 200
    """Updates of an image's alignment before guided sampling and the hard losses use that image's aligned depth."""
    alignment_min_rays: int = 8
    """Surface rays (accumulated over batches) an image needs before its alignment is fitted."""
    appearance_check_every: int = 100
    """Every this many training steps (from ``appearance_check_from`` on), check the training batch for appearance
    collapse (:mod:`depth_strategies.core.appearance`: object pixels rendered empty, or in one flat colour) and
    print a warning when two checks in a row find it; the batch's ``object_coverage`` and ``colour_spread_ratio``
    are logged as training metrics every step. 0: no check."""
    appearance_check_from: int = 200
    """First step of the appearance check: before it, a healthy run may still render the object blurred or faint."""
    supervise_proposals: bool = True
    """Apply the soft ("l2"), free-space, surface and empty-space losses to every proposal level as well as to the
    NeRF level (averaged over levels). The proposal networks are density fields too, and at test time, without
    ground truth, the NeRF samples are drawn from them: supervised, they put those samples at the surface;
    otherwise they learn it only through nerfacto's interlevel loss. nerfstudio's depth-nerfacto likewise applies
    its depth loss to every level."""

    def depth_loss_weights(self) -> losses.DepthLossWeights:
        """The lambdas of the depth losses the model assembles itself (nerfstudio's DS-NeRF/URF soft losses apart)."""
        return losses.DepthLossWeights(
            soft=self.soft_depth_mult if self.soft_depth_loss == "l2" else 0.0,
            hard=self.hard_depth_mult,
            empty=self.empty_space_mult,
            surface_variance=self.surface_variance_mult,
            half_width=self.guide_half_width,
            penalty=self.depth_penalty,
            penalty_scale=self.depth_penalty_scale,
        )

    def uses_training_depth(self) -> bool:
        """Whether training reads the depth (or the mask) of its batches."""
        return any(v > 0 for v in (self.guided_fraction, self.soft_depth_mult, self.hard_depth_mult,
                                   self.empty_space_mult))


class DepthStrategyModel(NerfactoModel):
    """nerfacto with depth-guided sampling and depth losses selected by :class:`DepthStrategyModelConfig`."""

    config: DepthStrategyModelConfig

    @property
    def scene_scale(self) -> float:
        """The dataparser's scale factor: Blender units -> model units."""
        return scene_scale(self)

    def populate_modules(self) -> None:
        """nerfacto's modules (LPIPS only when cached) with a depth-guided proposal sampler, for the scene type of
        the config or the data (:func:`resolve_scene`)."""
        self.config = resolve_scene(self.config, self.kwargs.get("metadata") or {})
        cfg = self.config
        check_model_config(cfg)
        build_nerfacto_modules(
            self,
            near_far_scale=self.scene_scale,
            guided_fraction=cfg.guided_fraction,
            reset_near_plane=False,
            inside_box=cfg.sample_inside_box,
        )
        if cfg.depth_alignment != "none":
            # running per-image alignment (Blender units): given depth -> scale * given + shift; saved in checkpoints
            self.register_buffer("alignment_scale", torch.ones(self.num_train_data))
            self.register_buffer("alignment_shift", torch.zeros(self.num_train_data))
            self.register_buffer("alignment_updates", torch.zeros((), dtype=torch.long))
            self.register_buffer("alignment_seen", torch.zeros(self.num_train_data, dtype=torch.long))
            # each image's decayed least-squares statistics (losses.alignment_moments), summed over batches
            self.register_buffer("alignment_moments", torch.zeros(self.num_train_data, losses.ALIGNMENT_MOMENTS,
                                                                  dtype=torch.float64))
        consistency = (self.kwargs.get("metadata") or {}).get(CONSISTENCY_KEY)
        # measured from the training data at start-up, not learnt: not saved in checkpoints
        use = cfg.consistency_sigma and cfg.sigma_window_mult > 0 and consistency is not None
        self.register_buffer("image_consistency", torch.as_tensor(consistency).float() if use else None,
                             persistent=False)
        # the guidance's own random numbers (which rays follow their trust, the window's jitter), seeded from the
        # run's seed: drawing them from torch's global stream would change every later ray batch and nerfacto
        # sample, so a method would differ from the baseline in which rays it sees as well as in how it uses depth
        self._guidance_seed = torch.initial_seed()
        self.appearance_monitor = AppearanceMonitor()
        self._guidance_generators: Dict[str, torch.Generator] = {}

    def guidance_uniform(self, like: Tensor) -> Tensor:
        """U(0, 1) draws shaped like ``like`` from the guidance's own stream, which is seeded from the run's seed
        when the model is built and is separate from torch's global stream (one stream per device): the guided
        methods then see the same ray batches and the same nerfacto sample jitter as the baseline at the same
        seed (common random numbers), so they differ from it only in how they use depth."""
        key = str(like.device)
        if key not in self._guidance_generators:
            self._guidance_generators[key] = torch.Generator(device=like.device).manual_seed(self._guidance_seed)
        return torch.rand(like.shape, generator=self._guidance_generators[key], device=like.device,
                          dtype=like.dtype)

    # ------------------------------------------------------------------ depth of training rays
    def prepare_ray_depth(self, depth: Tensor, state: Tensor, image: Tensor, sigma: Optional[Tensor]) -> RayDepth:
        """The per-ray depth of a training batch (:func:`depth_strategies.core.ray_depth.prepare_ray_depth`) under
        this model's config, inconsistency measurements and current alignment."""
        cfg = self.config
        aligned = cfg.depth_alignment != "none"
        return prepare_ray_depth(
            depth,
            state,
            image,
            sigma,
            scene_scale=self.scene_scale,
            guide_half_width=cfg.guide_half_width,
            sigma_window_mult=cfg.sigma_window_mult,
            max_trusted_half_width=cfg.max_trusted_half_width,
            image_consistency=self.image_consistency,
            alignment_scale=self.alignment_scale if aligned else None,
            alignment_shift=self.alignment_shift if aligned else None,
            alignment_seen=self.alignment_seen if aligned else None,
            alignment_warmup=cfg.alignment_warmup,
        )

    def _bundle_ray_depth(self, ray_bundle: RayBundle) -> Optional[RayDepth]:
        """The per-ray depth of a training ray bundle that carries its batch's depth, when the method reads it."""
        meta = ray_bundle.metadata or {}
        if not self.training or not self.config.uses_training_depth() or DEPTH_KEY not in meta:
            return None
        assert ray_bundle.camera_indices is not None
        return self.prepare_ray_depth(meta[DEPTH_KEY], meta[STATE_KEY], ray_bundle.camera_indices,
                                      meta.get(SIGMA_KEY))

    # ------------------------------------------------------------------ forward
    def _training_guide(
        self, ray_bundle: RayBundle, ray_depth: Optional[RayDepth] = None
    ) -> Tuple[Optional[Tensor], Optional[Tensor], Tensor | float]:
        """Known surface depth of each training ray for the guided sampler, whether it is valid, and the window's
        half width (model units); (None, None, 0) when not guiding. With ``guide_by_trust``, which trusted rays are
        guided is drawn from the guidance's stream (:meth:`guidance_uniform`)."""
        meta = ray_bundle.metadata or {}
        if not self.training or self.config.guided_fraction <= 0 or DEPTH_KEY not in meta:
            return None, None, 0.0
        if ray_depth is None:
            ray_depth = self._bundle_ray_depth(ray_bundle)
            assert ray_depth is not None
        valid = (ray_depth.state == DepthState.SURFACE) & ray_depth.ready
        if self.config.guide_by_trust and ray_depth.trust is not None:
            valid = trusted_rays(valid, ray_depth.trust, self.guidance_uniform(ray_depth.trust))
        return ray_depth.depth, valid, ray_depth.half_width * self.scene_scale

    def get_outputs(self, ray_bundle: RayBundle):
        if self.training:
            self.camera_optimizer.apply_to_raybundle(ray_bundle)
        ray_depth = self._bundle_ray_depth(ray_bundle)
        guide_depth, guide_valid, guide_half_width = self._training_guide(ray_bundle, ray_depth)
        ray_samples: RaySamples
        ray_samples, weights_list, ray_samples_list = self.proposal_sampler(
            without_batch_depth(ray_bundle),
            density_fns=self.density_fns,
            guide_depth=guide_depth,
            guide_valid=guide_valid,
            guide_half_width=guide_half_width,
            uniform=self.guidance_uniform,
        )
        field_outputs = self.field.forward(ray_samples, compute_normals=self.config.predict_normals)
        weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        weights_list.append(weights)
        ray_samples_list.append(ray_samples)

        t_mid = (ray_samples.frustums.starts + ray_samples.frustums.ends) / 2
        rgb = self.renderer_rgb(rgb=field_outputs[FieldHeadNames.RGB], weights=weights)
        with torch.no_grad():
            depth = self.renderer_depth(weights=weights, ray_samples=ray_samples)
            p = losses.normalised(weights)
            variance = losses.termination_variance(p, t_mid, losses.expected_termination(p, t_mid))
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
            if ray_depth is not None:
                outputs[RAY_DEPTH_OUTPUT] = ray_depth
        for i in range(self.config.num_proposal_iterations):
            outputs[f"prop_depth_{i}"] = self.renderer_depth(weights=weights_list[i], ray_samples=ray_samples_list[i])
        return outputs

    # ------------------------------------------------------------------ appearance check
    def get_metrics_dict(self, outputs, batch):
        metrics = super().get_metrics_dict(outputs, batch)
        if self.training and self.config.appearance_check_every > 0:
            gt = self.renderer_rgb.blend_background(batch["image"].to(self.device))
            if STATE_KEY in batch:
                objects = batch[STATE_KEY].to(self.device) != DepthState.EMPTY
            elif self.config.background_color in ("white", "black"):
                objects = object_mask_from_background(gt, colors.COLORS_DICT[self.config.background_color])
            else:
                objects = torch.ones_like(gt[..., :1], dtype=torch.bool)
            stats = appearance_statistics(outputs["rgb"].detach(), gt, outputs["accumulation"].detach(), objects)
            self._appearance = stats
            metrics["object_coverage"] = stats["object_coverage"]
            metrics["colour_spread_ratio"] = stats["colour_spread_ratio"]
        return metrics

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        callbacks = super().get_training_callbacks(attributes)
        if self.config.appearance_check_every > 0:
            callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self.check_appearance,
                                              update_every_num_iters=self.config.appearance_check_every))
        return callbacks

    def check_appearance(self, step: int) -> Optional[str]:
        """The periodic appearance check (one host sync per check): the warning printed, or None."""
        stats = getattr(self, "_appearance", None)
        if stats is None or step < self.config.appearance_check_from:
            return None
        values = {k: float(v) for k, v in stats.items()}
        message = self.appearance_monitor.update(step, appearance_status(**values), values["object_coverage"],
                                                 values["colour_spread_ratio"])
        if message is not None:
            CONSOLE.print(f"[bold yellow]WARNING: {message}")
        return message

    # ------------------------------------------------------------------ losses
    def get_loss_dict(self, outputs, batch, metrics_dict=None):
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        cfg = self.config
        if not self.training or not cfg.uses_training_depth():
            return loss_dict
        if DEPTH_KEY not in batch:
            raise ValueError(
                "this method's depth losses need the depth and mask of each training ray, but the batch has none: "
                "set --pipeline.datamanager.train-depth required"
            )
        scale = self.scene_scale
        given = batch[STATE_KEY].to(self.device)
        raw_depth = batch[DEPTH_KEY].to(self.device)
        image = batch["indices"][:, :1].to(self.device)
        ray_depth = outputs.get(RAY_DEPTH_OUTPUT)
        if ray_depth is None:  # outputs rendered from rays that did not carry the batch's depth
            sigma = batch[SIGMA_KEY].to(self.device) if SIGMA_KEY in batch else None
            ray_depth = self.prepare_ray_depth(raw_depth, given, image, sigma)
        state, half_width = ray_depth.state, ray_depth.half_width
        surface = state == DepthState.SURFACE
        depth = raw_depth
        extra: Dict[str, Tensor] = {}
        if cfg.mask_follows_trust and cfg.max_trusted_half_width > 0 and cfg.empty_space_mult > 0:
            extra["empty_weights"] = losses.image_trust_share(
                surface, given == DepthState.SURFACE, image, self.num_train_data)
        if cfg.depth_alignment != "none":
            # the batch refits the running alignment; the hard losses use the refitted one
            extra["soft_gt_depth"], aligned = self._align_batch(outputs, raw_depth / scale, surface, image)
            extra["soft_surface"] = surface & aligned
            extra["hard_surface"] = surface & alignment_ready(image, self.alignment_seen, cfg.alignment_warmup)
            depth = align_depth(raw_depth, image, self.alignment_scale, self.alignment_shift, scale)
        if cfg.sigma_window_mult > 0 and ray_depth.sigma is not None and ray_depth.trust is not None:
            extra["half_width"] = half_width
            extra["ray_weights"] = ray_depth.trust
        loss_dict.update(
            depth_losses(outputs["weights_list"], outputs["ray_samples_list"], depth, state, scale, cfg, **extra)
        )
        if cfg.soft_depth_mult > 0 and cfg.soft_depth_loss != "l2":
            loss_dict["soft_depth_loss"] = cfg.soft_depth_mult * self._nerfstudio_depth_loss(
                outputs, depth / scale, surface
            )
        return loss_dict

    def _align_batch(self, outputs, given: Tensor, surface: Tensor, image: Tensor) -> Tuple[Tensor, Tensor]:
        """The given depth of each ray aligned to the NeRF level's expected depth by its image's running alignment
        (Blender units), and per ray whether that image has one. The batch's least-squares statistics of each image
        (:func:`depth_strategies.core.losses.alignment_moments`) are added to the image's decayed sums
        (``alignment_momentum``) and the alignment is refitted from the sums
        (:func:`~depth_strategies.core.losses.scale_shift_from_moments`), so an image with fewer than
        ``alignment_min_rays`` surface rays per batch (256 rays over 40 images: about 6) still gets one. A ray whose
        image has none yet is left out of the soft loss instead of comparing with the raw given depth."""
        cfg = self.config
        weights, samples = outputs["weights_list"][-1], outputs["ray_samples_list"][-1]
        t_mid = (samples.frustums.starts + samples.frustums.ends) / 2 / self.scene_scale
        predicted = losses.expected_termination(losses.normalised(weights.detach()), t_mid.detach())
        batch = losses.alignment_moments(predicted, given, surface, image, self.num_train_data)
        with torch.no_grad():
            present = batch[:, 0] > 0
            self.alignment_moments.copy_(torch.where(present[:, None],
                                                     cfg.alignment_momentum * self.alignment_moments + batch,
                                                     self.alignment_moments))
            scale, shift, usable = losses.scale_shift_from_moments(self.alignment_moments, cfg.alignment_min_rays)
            self.alignment_scale.copy_(torch.where(usable, scale, self.alignment_scale))
            self.alignment_shift.copy_(torch.where(usable, shift, self.alignment_shift))
            self.alignment_seen += (present & usable).long()
            self.alignment_updates += 1
        index = image[..., 0].long()
        return scale[index, None] * given + shift[index, None], usable[index][..., None]

    def _nerfstudio_depth_loss(self, outputs, gt: Tensor, surface: Tensor) -> Tensor:
        """nerfstudio's DS-NeRF or URF loss on every level, averaged over levels, exactly as depth-nerfacto.

        ``gt`` is in Blender units; nerfstudio's losses get model units and a scaled sigma.
        """
        cfg = self.config
        loss_type = DepthLossType.DS_NERF if cfg.soft_depth_loss == "ds-nerf" else DepthLossType.URF
        scale = self.scene_scale
        sigma = torch.tensor([cfg.soft_depth_sigma * scale], device=self.device)
        termination = torch.where(surface, gt * scale, torch.zeros_like(gt))
        levels = len(outputs["weights_list"])
        return (
            sum(
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
            )
            / levels
        )

    # ------------------------------------------------------------------ evaluation
    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """RGB, depth and sharpness metrics (:func:`depth_strategies.core.metrics.image_metrics`) and depth images.

        ``outputs`` were rendered from a camera, without ground truth; the batch's ground truth only scores them.
        """
        return metrics_and_images(self, outputs, batch)


def depth_losses(
    weights_list: Sequence[Tensor],
    ray_samples_list: Sequence[RaySamples],
    depth: Tensor,
    state: Tensor,
    scale: float,
    config: DepthStrategyModelConfig,
    **per_ray: Tensor,
) -> Dict[str, Tensor]:
    """The depth loss terms of a training batch (:func:`depth_strategies.core.losses.assemble_depth_losses`) from
    the model's per-level weights and samples and the batch's ray depth and state, all in model units (Blender
    units x ``scale``, the dataparser's scale): converted to Blender units here, so the values do not depend on the
    scale. Every level when ``config.supervise_proposals``, else the NeRF level (the last) only. ``per_ray``: the
    optional per-ray arguments of the assembly (``half_width``, ``ray_weights``, ``soft_gt_depth`` in Blender units;
    ``hard_surface``, ``empty_weights``)."""
    last = len(weights_list) - 1
    levels = range(last + 1) if config.supervise_proposals else [last]
    frustums = [ray_samples_list[i].frustums for i in levels]
    return losses.assemble_depth_losses(  # the levels stacked: each op below runs once for all of them
        weights=losses.stack_levels([weights_list[i] for i in levels]),
        bin_starts=losses.stack_levels([f.starts for f in frustums]) / scale,
        bin_ends=losses.stack_levels([f.ends for f in frustums]) / scale,
        gt_depth=depth / scale,
        surface=state == DepthState.SURFACE,
        empty=state == DepthState.EMPTY,
        lambdas=config.depth_loss_weights(),
        **per_ray,
    )


def without_batch_depth(ray_bundle: RayBundle) -> RayBundle:
    """``ray_bundle`` without the batch's depth, depth state and sigma in its metadata (a shallow copy; the bundle
    itself when it carries none). The model reads them once per step, into its
    :class:`~depth_strategies.core.ray_depth.RayDepth`; left in the bundle, the sampler would broadcast each of them
    to the samples of every level (ops that nothing reads)."""
    meta = ray_bundle.metadata or {}
    if not any(key in meta for key in BATCH_DEPTH_KEYS):
        return ray_bundle
    stripped = copy.copy(ray_bundle)
    stripped.metadata = {key: value for key, value in meta.items() if key not in BATCH_DEPTH_KEYS}
    return stripped


def scene_scale(model: Model) -> float:
    """The dataparser's scale factor of ``model``'s data: Blender units -> model units."""
    return float(model.kwargs.get("metadata", {}).get("dataparser_scale", 1.0))


def metrics_and_images(
    model: NerfactoModel, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
    """The evaluation of every model of the study, ``depth-*`` and the depth-nerfacto reference alike: metrics
    (:func:`depth_strategies.core.metrics.image_metrics`) and images (RGB, accumulation, depth, depth error and
    proposal depths on one colour range, :func:`depth_strategies.core.colour.depth_images`)."""
    scale = scene_scale(model)
    metrics = image_metrics(outputs, batch, scale, model.lpips)
    gt_depth = batch[DEPTH_KEY].to(model.device) / scale if DEPTH_KEY in batch else None
    surface = batch[STATE_KEY].to(model.device) == DepthState.SURFACE if STATE_KEY in batch else None
    proposal_depths = {
        f"prop_depth_{i}": outputs[f"prop_depth_{i}"] / scale for i in range(model.config.num_proposal_iterations)
    }
    images: Dict[str, Tensor] = {
        "img": torch.cat([ground_truth_rgb(batch["image"].to(model.device)), outputs["rgb"]], dim=1),
        "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
        **depth_images(outputs["depth"] / scale, outputs["accumulation"], gt_depth, surface, proposal_depths),
    }
    return metrics, images
