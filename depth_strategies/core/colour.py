"""Images of depth for people: colourised depth on a shared range and depth-error maps.

Used by the model (tensorboard, viewer and ``ns-eval`` images) and by the comparison's panels and videos.
All functions take and return ``[H, W, C]`` tensors in [0, 1].
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from jaxtyping import Bool, Float
from nerfstudio.utils import colormaps
from torch import Tensor

DEPTH_ERROR_RANGE = 0.5
"""Depth error (Blender units) that saturates the error colour map: above the guided window eps = 0.3."""


def colourise_depth(
    depth: Float[Tensor, "h w 1"], near: float, far: float, accumulation: Optional[Float[Tensor, "h w 1"]] = None
) -> Float[Tensor, "h w 3"]:
    """Depth mapped to turbo on the fixed range [near, far] (the same range for every image it is compared with)."""
    return colormaps.apply_depth_colormap(depth, accumulation=accumulation, near_plane=near, far_plane=far)


def colourise_error(
    error: Float[Tensor, "h w 1"], valid: Bool[Tensor, "h w 1"], saturate: float = DEPTH_ERROR_RANGE
) -> Float[Tensor, "h w 3"]:
    """|depth error| in inferno, saturating at ``saturate``; black where there is no ground truth."""
    scaled = torch.where(valid, error.abs() / saturate, torch.zeros_like(error)).clamp(0, 1)
    return colormaps.apply_colormap(scaled, colormaps.ColormapOptions(colormap="inferno")) * valid


def depth_images(
    depth: Float[Tensor, "h w 1"],
    accumulation: Float[Tensor, "h w 1"],
    gt_depth: Optional[Float[Tensor, "h w 1"]],
    surface: Optional[Bool[Tensor, "h w 1"]],
) -> Dict[str, Tensor]:
    """``depth``: GT | prediction on the GT's range (prediction alone without GT); ``depth_error``: |error| map."""
    if gt_depth is None or surface is None or not bool(surface.any()):
        return {"depth": colormaps.apply_depth_colormap(depth, accumulation=accumulation)}
    near, far = float(gt_depth[surface].min()), float(gt_depth[surface].max())
    gt_vis = colourise_depth(gt_depth, near, far) * surface
    pred_vis = colourise_depth(depth, near, far, accumulation)
    return {"depth": torch.cat([gt_vis, pred_vis], dim=1), "depth_error": colourise_error(depth - gt_depth, surface)}
