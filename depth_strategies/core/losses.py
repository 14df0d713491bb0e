"""Depth losses as pure functions over per-sample tensors.

Every loss function returns per-ray values (``[*bs, 1]``); :func:`assemble_depth_losses`, the one place that
chooses which rays count (a mask from the depth state of each pixel) and how levels are reduced, combines them
with :func:`masked_means` and the lambdas of :class:`DepthLossWeights`. Distances are along the ray, all in one
unit: the model passes Blender units, so that no value depends on the dataparser's scale.

The per-ray functions take any leading batch shape, so the assembly computes each loss on every sampling level at
once, over the levels stacked into one tensor (:func:`stack_levels`), and reduces every term in one
:func:`masked_means`: on a GPU a training step is bound by the number of kernels it launches, and a loop over
levels and terms launched each op once per level and term. ``tests/core/test_losses.py`` keeps the loop over levels
and terms as the reference and checks that both give the same values and gradients.

Notation: a ray has samples ``i`` with bin ``[s_i, e_i]``, midpoint ``t_i = (s_i + e_i) / 2`` and volume
rendering weight ``w_i = T_i (1 - exp(-sigma_i (e_i - s_i)))`` (Max 1995; Mildenhall et al. 2020, eq. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

Penalty = Literal["l2", "huber", "cauchy"]
"""How a depth residual r is penalised (:func:`robust_penalty`)."""


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
    samples is not: it is maximal for a sharp surface and says nothing about where along the ray the weight is;
    docs/decisions.md, "The surface loss".)
    """
    return torch.sum(weights * (t_mid - center[..., None, :]) ** 2, dim=-2)


def weight_entropy(weights: Float[Tensor, "*bs num_samples 1"], eps: float = 1e-10) -> Float[Tensor, "*bs 1"]:
    """Shannon entropy (nats) of the normalised weights p_i = w_i / sum_j w_j; 0 for a single sharp sample."""
    p = normalised(weights, eps)
    return -torch.sum(p * torch.log(p + eps), dim=-2)


def robust_penalty(residual: Float[Tensor, "*bs 1"], penalty: Penalty, scale: float) -> Float[Tensor, "*bs 1"]:
    """rho(r), equal to r^2 for small |r| whatever the penalty, so that one lambda means the same for all three.

    * "l2": r^2;
    * "huber": r^2 for |r| <= delta, 2 delta |r| - delta^2 beyond (Huber 1964, times 2 delta): the gradient is
      bounded by 2 delta, so an outlier pulls no harder than a residual of delta;
    * "cauchy": delta^2 log(1 + r^2 / delta^2) (the Cauchy / Lorentzian penalty; Black & Anandan 1996; Barron 2019,
      alpha = 0): the gradient 2 r / (1 + r^2 / delta^2) peaks at |r| = delta and vanishes for outliers.

    ``scale`` is delta, in the unit of r.
    """
    if penalty == "l2":
        return residual**2
    if scale <= 0:
        raise ValueError(f"the {penalty} penalty needs a scale > 0, got {scale}")
    if penalty == "huber":
        magnitude = residual.abs()
        return torch.where(magnitude <= scale, residual**2, 2 * scale * magnitude - scale**2)
    if penalty == "cauchy":
        return scale**2 * torch.log1p((residual / scale) ** 2)
    raise ValueError(f"unknown penalty {penalty!r}; use l2, huber or cauchy")


def soft_depth_loss(
    predicted_depth: Float[Tensor, "*bs 1"],
    gt_depth: Float[Tensor, "*bs 1"],
    penalty: Penalty = "l2",
    scale: float = 0.0,
) -> Float[Tensor, "*bs 1"]:
    """rho(D_pred - D_gt) (:func:`robust_penalty`; (D_pred - D_gt)^2 by default): the soft strategy's depth hint."""
    return robust_penalty(predicted_depth - gt_depth, penalty, scale)


