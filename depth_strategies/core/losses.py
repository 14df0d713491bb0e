"""Depth losses as pure functions over per-sample tensors.

Every function returns per-ray values (``[*bs, 1]``); the model chooses which rays count (a mask from the
depth state of each pixel) and reduces them with :func:`masked_mean`. Distances are along the ray, in the
model's units (Blender units times the dataparser's scale factor).

Notation: a ray has samples ``i`` with bin ``[s_i, e_i]``, midpoint ``t_i = (s_i + e_i) / 2`` and volume
rendering weight ``w_i = T_i (1 - exp(-sigma_i (e_i - s_i)))`` (Max 1995; Mildenhall et al. 2020, eq. 3).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor


def expected_termination(
    weights: Float[Tensor, "*bs num_samples 1"], t_mid: Float[Tensor, "*bs num_samples 1"]
) -> Float[Tensor, "*bs 1"]:
    """D_pred = sum_i w_i t_i, the (unnormalised) expected termination distance of the ray.

    Unnormalised on purpose: a ray that stays transparent (sum w < 1) predicts a depth short of the surface,
    so the depth losses below also ask for an opaque surface where the ground truth has one. It equals
    nerfstudio's normalised "expected_depth" whenever the accumulation is 1.
    """
    return torch.sum(weights * t_mid, dim=-2)


def termination_variance(
    weights: Float[Tensor, "*bs num_samples 1"],
    t_mid: Float[Tensor, "*bs num_samples 1"],
    center: Float[Tensor, "*bs 1"],
) -> Float[Tensor, "*bs 1"]:
    """Var(w) = sum_i w_i (t_i - D)^2: spread of the ray's termination distribution around ``center``.

    This is a geometric variance (units: distance squared): small when the weight sits in a thin shell at
    the surface, large when it is smeared along the ray. (The variance of the raw weight *values* across
    samples, which the seed code used, is not: it is maximal for a sharp surface and says nothing about
    where along the ray the weight is.)
    """
    return torch.sum(weights * (t_mid - center[..., None, :]) ** 2, dim=-2)


def weight_entropy(weights: Float[Tensor, "*bs num_samples 1"], eps: float = 1e-10) -> Float[Tensor, "*bs 1"]:
    """Shannon entropy (nats) of the normalised weights p_i = w_i / sum_j w_j; 0 for a single sharp sample."""
    p = normalised(weights, eps)
    return -torch.sum(p * torch.log(p + eps), dim=-2)


def soft_depth_loss(
    predicted_depth: Float[Tensor, "*bs 1"], gt_depth: Float[Tensor, "*bs 1"]
) -> Float[Tensor, "*bs 1"]:
    """(D_pred - D_gt)^2: the soft strategy's depth hint."""
    return (predicted_depth - gt_depth) ** 2


def free_space_loss(
    weights: Float[Tensor, "*bs num_samples 1"],
    bin_ends: Float[Tensor, "*bs num_samples 1"],
    free_until: Float[Tensor, "*bs 1"],
) -> Float[Tensor, "*bs 1"]:
    """L_free = sum of the weights of samples that end before ``free_until``.

    With contiguous bins from the near plane this is 1 - T(free_until): the probability that the ray stops in
    space known to be empty (in front of D_gt - eps on a surface ray; anywhere on a known-empty ray, where
    ``free_until`` is +inf). We penalise weight rather than raw density because weight is what rendering
    sees: the loss is bounded in [0, 1], does not grow with the number of samples that happen to land in free
    space, and leaves alone density hidden behind an earlier opaque surface, which changes no pixel.
    Samples that straddle ``free_until`` are not counted.
    """
    in_free_space = (bin_ends <= free_until[..., None, :]).to(weights.dtype)
    return torch.sum(weights * in_free_space, dim=-2)


def normalised(weights: Float[Tensor, "*bs num_samples 1"], eps: float = 1e-10) -> Float[Tensor, "*bs num_samples 1"]:
    """p_i = w_i / sum_j w_j: the ray's termination distribution given that it terminates."""
    return weights / (torch.sum(weights, dim=-2, keepdim=True) + eps)


def surface_loss(
    weights: Float[Tensor, "*bs num_samples 1"],
    t_mid: Float[Tensor, "*bs num_samples 1"],
    gt_depth: Float[Tensor, "*bs 1"],
    variance_mult: float,
) -> Float[Tensor, "*bs 1"]:
    """L_surf = |D_pred - D_gt| + variance_mult * Var(w): terminate at the surface, and sharply.

    D_pred = sum_i w_i t_i (unnormalised, as in the soft loss). Var(w) is the variance of the ray's termination
    distribution p = w / sum w around its mean: sum_i p_i (t_i - sum_j p_j t_j)^2. For an opaque ray
    (sum w = 1) this is sum_i w_i (t_i - D_pred)^2 exactly; for a ray that is still transparent, a variance
    around the unnormalised D_pred would be dominated by the missing opacity and its gradient would push the
    weights *down* whenever sum w < 1/3 (one sample of weight a at t: d/da a t^2 (1 - a)^2 > 0), fighting the
    depth term early in training. Normalised, the variance measures only how spread the surface is.
    """
    predicted = expected_termination(weights, t_mid)
    p = normalised(weights)
    spread = termination_variance(p, t_mid, expected_termination(p, t_mid))
    return torch.abs(predicted - gt_depth) + variance_mult * spread


def masked_mean(values: Float[Tensor, "*bs 1"], mask: Bool[Tensor, "*bs 1"]) -> Float[Tensor, ""]:
    """Mean of ``values`` over ``mask``; 0 (not NaN) when nothing is selected, with a zero gradient."""
    mask_f = mask.to(values.dtype)
    return torch.sum(torch.where(mask, values, torch.zeros_like(values))) / torch.clamp(mask_f.sum(), min=1.0)
