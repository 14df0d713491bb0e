"""nerfacto's modules as every model of the study builds them: fields, proposal sampler, collider, renderers and
RGB loss (:func:`build_nerfacto_modules`), with the options the ``depth-*`` methods and the nerfstudio references
share: how the hash grids are computed (:class:`HashGridOptions`) and which background the colour is learnt against
(:class:`ColourOptions`, :class:`RandomTrainingBackgroundRenderer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from nerfstudio.field_components.spatial_distortions import SceneContraction
from nerfstudio.fields.density_fields import HashMLPDensityField
from nerfstudio.fields.nerfacto_field import NerfactoField
from nerfstudio.model_components.losses import MSELoss
from nerfstudio.model_components.ray_samplers import UniformLinDispPiecewiseSampler, UniformSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, NormalsRenderer, RGBRenderer
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.model_components.shaders import NormalsShader
from nerfstudio.models.base_model import Model
from nerfstudio.models.nerfacto import NerfactoModel
from torch import Tensor
from torchmetrics.image import PeakSignalNoiseRatio

from depth_strategies.core.appearance import recomposite
from depth_strategies.core.colliders import BoxNearFarCollider
from depth_strategies.core.hash_grid import compile_hash_grids, use_fused_hash_grids
from depth_strategies.core.offline import build_lpips
from depth_strategies.core.sampling import DepthGuidedProposalSampler


@dataclass
class HashGridOptions:
    """How the torch hash grids of nerfacto's field and proposal networks are computed: the same function either
    way (:mod:`depth_strategies.core.hash_grid`), so these fields change speed, not the method. Shared by the
    ``depth-*`` methods and the nerfstudio references; applied by :func:`build_nerfacto_modules`."""

    fused_hash_grids: bool = True
    """Compute the torch hash grids of the field and the proposal networks with
    :func:`depth_strategies.core.hash_grid.hash_encode`: bit-identical forward values to nerfstudio's torch hash
    grid in fewer, larger kernels, so training steps and renders are faster (docs/decisions.md, "Hash grids";
    docs/speed.md), gradients equal up to summation order (tested to 1e-5). Parameters and checkpoints are
    unchanged. False: nerfstudio's own torch hash grid. No effect on tiny-cuda-nn grids."""
    compile_hash_grids: bool = False
    """Run the torch hash grids of the field and the proposal networks through ``torch.compile``
    (:func:`~depth_strategies.core.hash_grid.compile_hash_grids`), in training and rendering: identical forward
    values, gradients equal within the tested 1e-4; the first step of each process compiles for about half a
    minute. Faster than nerfstudio's grid code, but on the CPU a training step with compiled fused grids is slower
    than the eager fused step, so it is off by default (docs/decisions.md, "Hash grids")."""
    compile_for_rendering: bool = False
    """Compile the hash grids (as ``compile_hash_grids``) only for passes without gradients: evaluation, ns-eval,
    ns-render and the viewer; training stays eager. Forward values are bit-identical to the eager grids on the
    CPU, so renders and metrics are unchanged; on the CPU a view renders faster than with the eager fused grids
    (docs/decisions.md, "Hash grids"), after a compilation of about half a minute per process. On in the 'cpu'
    size profile; off by default (not measured on a GPU, where the compiler may contract multiply-adds and change
    the last bits)."""


@dataclass
class ColourOptions:
    """Which background the colour is learnt against. Shared by the ``depth-*`` methods and the nerfstudio
    references (applied by :func:`build_nerfacto_modules`), so a comparison can train every method the same way."""

    random_training_background: bool = False
    """In training, composite the render and the ground truth over the same random colour, drawn per ray and step
    (instant-ngp's training of synthetic scenes, Mueller et al. 2022); at test time, and in every metric, over
    ``background_color`` as without it (:class:`RandomTrainingBackgroundRenderer`). On an object scene in front of a
    white background, a fixed white lets the model explain almost every pixel by colouring everything white, and
    the colour head then runs into the saturated tail of its sigmoid, where no gradient brings it back: the run
    renders white (the baseline: empty; the guided strategies: the right shape, white) or in one flat colour
    (``docs/appearance-collapse.md``). Needs RGBA training images (the datamanager keeps their alpha) and a fixed
    ``background_color`` (white or black). False: nerfstudio's fixed background."""
    random_training_background_steps: Optional[int] = 200
    """With ``random_training_background``: use random backgrounds only for this many training steps, then
    ``background_color`` (a warm-up: the collapse of ``docs/appearance-collapse.md`` sets in within the first
    hundred steps, and random backgrounds throughout cost image quality without protecting better there). Counted
    by the renderer in its state, so it survives a checkpoint resume. None: random backgrounds for the whole run."""