def window_half_width(
    sigma: Float[Tensor, "*bs 1"], min_half_width: float, sigma_mult: float
) -> Float[Tensor, "*bs 1"]:
    """eps = max(eps_min, k sigma): the guided window and free-space margin of a ray whose depth has standard
    deviation sigma (k = 3 covers 99.7 % of Gaussian errors)."""
    return torch.clamp(sigma * sigma_mult, min=min_half_width)


def combined_sigma(
    reported: Optional[Float[Tensor, "*bs 1"]], consistency: Float[Tensor, "*bs 1"]
) -> Float[Tensor, "*bs 1"]:
    """max(sigma_reported, sigma_consistency): a ray's depth is at least as uncertain as its image disagrees with
    the other views (:mod:`depth_strategies.core.consistency`); the maximum, not the sum in quadrature, because the
    disagreement of noisy depth already contains the noise the sensor reports. No reported sigma: the consistency's."""
    return consistency if reported is None else torch.maximum(reported, consistency)


def uncertainty_weight(half_width: Float[Tensor, "*bs 1"], min_half_width: float) -> Float[Tensor, "*bs 1"]:
    """(eps_min / eps)^2: a ray's depth losses are down-weighted like a Gaussian likelihood, 1 / sigma^2, relative to
    a ray whose window is the narrowest one; 1 for every ray when no sigma exceeds eps_min / k."""
    return (min_half_width / half_width) ** 2


def trusted_depth(half_width: Float[Tensor, "*bs 1"], max_half_width: float) -> Bool[Tensor, "*bs 1"]:
    """Whether a ray's depth is still worth using: its window eps = max(eps_min, k sigma) is at most
    ``max_half_width`` (same units). Beyond it the depth no longer says where the surface is closely enough for a
    guided window or a depth loss to help, so the caller treats it as unknown (the RGB-only baseline's treatment of
    that ray). Every ray is trusted when ``max_half_width`` <= 0."""
    if max_half_width <= 0:
        return torch.ones_like(half_width, dtype=torch.bool)
    return half_width <= max_half_width


def image_trust_share(
    trusted: Bool[Tensor, "*bs 1"], with_depth: Bool[Tensor, "*bs 1"], image: Int[Tensor, "*bs 1"], num_images: int
) -> Float[Tensor, "*bs 1"]:
    """Per ray: the share of the batch's rays *of its image* that have depth (``with_depth``) whose depth is also
    ``trusted`` (:func:`trusted_depth`); 1 where the batch holds no ray with depth of that image (nothing says its
    depth is bad: sparse depth, holes). An image whose depth is trusted nowhere gets 0. ``image``: each ray's image
    index, below ``num_images``."""
    flat_image = image.reshape(-1).long()
    counted = torch.zeros(num_images, dtype=torch.float32, device=image.device)
    with_depth_count = counted.index_add(0, flat_image, with_depth.reshape(-1).float())
    trusted_count = counted.index_add(0, flat_image, (trusted & with_depth).reshape(-1).float())
    share = torch.where(with_depth_count > 0, trusted_count / with_depth_count.clamp(min=1.0),
                        torch.ones_like(with_depth_count))
    return share[flat_image].reshape(image.shape)


