"""Evaluation metrics for depth and surface sharpness, as pure functions over per-pixel tensors.

All depths are distances along the ray in Blender units (the model divides out the dataparser scale first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Literal, Optional, Tuple

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from torchmetrics.functional import peak_signal_noise_ratio, structural_similarity_index_measure

from depth_strategies.core.appearance import appearance_statistics

DEPTH_KEY = "depth_image"
"""Batch key of ground-truth ray distance (model units); see :mod:`depth_strategies.core.data`."""
STATE_KEY = "depth_state"
"""Batch key of the per-pixel depth state; 1 = a surface at known depth
(:class:`depth_strategies.core.data.DepthState`)."""
SURFACE = 1
"""Value of ``DepthState.SURFACE``."""
EMPTY = 2
"""Value of ``DepthState.EMPTY``: a pixel with alpha = 0, whose ray hits nothing."""
OUTPUT_VARIANCE = "weight_variance"
"""Per-ray model output: sum_i p_i (t_i - D)^2 with p = w / sum w and D = sum_i p_i t_i: the spread of the
normalised termination distribution (distance^2), independent of how opaque the ray is."""
OUTPUT_ENTROPY = "weight_entropy"
"""Per-ray model output: entropy (nats) of the normalised weights along the ray."""

EVALUATION_PROTOCOL: Dict[str, str] = {
    "background": "white: NeRF-synthetic RGBA images composited on white, rendered with a white background",
    "ground truth": "8-bit PNG images as stored; predictions in float, not quantised",
    "ssim": "torchmetrics structural_similarity_index_measure, default arguments (Gaussian 11x11, sigma 1.5, "
    "data range from the images)",
    "psnr": "data range 1.0, over the whole image",
    "lpips": "AlexNet (torchmetrics), only when its weights are cached; otherwise not reported",
    "depth": "depth_l1 etc. on the median termination distance; depth_l1_expected on the expected one; "
    "distances along the ray in Blender units",
    "depth mask": "pixels with a known surface (alpha opaque, depth inside [2, 6]); alpha = 0 pixels count in "
    "background_accumulation only",
    "views": "every view of the test split, rendered from its camera without ground truth",
    "appearance": "object_coverage and colour_spread_ratio (depth_strategies.core.appearance) over the pixels that "
    "are not known empty (alpha > 0; every pixel without a depth state); a run is marked collapsed when most of its "
    "views are empty or of constant colour",
}
"""How every number is computed. Recorded in results.json and printed under each table: published NeRF-synthetic
figures (black or white background, full resolution, other SSIM settings) are not comparable where these differ."""

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
    """One line, recorded in results.json with the metric, for tables and figures."""


METRICS: Dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("psnr", "higher", "dB", "peak signal-to-noise ratio of the RGB image"),
        MetricSpec("ssim", "higher", "", "structural similarity of the RGB image"),
        MetricSpec("lpips", "lower", "", "LPIPS (AlexNet); only when its weights are cached"),
        MetricSpec("depth_l1", "lower", "units", "mean |D - D_gt| of the median depth, pixels with known depth"),
        MetricSpec("depth_l1_expected", "lower", "units",
                   "mean |D - D_gt| of nerfstudio's normalised expected depth sum p_i t_i (p = w / sum w), same "
                   "pixels; the soft loss's D_pred = sum w_i t_i is unnormalised and equal to it where the "
                   "accumulation is 1"),
        MetricSpec("proposal_depth_l1", "lower", "units",
                   "mean |D - D_gt| of the last proposal level's median depth, same pixels: how well the sampler "
                   "that places the NeRF samples at test time knows the surface"),
        MetricSpec("depth_rmse", "lower", "units", "root mean squared depth error on the same pixels"),
        MetricSpec("depth_abs_rel", "lower", "", "mean |D - D_gt| / D_gt"),
        MetricSpec("depth_delta1", "higher", "", "fraction of pixels with max(D/D_gt, D_gt/D) < 1.25"),
        MetricSpec(OUTPUT_VARIANCE, "lower", "units^2",
                   "variance of the normalised weights, surface rays (a training objective of depth-hard/hybrid)"),
        MetricSpec(OUTPUT_ENTROPY, "lower", "nats", "entropy of the normalised weights on rays that hit a surface"),
        MetricSpec("background_accumulation", "lower", "",
                   "mean accumulation on alpha = 0 pixels (floaters; what mask supervision targets)"),
    )
}
"""Every metric the model reports, with its direction: tables and statistics are generated from this."""


DEFAULT_PRIMARY_METRICS: Tuple[str, ...] = ("psnr", "depth_l1")
"""The metrics a comparison tests by default (its declared family): one image metric and one depth metric."""


def ground_truth_rgb(image: Float[Tensor, "*bs channels"]) -> Float[Tensor, "*bs 3"]:
    """The ground-truth colour every metric compares with: RGB as given, or RGBA composited on white (the
    background of the evaluation protocol; nerfstudio-data keeps the alpha channel of RGBA images, whereas
    nerfstudio's Blender parser composites it on white itself)."""
    if image.shape[-1] == 4:
        return image[..., :3] * image[..., 3:] + (1.0 - image[..., 3:])
    return image[..., :3]


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


def image_metrics(
    outputs: Dict[str, Tensor],
    batch: Dict[str, Tensor],
    scene_scale: float = 1.0,
    lpips: Optional[torch.nn.Module] = None,
) -> Dict[str, float]:
    """Every metric of one rendered test view, for any nerfacto-family model.

    ``outputs``: ``rgb`` [H, W, 3], ``depth`` [H, W, 1] (rendered, median termination distance), ``accumulation``,
    and, when the model offers them, ``expected_depth`` and ``weight_variance`` / ``weight_entropy``. ``batch``:
    ``image`` [H, W, 3] (background already composited) and, when the view has ground-truth depth,
    ``depth_image`` / ``depth_state``. Depths are divided by ``scene_scale`` so that errors are in Blender units.
    LPIPS only when ``lpips`` is given.
    """
    device = outputs["rgb"].device
    gt_rgb = ground_truth_rgb(batch["image"].to(device))
    gt = torch.moveaxis(gt_rgb, -1, 0)[None]
    pred = torch.moveaxis(outputs["rgb"], -1, 0)[None]
    metrics = {
        "psnr": float(peak_signal_noise_ratio(pred, gt, data_range=1.0)),
        "ssim": float(structural_similarity_index_measure(pred, gt)),  # type: ignore[arg-type]
    }
    if lpips is not None:
        metrics["lpips"] = float(lpips(gt, pred))
    if DEPTH_KEY in batch and STATE_KEY in batch:
        surface = batch[STATE_KEY].to(device) == SURFACE
        gt_depth = batch[DEPTH_KEY].to(device) / scene_scale
        metrics.update(depth_errors(outputs["depth"] / scene_scale, gt_depth, surface))
        if "expected_depth" in outputs and bool(surface.any()):
            expected = depth_errors(outputs["expected_depth"] / scene_scale, gt_depth, surface)
            metrics["depth_l1_expected"] = expected["depth_l1"]
        proposal_levels = sorted(int(k.rsplit("_", 1)[1]) for k in outputs if k.startswith("prop_depth_"))
        if proposal_levels and bool(surface.any()):
            last = outputs[f"prop_depth_{proposal_levels[-1]}"] / scene_scale
            metrics["proposal_depth_l1"] = depth_errors(last, gt_depth, surface)["depth_l1"]
        empty = batch[STATE_KEY].to(device) == EMPTY
        if bool(empty.any()):
            metrics["background_accumulation"] = masked_average(outputs["accumulation"], empty)
    else:
        surface = outputs["accumulation"] > 0.5
    objects = (batch[STATE_KEY].to(device) != EMPTY if STATE_KEY in batch
               else torch.ones_like(gt_rgb[..., :1], dtype=torch.bool))
    metrics.update({k: float(v) for k, v in appearance_statistics(outputs["rgb"], gt_rgb, outputs["accumulation"],
                                                                   objects).items()})
    if OUTPUT_VARIANCE in outputs and bool(surface.any()):
        metrics[OUTPUT_VARIANCE] = masked_average(outputs[OUTPUT_VARIANCE] / scene_scale**2, surface)
        metrics[OUTPUT_ENTROPY] = masked_average(outputs[OUTPUT_ENTROPY], surface)
    return metrics
