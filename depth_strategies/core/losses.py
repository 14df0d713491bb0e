"""Depth losses as pure functions over per-sample tensors.

Every loss function returns per-ray values (``[*bs, 1]``); :func:`assemble_depth_losses`, the one place that
chooses which rays count (a mask from the depth state of each pixel) and how levels are reduced, combines them
with :func:`masked_mean` and the lambdas of :class:`DepthLossWeights`. Distances are along the ray, all in one
unit: the model passes Blender units, so that no value depends on the dataparser's scale.

Notation: a ray has samples ``i`` with bin ``[s_i, e_i]``, midpoint ``t_i = (s_i + e_i) / 2`` and volume
rendering weight ``w_i = T_i (1 - exp(-sigma_i (e_i - s_i)))`` (Max 1995; Mildenhall et al. 2020, eq. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

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
    """L_surf = |D_pred - D_gt| + variance_mult * a * Var(p): terminate at the surface, and sharply.

    D_pred = sum_i w_i t_i (unnormalised, as in the soft loss). Var(p) is the variance of the ray's termination
    distribution p = w / a around its mean, a = sum w being the accumulation: sum_i p_i (t_i - sum_j p_j t_j)^2.
    For an opaque ray (a = 1) this is sum_i w_i (t_i - D_pred)^2 exactly. Two choices keep it well behaved on a ray
    that is still transparent:

    * normalised: a variance around the unnormalised D_pred would be dominated by the missing opacity, and its
      gradient would push the weights *down* whenever a < 1/3 (one sample of weight a at t:
      d/da a t^2 (1 - a)^2 > 0), fighting the depth term early in training;
    * weighted by the *detached* accumulation a: the gradient of Var(p) with respect to the weights grows as 1 / a
      (x 10^4 at a = 1e-4, on rays that have barely started to form a surface), while a * Var(p) has a gradient
      bounded by the spread of the samples; the factor has no gradient of its own, so it does not penalise opacity.
    """
    predicted = expected_termination(weights, t_mid)
    accumulation = torch.sum(weights, dim=-2)
    p = normalised(weights)
    spread = termination_variance(p, t_mid, expected_termination(p, t_mid))
    return torch.abs(predicted - gt_depth) + variance_mult * accumulation.detach() * spread


def masked_mean(values: Float[Tensor, "*bs 1"], mask: Bool[Tensor, "*bs 1"]) -> Float[Tensor, ""]:
    """Mean of ``values`` over ``mask``; 0 (not NaN) when nothing is selected, with a zero gradient."""
    mask_f = mask.to(values.dtype)
    return torch.sum(torch.where(mask, values, torch.zeros_like(values))) / torch.clamp(mask_f.sum(), min=1.0)


# ------------------------------------------------------------------------------------------ loss assembly
@dataclass(frozen=True)
class DepthLossWeights:
    """The lambda of each depth loss term (0 disables the term) and the constants the terms use.

    Every term is a mean over the rays it applies to (:func:`masked_mean`) and then a *mean over the sampling
    levels* given (nerfacto's proposal levels and the NeRF level, or the NeRF level alone), as nerfstudio's
    depth-nerfacto averages its DS-NeRF/URF loss over levels; so lambda is the weight of one level's mean loss.
    """

    soft: float = 0.0
    """lambda_soft of (D_pred - D_gt)^2 on surface rays."""
    hard: float = 0.0
    """lambda_hard of L_free (in front of D_gt - eps) and L_surf on surface rays."""
    empty: float = 0.0
    """lambda_empty of L_free on known-empty rays (alpha = 0, free all the way): mask supervision."""
    surface_variance: float = 1.0
    """The variance weight inside L_surf (:func:`surface_loss`), Blender units^-1."""
    half_width: float = 0.3
    """eps, the free-space margin in front of the surface, Blender units."""


def assemble_depth_losses(
    weights: Sequence[Float[Tensor, "*bs num_samples 1"]],
    bin_starts: Sequence[Float[Tensor, "*bs num_samples 1"]],
    bin_ends: Sequence[Float[Tensor, "*bs num_samples 1"]],
    gt_depth: Float[Tensor, "*bs 1"],
    surface: Bool[Tensor, "*bs 1"],
    empty: Bool[Tensor, "*bs 1"],
    lambdas: DepthLossWeights,
) -> Dict[str, Float[Tensor, ""]]:
    """The depth loss terms of one batch: ``{"soft_depth_loss", "free_space_loss", "surface_loss",
    "empty_space_loss"}``, each lambda x mean over levels of the mean over its rays; terms with lambda 0 are absent.

    One entry per sampling level in ``weights``, ``bin_starts`` and ``bin_ends``; distances and ``gt_depth`` in
    Blender units (the caller divides model units by the dataparser scale, so the values do not depend on it).
    ``surface``: rays with a known surface at ``gt_depth``; ``empty``: rays known to hit nothing (alpha = 0).
    """
    if not len(weights) == len(bin_starts) == len(bin_ends) > 0:
        raise ValueError("give weights, bin starts and bin ends for the same (non-zero) number of levels")
    t_mid = [(s + e) / 2 for s, e in zip(bin_starts, bin_ends)]
    free_until_surface = gt_depth - lambdas.half_width
    free_forever = torch.full_like(gt_depth, float("inf"))
    per_level: Dict[str, list] = {}

    def add(name: str, lam: float, values: Float[Tensor, "*bs 1"], rays: Bool[Tensor, "*bs 1"]) -> None:
        per_level.setdefault(name, []).append(lam * masked_mean(values, rays))

    for w, ends, mids in zip(weights, bin_ends, t_mid):
        if lambdas.soft > 0:
            add("soft_depth_loss", lambdas.soft, soft_depth_loss(expected_termination(w, mids), gt_depth), surface)
        if lambdas.hard > 0:
            add("free_space_loss", lambdas.hard, free_space_loss(w, ends, free_until_surface), surface)
            add("surface_loss", lambdas.hard, surface_loss(w, mids, gt_depth, lambdas.surface_variance), surface)
        if lambdas.empty > 0:
            add("empty_space_loss", lambdas.empty, free_space_loss(w, ends, free_forever), empty)
    return {name: torch.stack(terms).mean() for name, terms in per_level.items()}
