"""The one colour rule for depth images, used by the model (tensorboard, viewer-side evaluation, ``ns-eval``
images), the comparison panels, ``ds-figures`` and ``ds-video``.

* **Depth** is mapped to :data:`DEPTH_CMAP` on one range shared by every image it is compared with
  (:func:`depth_range`); the background is white.
* **Depth error** ``|D - D_gt|`` is mapped to :data:`ERROR_CMAP` on ``[0, DEPTH_ERROR_RANGE]``, black where there
  is no ground truth.

The functions work on numpy arrays (``[H, W]`` or ``[H, W, 1]``) and return ``[H, W, 3]`` floats in [0, 1];
:func:`depth_images` is the adapter for the model's tensors.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch
from jaxtyping import Bool, Float
from matplotlib import colormaps
from torch import Tensor

DEPTH_CMAP = "turbo"
"""Colour map of depth (matplotlib name)."""
ERROR_CMAP = "inferno"
"""Colour map of the depth error (matplotlib name)."""
DEPTH_ERROR_RANGE = 0.5
"""Depth error (Blender units) that saturates the error colour map: above the guided window eps = 0.3."""
DEPTH_PERCENTILES = (2.0, 98.0)
"""Percentiles of the depths that span the shared range: a few stray pixels do not stretch it."""
FOREGROUND_ACCUMULATION = 0.5
"""A rendered pixel is foreground (coloured by its depth) where its accumulation exceeds this; else background."""
BACKGROUND = 1.0
"""Grey level of the background: white, as the scenes' background."""
EMPTY_RANGE = (0.0, 1.0)
"""Range used when there is no depth to span one."""

DepthRange = Tuple[float, float]


def plane(array: np.ndarray) -> np.ndarray:
    """``[H, W, 1]`` or ``[H, W]`` as a float64 ``[H, W]`` array."""
    array = np.asarray(array)
    return (array[..., 0] if array.ndim == 3 else array).astype(np.float64)


def depth_range(
    gt_depth: Optional[np.ndarray] = None,
    gt_surface: Optional[np.ndarray] = None,
    rendered: Iterable[Tuple[np.ndarray, np.ndarray]] = (),
) -> DepthRange:
    """The shared depth range: the :data:`DEPTH_PERCENTILES` of the ground-truth depth on known surface pixels;
    without ground truth (or no surface pixel), of every rendered ``(depth, accumulation)`` pair's foreground
    depth; :data:`EMPTY_RANGE` when there is neither. A degenerate range is widened to a positive width."""
    samples = np.empty(0)
    if gt_depth is not None and gt_surface is not None:
        depth = plane(gt_depth)
        samples = depth[plane(gt_surface).astype(bool) & np.isfinite(depth)]
    if samples.size == 0:
        parts = [
            plane(depth)[(plane(acc) > FOREGROUND_ACCUMULATION) & np.isfinite(plane(depth))] for depth, acc in rendered
        ]
        samples = np.concatenate(parts) if parts else np.empty(0)
    if samples.size == 0:
        return EMPTY_RANGE
    low, high = (float(p) for p in np.percentile(samples, DEPTH_PERCENTILES))
    if not high > low:
        high = low + max(abs(low) * 1e-3, 1e-6)
    return low, high


def colourise_depth(depth: np.ndarray, range_: DepthRange, background: Optional[np.ndarray] = None) -> np.ndarray:
    """Depth in :data:`DEPTH_CMAP` on ``range_`` (clipped), :data:`BACKGROUND` where ``background``."""
    low, high = range_
    scaled = np.clip(np.nan_to_num((plane(depth) - low) / (high - low)), 0.0, 1.0)
    image = colormaps[DEPTH_CMAP](scaled)[..., :3]
    if background is not None:
        image[plane(background).astype(bool)] = BACKGROUND
    return image


def colourise_error(error: np.ndarray, valid: np.ndarray, saturate: float = DEPTH_ERROR_RANGE) -> np.ndarray:
    """|error| in :data:`ERROR_CMAP` on [0, ``saturate``], black where not ``valid``."""
    scaled = np.clip(np.nan_to_num(np.abs(plane(error)) / saturate), 0.0, 1.0)
    image = colormaps[ERROR_CMAP](scaled)[..., :3]
    image[~plane(valid).astype(bool)] = 0.0
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image in [0, 1] (clipped) as uint8, rounded to the nearest level: how images and video frames are
    written."""
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def depth_images(
    depth: Float[Tensor, "h w 1"],
    accumulation: Float[Tensor, "h w 1"],
    gt_depth: Optional[Float[Tensor, "h w 1"]],
    surface: Optional[Bool[Tensor, "h w 1"]],
    extra_depths: Optional[Dict[str, Float[Tensor, "h w 1"]]] = None,
) -> Dict[str, Tensor]:
    """The model's depth images, on ``depth``'s device: ``depth`` (ground truth | prediction on one range, the
    prediction alone without ground truth), ``depth_error`` (with ground truth) and each of ``extra_depths``
    (e.g. the proposal levels) on the same range."""

    def numpy(t: Tensor) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    def tensor(image: np.ndarray) -> Tensor:
        return torch.from_numpy(image.astype(np.float32)).to(depth.device)

    pred, acc = numpy(depth), numpy(accumulation)
    background = acc < FOREGROUND_ACCUMULATION
    has_gt = gt_depth is not None and surface is not None and bool(surface.any())
    gt, valid = (numpy(gt_depth), numpy(surface).astype(bool)) if has_gt else (None, None)
    range_ = depth_range(gt, valid, [(pred, acc)])
    images = {"depth": colourise_depth(pred, range_, background)}
    if has_gt:
        images["depth"] = np.concatenate([colourise_depth(gt, range_, ~valid), images["depth"]], axis=1)
        images["depth_error"] = colourise_error(pred - gt, valid)
    for name, extra in (extra_depths or {}).items():
        images[name] = colourise_depth(numpy(extra), range_, background)
    return {name: tensor(image) for name, image in images.items()}
