"""The depth of a training batch's rays as the model uses it, prepared once per training step.

:func:`prepare_ray_depth` is a pure function of the batch's per-ray depth, depth state, image index and reported
sigma, the per-image measurements the model holds (multi-view inconsistency, running alignment) and the config
values they need. Its :class:`RayDepth` feeds both the guided sampler (:mod:`depth_strategies.core.sampling`) and
the depth losses (:mod:`depth_strategies.core.losses`), so the two cannot disagree about a ray's sigma, window or
trust. Distances: depth and sigma in model units (as the batch holds them), windows in Blender units (as the
config's ``guide_half_width`` and the losses have them); ``scene_scale`` converts.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor

from depth_strategies.core import losses
from depth_strategies.core.data import DepthState


class RayDepth(NamedTuple):
    """Per ray of a training batch (each ``[*bs, 1]``)."""

    depth: Float[Tensor, "*bs 1"]
    """The given depth with its image's running alignment applied (model units); the given depth without one."""
    sigma: Optional[Float[Tensor, "*bs 1"]]
    """The depth's sigma (model units): the reported one, raised to its image's multi-view inconsistency when
    that is given (None when neither exists)."""
    half_width: Float[Tensor, "*bs 1"]
    """eps, the guided window's half width and free-space margin (Blender units): max(guide_half_width,
    k sigma) with k = ``sigma_window_mult`` > 0 and a sigma, else ``guide_half_width``."""
    state: Shaped[Tensor, "*bs 1"]
    """The depth state with the surface rays whose window exceeds ``max_trusted_half_width`` marked unknown."""
    ready: Bool[Tensor, "*bs 1"]
    """Whether the ray's image alignment has been updated ``alignment_warmup`` times (always True without one)."""
    trust: Optional[Float[Tensor, "*bs 1"]]
    """(guide_half_width / eps)^2 (:func:`depth_strategies.core.losses.uncertainty_weight`) when
    ``sigma_window_mult`` > 0, else None (every ray weighs 1)."""


def align_depth(
    depth: Float[Tensor, "*bs 1"],
    image: Int[Tensor, "*bs 1"],
    alignment_scale: Float[Tensor, " num_images"],
    alignment_shift: Float[Tensor, " num_images"],
    scene_scale: float,
) -> Float[Tensor, "*bs 1"]:
    """scale_i * D + shift_i per ray of image i: the given depth (model units) under its image's running alignment
    (shift in Blender units)."""
    index = image[..., 0].long()
    return alignment_scale[index, None] * depth + alignment_shift[index, None] * scene_scale


def alignment_ready(
    image: Int[Tensor, "*bs 1"], alignment_seen: Optional[Int[Tensor, " num_images"]], alignment_warmup: int
) -> Bool[Tensor, "*bs 1"]:
    """Per ray: whether its image's alignment has been updated at least ``alignment_warmup`` times (all True when
    ``alignment_seen`` is None: no alignment)."""
    if alignment_seen is None:
        return torch.ones_like(image, dtype=torch.bool)
    return (alignment_seen[image[..., 0].long()] >= alignment_warmup)[..., None]


def prepare_ray_depth(
    depth: Float[Tensor, "*bs 1"],
    state: Shaped[Tensor, "*bs 1"],
    image: Int[Tensor, "*bs 1"],
    reported_sigma: Optional[Float[Tensor, "*bs 1"]],
    *,
    scene_scale: float,
    guide_half_width: float,
    sigma_window_mult: float,
    max_trusted_half_width: float,
    image_consistency: Optional[Float[Tensor, " num_images"]] = None,
    alignment_scale: Optional[Float[Tensor, " num_images"]] = None,
    alignment_shift: Optional[Float[Tensor, " num_images"]] = None,
    alignment_seen: Optional[Int[Tensor, " num_images"]] = None,
    alignment_warmup: int = 0,
) -> RayDepth:
    """The per-ray depth of a training batch (:class:`RayDepth`).

    ``depth``, ``reported_sigma``: model units; ``state``: a :class:`~depth_strategies.core.data.DepthState` per
    ray; ``image``: each ray's training image. ``image_consistency``: each image's multi-view inconsistency (model
    units), a lower bound on its rays' sigma (``consistency_sigma``), or None. ``alignment_*``: the running
    per-image alignment (``depth_alignment``), or None. Nothing is drawn at random: which trusted rays are guided
    (``guide_by_trust``) is drawn by the model from ``trust``.
    """
    if alignment_scale is not None and alignment_shift is not None:
        depth = align_depth(depth, image, alignment_scale, alignment_shift, scene_scale)
    sigma = reported_sigma
    if image_consistency is not None:
        sigma = losses.combined_sigma(reported_sigma, image_consistency[image[..., 0].long(), None])
    if sigma_window_mult <= 0 or sigma is None:
        half_width = torch.full_like(depth, guide_half_width)
    else:
        half_width = losses.window_half_width(sigma / scene_scale, guide_half_width, sigma_window_mult)
    if sigma_window_mult > 0 and max_trusted_half_width > 0:
        untrusted = (state == DepthState.SURFACE) & ~losses.trusted_depth(half_width, max_trusted_half_width)
        state = torch.where(untrusted, torch.full_like(state, DepthState.UNKNOWN), state)
    trust = losses.uncertainty_weight(half_width, guide_half_width) if sigma_window_mult > 0 else None
    return RayDepth(
        depth=depth,
        sigma=sigma,
        half_width=half_width,
        state=state,
        ready=alignment_ready(image, alignment_seen, alignment_warmup),
        trust=trust,
    )