def least_squares_scale_shift(
    predicted: Float[Tensor, "num_rays 1"],
    given: Float[Tensor, "num_rays 1"],
    mask: Bool[Tensor, "num_rays 1"],
    group: Int[Tensor, "num_rays 1"],
    num_groups: int,
    min_rays: int = 8,
    min_scale: float = 1e-3,
) -> Tuple[Float[Tensor, "num_groups"], Float[Tensor, "num_groups"], Int[Tensor, "num_groups"]]:  # noqa: F821
    """Per group (image), the (s, t) minimising sum over masked rays of (s given + t - predicted)^2.

    The closed form of simple linear regression: s = cov(given, predicted) / var(given), t = mean(predicted) -
    s mean(given); the scale- and shift-invariant depth loss of monocular depth (Ranftl et al. 2020, MiDaS, eq. 4,
    in depth rather than disparity) compares ``predicted`` with ``s given + t``. Groups with fewer than ``min_rays``
    masked rays, or whose given depth does not vary, get (1, 0); s is clamped to ``min_scale`` from below (a
    negative or zero scale would turn the depth inside out). No gradient: the caller detaches ``predicted``.
    The direct fit of one batch, centred: the reference that :func:`scale_shift_from_moments` (what the model fits
    from statistics accumulated over batches) is tested against.

    Returns:
        (scale, shift, count) per group.
    """
    with torch.no_grad():
        m = mask.to(given.dtype)[..., 0]
        x, y, g = given[..., 0] * m, predicted[..., 0] * m, group[..., 0].long()

        def sums(v: Tensor) -> Tensor:
            return torch.zeros(num_groups, dtype=given.dtype, device=given.device).index_add_(0, g, v)

        n = sums(m)
        mean_x, mean_y = sums(x) / torch.clamp(n, min=1.0), sums(y) / torch.clamp(n, min=1.0)
        dx, dy = (given[..., 0] - mean_x[g]) * m, (predicted[..., 0] - mean_y[g]) * m  # centred: no cancellation
        var, cov = sums(dx * dx), sums(dx * dy)
        usable = (n >= min_rays) & (var > 1e-12 * torch.clamp(n, min=1.0))
        scale = torch.where(usable, cov / torch.where(usable, var, torch.ones_like(var)), 1.0)
        scale = torch.clamp(scale, min=min_scale)
        shift = torch.where(usable, mean_y - scale * mean_x, 0.0)
        return scale, shift, n.long()


ALIGNMENT_MOMENTS = 5
"""Per group: n, sum x, sum y, sum x^2, sum x y (:func:`alignment_moments`)."""


def alignment_moments(
    predicted: Float[Tensor, "num_rays 1"],
    given: Float[Tensor, "num_rays 1"],
    mask: Bool[Tensor, "num_rays 1"],
    group: Int[Tensor, "num_rays 1"],
    num_groups: int,
) -> Float[Tensor, "num_groups 5"]:  # noqa: F821
    """Per group (image), the sufficient statistics of the least-squares fit of ``predicted`` by s ``given`` + t
    over the masked rays: (n, sum x, sum y, sum x^2, sum x y), x = given, y = predicted, in float64 (the variance
    sum x^2 - (sum x)^2 / n cancels in float32). Statistics of several batches add up, so an image with a few rays
    per batch still gets a fit (:func:`scale_shift_from_moments`). No gradient."""
    with torch.no_grad():
        m = mask[..., 0].to(torch.float64)
        x, y = given[..., 0].to(torch.float64) * m, predicted[..., 0].to(torch.float64) * m
        columns = torch.stack([m, x, y, x * x, x * y], dim=-1)
        out = torch.zeros(num_groups, ALIGNMENT_MOMENTS, dtype=torch.float64, device=given.device)
        return out.index_add_(0, group[..., 0].long(), columns)


def scale_shift_from_moments(
    moments: Float[Tensor, "num_groups 5"],  # noqa: F821
    min_rays: int = 8,
    min_scale: float = 1e-3,
) -> Tuple[Float[Tensor, "num_groups"], Float[Tensor, "num_groups"], Bool[Tensor, "num_groups"]]:  # noqa: F821
    """Per group, the (s, t) of :func:`least_squares_scale_shift` from its :func:`alignment_moments`:
    s = (sum xy - sum x sum y / n) / (sum x^2 - (sum x)^2 / n), t = (sum y - s sum x) / n, and whether the fit
    exists (n >= ``min_rays`` and x varies); groups without one get (1, 0). s is clamped to ``min_scale`` from
    below. Returned in float32."""
    n, sx, sy, sxx, sxy = moments.unbind(-1)
    safe_n = torch.clamp(n, min=1.0)
    var = sxx - sx * sx / safe_n
    cov = sxy - sx * sy / safe_n
    usable = (n >= min_rays) & (var > 1e-12 * safe_n)
    scale = torch.clamp(torch.where(usable, cov / torch.where(usable, var, torch.ones_like(var)), 1.0), min=min_scale)
    shift = torch.where(usable, (sy - scale * sx) / safe_n, 0.0)
    return scale.float(), shift.float(), usable


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


