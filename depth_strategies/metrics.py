"""Evaluation metrics for depth and surface sharpness, as pure functions over per-pixel tensors.

All depths are distances along the ray in Blender units (the model divides out the dataparser scale first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

DELTA_THRESHOLD = 1.25
"""Threshold accuracy max(d/d*, d*/d) < 1.25 (Eigen et al., NeurIPS 2014)."""


@dataclass(frozen=True)
class MetricSpec:
    """A reported metric: its key in results and which direction is better."""

    name: str
    """Key in ``ns-eval``'s JSON and in ``results.json``."""
    better: Literal["higher", "lower"]
    """Whether larger values are better."""
    unit: str
    """Unit, for tables and plots."""
    description: str
    """One line for tables and the README."""


METRICS: Dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("psnr", "higher", "dB", "peak signal-to-noise ratio of the RGB image"),
        MetricSpec("ssim", "higher", "", "structural similarity of the RGB image"),
        MetricSpec("lpips", "lower", "", "LPIPS (AlexNet); only when its weights are cached"),
        MetricSpec("depth_l1", "lower", "units", "mean |D - D_gt| on pixels with known surface depth"),
        MetricSpec("depth_rmse", "lower", "units", "root mean squared depth error on the same pixels"),
        MetricSpec("depth_abs_rel", "lower", "", "mean |D - D_gt| / D_gt"),
        MetricSpec("depth_delta1", "higher", "", "fraction of pixels with max(D/D_gt, D_gt/D) < 1.25"),
        MetricSpec("weight_variance", "lower", "units^2", "sum_i w_i (t_i - D)^2 on surface rays"),
        MetricSpec("weight_entropy", "lower", "nats", "entropy of the normalised weights on surface rays"),
    )
}
"""Every metric the model reports, with its direction: tables and statistics are generated from this."""


def depth_errors(
    predicted: Float[Tensor, "*bs 1"], gt: Float[Tensor, "*bs 1"], valid: Bool[Tensor, "*bs 1"]
) -> Dict[str, float]:
    """L1, RMSE, AbsRel and delta<1.25 over ``valid`` pixels; empty dict when no pixel is valid."""
    if not bool(valid.any()):
        return {}
    p, g = predicted[valid].double(), gt[valid].double()
    err = p - g
    ratio = torch.maximum(p / g, g / p.clamp_min(1e-12))
    return {
        "depth_l1": float(err.abs().mean()),
        "depth_rmse": float(torch.sqrt((err**2).mean())),
        "depth_abs_rel": float((err.abs() / g).mean()),
        "depth_delta1": float((ratio < DELTA_THRESHOLD).double().mean()),
    }


def masked_average(values: Float[Tensor, "*bs 1"], mask: Bool[Tensor, "*bs 1"]) -> float:
    """Plain mean of ``values`` over ``mask`` as a float (NaN when the mask is empty: the caller skips it)."""
    return float(values[mask].double().mean()) if bool(mask.any()) else float("nan")