def build_nerfacto_modules(
    model: NerfactoModel,
    near_far_scale: float = 1.0,
    guided_fraction: float = 0.0,
    reset_near_plane: bool = True,
    inside_box: bool = False,
) -> None:
    """Build nerfacto's fields, proposal sampler, collider, renderers and RGB loss on ``model``.

    The same modules as ``NerfactoModel.populate_modules``, which is not called because it builds LPIPS
    unconditionally and so downloads AlexNet; here LPIPS is built only when its weights are cached. The
    proposal sampler is a :class:`DepthGuidedProposalSampler` (nerfstudio's sampler when ``guided_fraction``
    is 0 or no depth is given); near and far planes are multiplied by ``near_far_scale``; with
    ``reset_near_plane`` (nerfstudio's default) the near plane drops to 0 outside training; with ``inside_box``
    each ray is sampled only inside the scene box (:class:`depth_strategies.core.colliders.BoxNearFarCollider`,
    which keeps the near plane at test time).
    """
    Model.populate_modules(model)
    cfg = model.config
    contraction = None if cfg.disable_scene_contraction else SceneContraction(order=float("inf"))
    model.field = NerfactoField(
        model.scene_box.aabb,
        hidden_dim=cfg.hidden_dim,
        num_levels=cfg.num_levels,
        max_res=cfg.max_res,
        base_res=cfg.base_res,
        features_per_level=cfg.features_per_level,
        log2_hashmap_size=cfg.log2_hashmap_size,
        hidden_dim_color=cfg.hidden_dim_color,
        hidden_dim_transient=cfg.hidden_dim_transient,
        spatial_distortion=contraction,
        num_images=model.num_train_data,
        use_pred_normals=cfg.predict_normals,
        use_average_appearance_embedding=cfg.use_average_appearance_embedding,
        appearance_embedding_dim=cfg.appearance_embed_dim if cfg.use_appearance_embedding else 0,
        average_init_density=cfg.average_init_density,
        implementation=cfg.implementation,
    )
    model.camera_optimizer = cfg.camera_optimizer.setup(num_cameras=model.num_train_data, device="cpu")
    model.proposal_networks = torch.nn.ModuleList()
    num_nets = 1 if cfg.use_same_proposal_network else cfg.num_proposal_iterations
    for i in range(num_nets):
        args = cfg.proposal_net_args_list[min(i, len(cfg.proposal_net_args_list) - 1)]
        model.proposal_networks.append(
            HashMLPDensityField(
                model.scene_box.aabb,
                spatial_distortion=contraction,
                **args,
                average_init_density=cfg.average_init_density,
                implementation=cfg.implementation,
            )
        )
    model.density_fns = [
        model.proposal_networks[min(i, num_nets - 1)].density_fn for i in range(cfg.num_proposal_iterations)
    ]

    def update_schedule(step: int) -> float:
        return float(
            np.clip(
                np.interp(step, [0, cfg.proposal_warmup], [0, cfg.proposal_update_every]), 1, cfg.proposal_update_every
            )
        )

    if cfg.proposal_initial_sampler == "uniform":
        initial_sampler = UniformSampler(single_jitter=cfg.use_single_jitter)
    else:
        initial_sampler = UniformLinDispPiecewiseSampler(single_jitter=cfg.use_single_jitter)
    model.proposal_sampler = DepthGuidedProposalSampler(
        guided_fraction=guided_fraction,
        num_nerf_samples_per_ray=cfg.num_nerf_samples_per_ray,
        num_proposal_samples_per_ray=cfg.num_proposal_samples_per_ray,
        num_proposal_network_iterations=cfg.num_proposal_iterations,
        single_jitter=cfg.use_single_jitter,
        update_sched=update_schedule,
        initial_sampler=initial_sampler,
    )
    if inside_box:
        model.collider = BoxNearFarCollider(
            model.scene_box.aabb, near_plane=cfg.near_plane * near_far_scale, far_plane=cfg.far_plane * near_far_scale
        )
    else:
        model.collider = NearFarCollider(
            near_plane=cfg.near_plane * near_far_scale,
            far_plane=cfg.far_plane * near_far_scale,
            reset_near_plane=reset_near_plane,
        )
    random_background = isinstance(cfg, ColourOptions) and cfg.random_training_background
    if random_background and cfg.background_color not in ("white", "black"):
        raise ValueError(
            f"random_training_background composites the test views over a fixed background_color (white or black), "
            f"but background_color is {cfg.background_color!r}: set --pipeline.model.background-color white"
        )
    if random_background:
        steps = cfg.random_training_background_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(
                f"random_training_background_steps must be a positive number of steps or None (the whole run), not "
                f"{steps!r}: set --pipeline.model.random-training-background-steps 200, for example"
            )
        model.renderer_rgb = RandomTrainingBackgroundRenderer(background_color=cfg.background_color, random_steps=steps)
    else:
        model.renderer_rgb = RGBRenderer(background_color=cfg.background_color)
    model.renderer_accumulation = AccumulationRenderer()
    model.renderer_depth = DepthRenderer(method="median")
    model.renderer_expected_depth = DepthRenderer(method="expected")
    model.renderer_normals = NormalsRenderer()
    model.normals_shader = NormalsShader()
    model.rgb_loss = MSELoss()
    model.psnr = PeakSignalNoiseRatio(data_range=1.0)
    model.lpips = build_lpips()
    model.step = 0
    if isinstance(cfg, HashGridOptions):
        apply_hash_grid_options(model, cfg)