def masked_means(values: Float[Tensor, "*bs num_terms"], mask: Bool[Tensor, "*mask_bs num_terms"]) -> Float[
        Tensor, " num_terms"]:
    """Per term (the last dim): the mean of its ``values`` over ``mask``, 0 (not NaN) when nothing is selected, with
    a zero gradient; :func:`masked_mean` of every column in one reduction. ``mask`` broadcasts against ``values``:
    a per-ray mask ``[num_rays, num_terms]`` against per-level values ``[num_levels, num_rays, num_terms]`` selects
    the same rays on every level, so the mean over the selected (level, ray) pairs is the mean over levels of each
    level's :func:`masked_mean`."""
    mask = mask.expand_as(values)
    dims = tuple(range(values.dim() - 1))
    total = torch.sum(torch.where(mask, values, 0.0), dim=dims)
    return total / torch.clamp(torch.sum(mask, dim=dims, dtype=values.dtype), min=1.0)


def stack_levels(
    per_level: Sequence[Float[Tensor, "*bs _ 1"]],
) -> Float[Tensor, "num_levels *bs max_samples 1"]:
    """The sampling levels' per-sample tensors (weights, bin starts or ends; levels may differ in their number of
    samples) as one tensor, each level padded at its far end with zeros up to the largest level's sample count.

    Every loss of this module is a sum over samples of terms that carry the sample's weight w_i as a factor
    (:func:`expected_termination`, :func:`termination_variance` of the normalised weights, :func:`free_space_loss`),
    so a padded sample (w = 0, finite distances) changes no loss value and no gradient: one op then computes a loss
    on every level.
    """
    most = max(t.shape[-2] for t in per_level)
    return torch.stack([t if t.shape[-2] == most else F.pad(t, (0, 0, 0, most - t.shape[-2])) for t in per_level])


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
    """eps, the free-space margin in front of the surface, Blender units (the narrowest, when rays have their own)."""
    penalty: Penalty = "l2"
    """How the soft term penalises the depth residual (:func:`robust_penalty`)."""
    penalty_scale: float = 0.1
    """delta of the huber and cauchy penalties, Blender units."""


LevelSamples = Union[Sequence[Float[Tensor, "*bs _ 1"]], Float[Tensor, "num_levels *bs num_samples 1"]]
"""Per-sample values of every sampling level: one tensor per level, or the levels stacked by :func:`stack_levels`."""


