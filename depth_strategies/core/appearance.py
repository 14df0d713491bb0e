"""Appearance collapse: a render whose geometry may be right but whose colour is lost, as pure functions.

On object scenes in front of a white background (a thin, dark object covering a few per cent of each view), a
NeRF can settle where the white background explains almost every pixel: it renders white everywhere (empty space,
or an object coloured white), or the object in one flat colour. ``docs/appearance-collapse.md`` has the scene, the
mechanism and the fix; these functions only detect it, from a render and its ground truth:

* **empty**: the object's pixels are not rendered (low accumulation where the ground truth shows the object);
* **constant colour**: where the render is opaque on the object, its colour hardly varies while the ground
  truth's does (a white or one-tone object: the colour head no longer depends on the point).

Per-view (or per-batch) values out; the caller decides what to warn about and how to report it.
"""

from __future__ import annotations

from typing import Dict, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

AppearanceStatus = Literal["ok", "empty", "constant colour"]

OPAQUE_ACCUMULATION: float = 0.5
"""A rendered pixel counts as showing something where its accumulation is at least this (the median depth's own
rule: half the weight in front of it)."""
EMPTY_COVERAGE: float = 0.2
"""A render is *empty* when fewer than this share of the object's pixels are opaque in it. A sound run covers most
of them, an empty one none (measured per view: ``docs/appearance-collapse.md``)."""
CONSTANT_SPREAD_RATIO: float = 0.25
"""A render has a *constant colour* when its colour spread over the opaque object pixels is below this fraction of
the ground truth's spread over the same pixels: a textured render keeps most of it, a flat or white one none
(measured per view: ``docs/appearance-collapse.md``)."""
MIN_PIXELS: int = 16
"""Fewer object pixels than this: too few to judge (status "ok", nothing flagged)."""


def recomposite(
    rgb: Float[Tensor, "*bs 3"],
    accumulation: Float[Tensor, "*bs 1"],
    background: Float[Tensor, "*bs 3"],
    new_background: Float[Tensor, "*bs 3"],
) -> Float[Tensor, "*bs 3"]:
    """A render composited over ``background`` moved over ``new_background``: c + (1 - a) (b_new - b), since a
    composite is c_object + (1 - a) b (Porter and Duff's "over")."""
    return rgb + (1.0 - accumulation) * (new_background - background)


def colour_spread(rgb: Float[Tensor, "*bs 3"], mask: Bool[Tensor, "*bs 1"]) -> Float[Tensor, ""]:
    """Standard deviation of the colour over the masked pixels, per channel, averaged over the channels (0 for
    fewer than two pixels). Population std: sqrt(mean (c - mean c)^2)."""
    weights = mask.to(rgb.dtype)
    count = weights.sum()
    mean = (rgb * weights).sum(dim=tuple(range(rgb.dim() - 1))) / count.clamp_min(1)
    variance = (((rgb - mean) ** 2) * weights).sum(dim=tuple(range(rgb.dim() - 1))) / count.clamp_min(1)
    return torch.where(count >= 2, variance.sqrt().mean(), torch.zeros_like(count))


def appearance_statistics(
    rgb: Float[Tensor, "*bs 3"],
    gt_rgb: Float[Tensor, "*bs 3"],
    accumulation: Float[Tensor, "*bs 1"],
    object_mask: Bool[Tensor, "*bs 1"],
) -> Dict[str, Float[Tensor, ""]]:
    """What the detector reads from one render: ``object_coverage``, the share of the object's pixels
    (``object_mask``: where the ground truth shows the object) that the render makes opaque; and
    ``colour_spread_ratio``, :func:`colour_spread` of the render over those opaque object pixels divided by the
    ground truth's over the same pixels (1 when the ground truth is itself flat there). Tensors, no host sync."""
    opaque = object_mask & (accumulation >= OPAQUE_ACCUMULATION)
    objects = object_mask.sum().to(rgb.dtype)
    coverage = opaque.sum().to(rgb.dtype) / objects.clamp_min(1)
    gt_spread = colour_spread(gt_rgb, opaque)
    spread = colour_spread(rgb, opaque)
    ratio = torch.where(gt_spread > 0, spread / gt_spread.clamp_min(1e-12), torch.ones_like(gt_spread))
    return {"object_pixels": objects, "object_coverage": coverage, "colour_spread_ratio": ratio}


def appearance_status(object_pixels: float, object_coverage: float, colour_spread_ratio: float) -> AppearanceStatus:
    """"empty", "constant colour" or "ok" from :func:`appearance_statistics` (as floats), by the thresholds above."""
    if object_pixels < MIN_PIXELS:
        return "ok"
    if object_coverage < EMPTY_COVERAGE:
        return "empty"
    if colour_spread_ratio < CONSTANT_SPREAD_RATIO:
        return "constant colour"
    return "ok"


def object_mask_from_background(
    gt_rgb: Float[Tensor, "*bs 3"], background: Float[Tensor, "3"], tolerance: float = 0.05
) -> Bool[Tensor, "*bs 1"]:
    """Pixels whose ground-truth colour differs from a known background colour by more than ``tolerance`` in some
    channel: the object's pixels of a scene composited on a fixed background, where no alpha or depth state says
    so (training batches of the RGB-only baseline)."""
    return ((gt_rgb - background.to(gt_rgb)).abs() > tolerance).any(dim=-1, keepdim=True)


COLLAPSE_ADVICE: str = (
    "see docs/appearance-collapse.md: on object scenes with a white background train on random backgrounds "
    "(--pipeline.model.random-training-background True, the default of every depth-* method)"
)
"""What a collapse warning tells the user to do."""


class AppearanceMonitor:
    """Turns a training run's periodic appearance checks into at most one warning per kind of collapse: a status
    other than "ok" at ``patience`` consecutive checks (one noisy batch is not a collapse) gives a message; a run
    that recovers and collapses again in another way gets a message for that too."""

    def __init__(self, patience: int = 2) -> None:
        self.patience = patience
        self.streak: list[AppearanceStatus] = []
        self.warned: list[AppearanceStatus] = []

    def update(self, step: int, status: AppearanceStatus, coverage: float, ratio: float) -> str | None:
        """Record the check at ``step``; the warning to print, or None."""
        self.streak = [*self.streak, status][-self.patience:]
        if status == "ok" or status in self.warned or self.streak.count(status) < self.patience:
            return None
        self.warned.append(status)
        what = {
            "empty": "renders (almost) nothing where the training images show the object",
            "constant colour": "renders the object in one flat colour (its colour no longer depends on the point)",
        }[status]
        return (
            f"appearance collapse at step {step}: the model {what} - object coverage {coverage:.2f}, colour spread "
            f"{ratio:.2f} of the ground truth's on the training batch; {COLLAPSE_ADVICE}"
        )