BACKGROUND_STREAM_OFFSET = 0x5EED_BAC6
"""Added to the run's seed to seed the random training backgrounds' stream (any constant that differs from the
guidance stream's offset, 0, works: the two streams then draw different numbers)."""


class RandomTrainingBackgroundRenderer(RGBRenderer):
    """nerfstudio's RGB renderer over a fixed background (``background_color``: white or black), except in the
    training loss, where render and ground truth are composited over the same random colour per ray
    (:class:`ColourOptions`). The render itself stays composited over the fixed background, so every output,
    metric and picture is as with nerfstudio's renderer; only the loss sees the random colour
    (:func:`depth_strategies.core.appearance.recomposite`).

    ``random_steps``: random colours for the first this many loss computations in training (one per step), then
    the fixed background; None: always random. The count is a buffer of the module, saved with the checkpoint, and
    the choice is made on the device (no host synchronisation).

    The colours come from the renderer's own stream, seeded from the run's seed when the renderer is built
    (``torch.initial_seed()``, offset by :data:`BACKGROUND_STREAM_OFFSET` so that it is not the guidance's stream):
    drawing them from torch's global stream would change every later ray batch and nerfacto sample, so a run on
    random backgrounds would differ from the same seed's run on white in which rays it sees as well as in its
    background (common random numbers). The stream restarts from its seed when a checkpoint is resumed."""

    def __init__(self, background_color: str = "white", random_steps: Optional[int] = None) -> None:
        super().__init__(background_color=background_color)
        self.random_steps = random_steps
        self.register_buffer("training_loss_steps", torch.zeros((), dtype=torch.long))
        self._seed = (torch.initial_seed() + BACKGROUND_STREAM_OFFSET) % 2**63
        self._generators: Dict[str, torch.Generator] = {}

    def random_colours(self, like: Tensor) -> Tensor:
        """U(0, 1) colours shaped like ``like`` from the renderer's own stream (one per device)."""
        key = str(like.device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=like.device).manual_seed(self._seed)
        return torch.rand(like.shape, generator=self._generators[key], device=like.device, dtype=like.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the warm-up existed have no step count: they resume at 0
        state_dict.setdefault(prefix + "training_loss_steps", torch.zeros((), dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def blend_background_for_loss_computation(self, pred_image: Tensor, pred_accumulation: Tensor,
                                              gt_image: Tensor) -> Tuple[Tensor, Tensor]:
        if not self.training:
            return super().blend_background_for_loss_computation(pred_image, pred_accumulation, gt_image)
        if gt_image.shape[-1] != 4:
            raise ValueError(
                "random_training_background needs the alpha channel of the training images, but the batch holds RGB "
                "only: use RGBA images and keep their alpha (--pipeline.datamanager.keep-alpha True), or set "
                "--pipeline.model.random-training-background False"
            )
        fixed = self.get_background_color(self.background_color, shape=pred_image.shape, device=pred_image.device)
        background = self.random_colours(pred_image)
        if self.random_steps is not None:
            background = torch.where(self.training_loss_steps < self.random_steps, background, fixed)
        self.training_loss_steps += 1
        return (recomposite(pred_image, pred_accumulation, fixed, background),
                self.blend_background(gt_image, background_color=background))


def apply_hash_grid_options(model: torch.nn.Module, options: HashGridOptions) -> None:
    """Compute ``model``'s torch hash grids as ``options`` say (fused, compiled, compiled for rendering)."""
    if options.fused_hash_grids:
        use_fused_hash_grids(model)
    if options.compile_hash_grids or options.compile_for_rendering:
        compile_hash_grids(model, without_grad_only=not options.compile_hash_grids)