def assemble_depth_losses(
    weights: LevelSamples,
    bin_starts: LevelSamples,
    bin_ends: LevelSamples,
    gt_depth: Float[Tensor, "*bs 1"],
    surface: Bool[Tensor, "*bs 1"],
    empty: Bool[Tensor, "*bs 1"],
    lambdas: DepthLossWeights,
    half_width: Optional[Float[Tensor, "*bs 1"]] = None,
    ray_weights: Optional[Float[Tensor, "*bs 1"]] = None,
    soft_gt_depth: Optional[Float[Tensor, "*bs 1"]] = None,
    hard_surface: Optional[Bool[Tensor, "*bs 1"]] = None,
    empty_weights: Optional[Float[Tensor, "*bs 1"]] = None,
    soft_surface: Optional[Bool[Tensor, "*bs 1"]] = None,
) -> Dict[str, Float[Tensor, ""]]:
    """The depth loss terms of one batch: ``{"soft_depth_loss", "free_space_loss", "surface_loss",
    "empty_space_loss"}``, each lambda x mean over levels of the mean over its rays; terms with lambda 0 are absent.

    One entry per sampling level in ``weights``, ``bin_starts`` and ``bin_ends`` (a sequence of per-level tensors,
    or one tensor of the levels stacked by :func:`stack_levels`); distances and ``gt_depth`` in Blender units (the
    caller divides model units by the dataparser scale, so the values do not depend on it).
    ``surface``: rays with a known surface at ``gt_depth``; ``empty``: rays known to hit nothing (alpha = 0); no ray
    is both (each has one depth state).

    Optional, per ray: ``half_width`` (eps of each ray instead of ``lambdas.half_width``: the uncertainty-aware
    margin, :func:`window_half_width`), ``ray_weights`` (multiplying each surface ray's soft, free-space and surface
    values: :func:`uncertainty_weight`), ``soft_gt_depth`` (the depth the soft term compares with, e.g. aligned
    by :func:`scale_shift_from_moments`), ``soft_surface`` and ``hard_surface`` (the surface rays of the soft term
    and of the free-space and surface terms, default ``surface``: e.g. the rays whose image has an alignment) and
    ``empty_weights`` (multiplying each empty ray's mask value: :func:`image_trust_share`).
    The mean over rays always divides by the number of rays selected, so a weight of 1 on
    every ray gives the unweighted loss.

    Every level is computed at once, on the levels stacked into one tensor, and every term is reduced in one
    :func:`masked_means` (the same values and gradients as a loop over levels and terms, which the tests keep as
    the reference). L_free is computed once for the free-space and the mask terms: up to D_gt - eps on a surface
    ray, all the way (+inf) on a known-empty ray; each term then selects its own rays.
    """
    if isinstance(weights, Tensor) or isinstance(bin_starts, Tensor) or isinstance(bin_ends, Tensor):
        if not (isinstance(weights, Tensor) and isinstance(bin_starts, Tensor) and isinstance(bin_ends, Tensor)):
            raise ValueError("give weights, bin starts and bin ends all stacked or all as one tensor per level")
        w, starts, ends = weights, bin_starts, bin_ends
    else:
        if not len(weights) == len(bin_starts) == len(bin_ends) > 0:
            raise ValueError("give weights, bin starts and bin ends for the same (non-zero) number of levels")
        w, starts, ends = stack_levels(weights), stack_levels(bin_starts), stack_levels(bin_ends)
    t_mid = (starts + ends) / 2
    soft_gt = gt_depth if soft_gt_depth is None else soft_gt_depth
    hard_rays = surface if hard_surface is None else hard_surface
    soft_rays = surface if soft_surface is None else soft_surface
    terms: List[Tuple[str, float, Float[Tensor, "num_levels *bs 1"], Bool[Tensor, "*bs 1"]]] = []

    def weighted(values: Tensor, per_ray: Optional[Tensor]) -> Tensor:
        return values if per_ray is None else values * per_ray

    if lambdas.soft > 0:
        soft = soft_depth_loss(expected_termination(w, t_mid), soft_gt, lambdas.penalty, lambdas.penalty_scale)
        terms.append(("soft_depth_loss", lambdas.soft, weighted(soft, ray_weights), soft_rays))
    if lambdas.hard > 0 or lambdas.empty > 0:
        # one L_free serves both terms: up to D_gt - eps on a surface ray, all the way on a known-empty ray
        if lambdas.hard > 0:
            free_until = gt_depth - (lambdas.half_width if half_width is None else half_width)
            if lambdas.empty > 0:
                free_until = torch.where(empty, float("inf"), free_until)
        else:
            free_until = torch.full_like(gt_depth, float("inf"))
        free = free_space_loss(w, ends, free_until)
    if lambdas.hard > 0:
        terms.append(("free_space_loss", lambdas.hard, weighted(free, ray_weights), hard_rays))
        surf = surface_loss(w, t_mid, gt_depth, lambdas.surface_variance)
        terms.append(("surface_loss", lambdas.hard, weighted(surf, ray_weights), hard_rays))
    if lambdas.empty > 0:
        terms.append(("empty_space_loss", lambdas.empty, weighted(free, empty_weights), empty))
    if not terms:
        return {}
    means = masked_means(torch.cat([values for _, _, values, _ in terms], dim=-1),
                         torch.cat([rays for _, _, _, rays in terms], dim=-1))
    return {name: lam * mean for (name, lam, _, _), mean in zip(terms, means.unbind())}
