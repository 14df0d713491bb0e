"""Depth losses on 1-3 rays with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from depth_strategies.core import losses


def col(*values: float) -> torch.Tensor:
    """One ray's per-sample values as [1, num_samples, 1]."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, -1, 1)


def weights_from_density(density: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """w_i = T_i (1 - exp(-sigma_i delta_i)), T_i = exp(-sum_{j<i} sigma_j delta_j) (volume rendering)."""
    tau = density * (ends - starts)
    transmittance = torch.exp(-torch.cumsum(torch.cat([torch.zeros_like(tau[..., :1, :]), tau[..., :-1, :]], -2), -2))
    return transmittance * (1 - torch.exp(-tau))


def test_expected_termination_is_weighted_sum_of_midpoints():
    assert_close(
        losses.expected_termination(col(0.2, 0.5, 0.3), col(1, 2, 3)),
        torch.tensor([[0.2 * 1 + 0.5 * 2 + 0.3 * 3]], dtype=torch.float64),
    )


def test_expected_termination_is_unnormalised_for_transparent_rays():
    assert_close(
        losses.expected_termination(col(0.25, 0.25), col(2, 4)),
        torch.tensor([[0.25 * 2 + 0.25 * 4]], dtype=torch.float64),
    )


def test_termination_variance_is_geometric_spread_around_center():
    d = 0.2 * 1 + 0.5 * 2 + 0.3 * 3  # 2.1
    expected = 0.2 * (1 - d) ** 2 + 0.5 * (2 - d) ** 2 + 0.3 * (3 - d) ** 2
    got = losses.termination_variance(col(0.2, 0.5, 0.3), col(1, 2, 3), torch.tensor([[d]], dtype=torch.float64))
    assert_close(got, torch.tensor([[expected]], dtype=torch.float64))


def test_termination_variance_is_zero_for_a_single_sharp_sample():
    got = losses.termination_variance(col(0, 1, 0), col(1, 2, 3), torch.tensor([[2.0]], dtype=torch.float64))
    assert_close(got, torch.zeros(1, 1, dtype=torch.float64))


def test_weight_entropy_is_log_n_for_uniform_and_zero_for_one_sample():
    assert_close(losses.weight_entropy(col(0.25, 0.25, 0.25, 0.25)), torch.tensor([[math.log(4)]], dtype=torch.float64))
    assert_close(losses.weight_entropy(col(0, 0, 1, 0)), torch.zeros(1, 1, dtype=torch.float64), atol=1e-8, rtol=0)


def test_soft_loss_is_zero_when_depth_is_perfect_and_squared_error_otherwise():
    assert_close(losses.soft_depth_loss(torch.tensor([[2.0]]), torch.tensor([[2.0]])), torch.zeros(1, 1))
    assert_close(
        losses.soft_depth_loss(torch.tensor([[2.5], [1.0]]), torch.tensor([[2.0], [3.0]])),
        torch.tensor([[0.25], [4.0]]),
    )


def test_free_space_loss_sums_weights_ending_before_the_margin():
    # bins [0,1],[1,2],[2,3],[3,4]; free until 2.5 -> the first two bins: 0.1 + 0.2
    got = losses.free_space_loss(col(0.1, 0.2, 0.3, 0.4), col(1, 2, 3, 4), torch.tensor([[2.5]], dtype=torch.float64))
    assert_close(got, torch.tensor([[0.1 + 0.2]], dtype=torch.float64))


def test_free_space_loss_is_zero_when_density_is_behind_surface():
    got = losses.free_space_loss(col(0, 0, 0.6, 0.4), col(1, 2, 3, 4), torch.tensor([[2.5]], dtype=torch.float64))
    assert_close(got, torch.zeros(1, 1, dtype=torch.float64))


def test_free_space_loss_on_known_empty_ray_is_its_accumulation():
    got = losses.free_space_loss(col(0.1, 0.2, 0.3), col(1, 2, 3), torch.tensor([[math.inf]], dtype=torch.float64))
    assert_close(got, torch.tensor([[0.1 + 0.2 + 0.3]], dtype=torch.float64))


def test_free_space_loss_ignores_the_sample_straddling_the_margin():
    got = losses.free_space_loss(col(0.5, 0.5), col(2, 3), torch.tensor([[2.5]], dtype=torch.float64))
    assert_close(got, torch.tensor([[0.5]], dtype=torch.float64))


def test_surface_loss_is_zero_for_a_sharp_surface_at_the_true_depth():
    got = losses.surface_loss(col(0, 1, 0), col(1, 2, 3), torch.tensor([[2.0]], dtype=torch.float64), variance_mult=1.0)
    assert_close(got, torch.zeros(1, 1, dtype=torch.float64))


def test_surface_loss_adds_l1_and_weighted_variance():
    d = 0.5 * 1 + 0.5 * 3  # 2.0
    var = 0.5 * (1 - d) ** 2 + 0.5 * (3 - d) ** 2  # 1.0
    got = losses.surface_loss(col(0.5, 0.5), col(1, 3), torch.tensor([[2.5]], dtype=torch.float64), variance_mult=0.1)
    assert_close(got, torch.tensor([[abs(d - 2.5) + 0.1 * var]], dtype=torch.float64))


def test_masked_mean_averages_only_selected_rays():
    values = torch.tensor([[1.0], [3.0], [100.0]])
    mask = torch.tensor([[True], [True], [False]])
    assert_close(losses.masked_mean(values, mask), torch.tensor((1.0 + 3.0) / 2))


def test_masked_mean_all_masked_gives_zero_not_nan():
    values = torch.tensor([[float("nan")], [float("inf")]], requires_grad=True)
    out = losses.masked_mean(values, torch.zeros(2, 1, dtype=torch.bool))
    out.backward()
    assert out.item() == 0.0
    assert torch.equal(values.grad, torch.zeros(2, 1))


# -------------------------------------------------------------------- gradients move the surface
STARTS = torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0], dtype=torch.float64).reshape(1, 5, 1)
ENDS = STARTS + 0.5
MIDS = (STARTS + ENDS) / 2  # 1.25, 1.75, 2.25, 2.75, 3.25


def _descend(loss_fn, density0, steps=20, lr=0.5):
    density = density0.clone().requires_grad_(True)
    for _ in range(steps):
        loss = loss_fn(weights_from_density(density, STARTS, ENDS)).sum()
        (grad,) = torch.autograd.grad(loss, density)
        with torch.no_grad():
            density -= lr * grad
            density.clamp_(min=0)
    return density.detach()


@pytest.mark.parametrize("gt", [1.75, 3.25])
def test_soft_loss_gradient_moves_expected_depth_toward_the_surface(gt):
    density0 = torch.full((1, 5, 1), 1.0, dtype=torch.float64)
    gt_t = torch.tensor([[gt]], dtype=torch.float64)

    def loss_fn(w):
        return losses.soft_depth_loss(losses.expected_termination(w, MIDS), gt_t)

    before = loss_fn(weights_from_density(density0, STARTS, ENDS)).item()
    after = loss_fn(weights_from_density(_descend(loss_fn, density0), STARTS, ENDS)).item()
    assert after < 0.5 * before


@pytest.mark.parametrize("gt", [1.75, 3.25])
def test_surface_loss_gradient_moves_expected_depth_toward_the_surface(gt):
    density0 = torch.full((1, 5, 1), 1.0, dtype=torch.float64)
    gt_t = torch.tensor([[gt]], dtype=torch.float64)

    def loss_fn(w):
        return losses.surface_loss(w, MIDS, gt_t, variance_mult=1.0)

    d0 = losses.expected_termination(weights_from_density(density0, STARTS, ENDS), MIDS).item()
    d1 = losses.expected_termination(weights_from_density(_descend(loss_fn, density0), STARTS, ENDS), MIDS).item()
    assert abs(d1 - gt) < abs(d0 - gt)


def test_free_space_loss_gradient_lowers_density_only_in_front_of_the_surface():
    density = torch.full((1, 5, 1), 1.0, dtype=torch.float64, requires_grad=True)
    # surface at 3.25 with eps 0.25: free until 3.0 -> bins ending at 1.5, 2.0, 2.5, 3.0 are free
    loss = losses.free_space_loss(
        weights_from_density(density, STARTS, ENDS), ENDS, torch.tensor([[3.0]], dtype=torch.float64)
    )
    (grad,) = torch.autograd.grad(loss.sum(), density)
    assert (grad[0, :4, 0] > 0).all(), "gradient descent must lower density in free space"
    assert grad[0, 4, 0] == 0, "the sample at the surface is not penalised"


def test_surface_variance_is_of_the_normalised_distribution_so_opacity_is_not_penalised():
    # one sample of weight a at t = 4: the distribution is a point mass, whatever a is
    for a in (0.1, 0.5, 1.0):
        got = losses.surface_loss(col(a), col(4.0), torch.tensor([[4.0]], dtype=torch.float64), variance_mult=10.0)
        assert_close(got, torch.tensor([[abs(a * 4.0 - 4.0)]], dtype=torch.float64))
    # half-transparent two-sample ray: p = (0.5, 0.5) at t = 1, 3 -> mean 2, variance 1, weighted by a = 0.5
    got = losses.surface_loss(col(0.25, 0.25), col(1, 3), torch.tensor([[1.0]], dtype=torch.float64), variance_mult=1.0)
    assert_close(got, torch.tensor([[abs(0.25 * 1 + 0.25 * 3 - 1.0) + 0.5 * 1.0]], dtype=torch.float64))


def test_surface_variance_gradient_stays_bounded_as_the_ray_becomes_transparent():
    """Var(p) alone has a gradient of order 1 / a; weighted by the detached accumulation a it stays bounded."""
    t = col(1.0, 2.0, 3.0)
    norms = []
    for accumulation in (1.0, 1e-2, 1e-4, 1e-6):
        w = (col(0.2, 0.5, 0.3) * accumulation).requires_grad_(True)
        variance_only = losses.surface_loss(w, t, torch.tensor([[0.0]], dtype=torch.float64), variance_mult=1.0)
        variance_only = variance_only - losses.expected_termination(w, t).abs()  # drop the depth term
        (grad,) = torch.autograd.grad(variance_only.sum(), w)
        norms.append(grad.norm().item())
    assert max(norms) < 2 * norms[0]  # unweighted, the norm at a = 1e-6 would be 10^6 times that at a = 1
    assert norms[0] > 0


# ------------------------------------------------------------------------------------ loss assembly
# A batch of 3 rays (a surface at 2.0, a known-empty ray, an unknown ray) and 2 sampling levels.
SURFACE = torch.tensor([[True], [False], [False]])
EMPTY = torch.tensor([[False], [True], [False]])
GT = torch.tensor([[2.0], [0.0], [0.0]], dtype=torch.float64)
LEVEL0_STARTS = torch.tensor([1.0, 1.5, 2.0, 2.5], dtype=torch.float64).reshape(1, 4, 1).expand(3, 4, 1)
LEVEL1_STARTS = torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(1, 2, 1).expand(3, 2, 1)
LEVEL0_W = torch.tensor([[0.1, 0.2, 0.6, 0.0], [0.0, 0.3, 0.0, 0.1], [0.5, 0.5, 0.0, 0.0]],
                        dtype=torch.float64).unsqueeze(-1)
LEVEL1_W = torch.tensor([[0.4, 0.4], [0.2, 0.0], [1.0, 0.0]], dtype=torch.float64).unsqueeze(-1)
LAMBDAS = losses.DepthLossWeights(soft=0.5, hard=0.25, empty=2.0, surface_variance=0.1, half_width=0.3)


def assemble(lambdas=LAMBDAS):
    return losses.assemble_depth_losses(
        weights=[LEVEL0_W, LEVEL1_W],
        bin_starts=[LEVEL0_STARTS, LEVEL1_STARTS],
        bin_ends=[LEVEL0_STARTS + 0.5, LEVEL1_STARTS + 1.0],
        gt_depth=GT,
        surface=SURFACE,
        empty=EMPTY,
        lambdas=lambdas,
    )


def test_assembled_terms_have_their_hand_computed_values():
    # level 0, surface ray: midpoints 1.25 1.75 2.25 2.75, D = 1.825, free until 2.0 - 0.3 = 1.7 (one bin)
    d0 = 0.1 * 1.25 + 0.2 * 1.75 + 0.6 * 2.25
    p0, mids0 = [1 / 9, 2 / 9, 6 / 9], [1.25, 1.75, 2.25]
    m0 = sum(p * t for p, t in zip(p0, mids0))
    var0 = sum(p * (t - m0) ** 2 for p, t in zip(p0, mids0))
    # level 1, surface ray: midpoints 1.5 2.5, D = 1.6, nothing ends before 1.7, p = (.5, .5), Var 0.25, a = 0.8
    d1 = 0.4 * 1.5 + 0.4 * 2.5
    expected = {
        "soft_depth_loss": 0.5 * ((d0 - 2.0) ** 2 + (d1 - 2.0) ** 2) / 2,
        "free_space_loss": 0.25 * (0.1 + 0.0) / 2,
        "surface_loss": 0.25 * ((abs(d0 - 2.0) + 0.1 * 0.9 * var0) + (abs(d1 - 2.0) + 0.1 * 0.8 * 0.25)) / 2,
        "empty_space_loss": 2.0 * ((0.3 + 0.1) + 0.2) / 2,  # the empty ray's accumulation on each level
    }
    got = assemble()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert_close(got[name], torch.tensor(value, dtype=torch.float64), msg=name)


def test_the_unknown_ray_counts_in_no_term():
    changed = LEVEL0_W.clone()
    changed[2] = torch.tensor([0.0, 0.0, 0.9, 0.1], dtype=torch.float64).unsqueeze(-1)
    before = assemble()
    after = losses.assemble_depth_losses([changed, LEVEL1_W], [LEVEL0_STARTS, LEVEL1_STARTS],
                                         [LEVEL0_STARTS + 0.5, LEVEL1_STARTS + 1.0], GT, SURFACE, EMPTY, LAMBDAS)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_zero_lambda_removes_its_term_and_a_lambda_scales_only_its_own():
    assert set(assemble(losses.DepthLossWeights(soft=0.5))) == {"soft_depth_loss"}
    assert set(assemble(losses.DepthLossWeights(empty=1.0))) == {"empty_space_loss"}
    assert set(assemble(losses.DepthLossWeights(hard=1.0))) == {"free_space_loss", "surface_loss"}
    doubled = assemble(losses.DepthLossWeights(soft=1.0, hard=0.25, empty=2.0, surface_variance=0.1, half_width=0.3))
    base = assemble()
    assert_close(doubled["soft_depth_loss"], 2 * base["soft_depth_loss"])
    assert torch.equal(doubled["surface_loss"], base["surface_loss"])


def test_levels_are_averaged_not_summed():
    one = losses.assemble_depth_losses([LEVEL1_W], [LEVEL1_STARTS], [LEVEL1_STARTS + 1.0], GT, SURFACE, EMPTY, LAMBDAS)
    two = losses.assemble_depth_losses([LEVEL1_W, LEVEL1_W], [LEVEL1_STARTS] * 2, [LEVEL1_STARTS + 1.0] * 2, GT,
                                       SURFACE, EMPTY, LAMBDAS)
    for name in one:
        assert_close(one[name], two[name])


def test_mismatched_levels_are_refused():
    with pytest.raises(ValueError, match="same"):
        losses.assemble_depth_losses([LEVEL0_W], [], [], GT, SURFACE, EMPTY, LAMBDAS)


def test_normalised_weights_sum_to_one_and_all_zero_weights_stay_finite():
    assert_close(losses.normalised(col(0.2, 0.6)).sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.isfinite(losses.normalised(col(0.0, 0.0))).all()


# ------------------------------------------------------------------------------------ depth as users have it
def test_robust_penalties_have_their_hand_computed_values_and_equal_l2_for_small_residuals():
    r = col(0.0, 0.05, -0.2, 1.0)
    assert_close(losses.robust_penalty(r, "l2", 0.0), r**2)
    # huber, delta 0.1: r^2 inside, 2 * 0.1 * |r| - 0.01 outside
    assert_close(losses.robust_penalty(r, "huber", 0.1), col(0.0, 0.0025, 0.03, 0.19))
    # cauchy, delta 0.1: 0.01 * log(1 + r^2 / 0.01)
    assert_close(losses.robust_penalty(r, "cauchy", 0.1),
                 col(0.0, 0.01 * math.log(1.25), 0.01 * math.log(5.0), 0.01 * math.log(101.0)))
    small = col(1e-4)
    for penalty in ("huber", "cauchy"):
        assert_close(losses.robust_penalty(small, penalty, 0.1), small**2, rtol=1e-6, atol=0)


def test_robust_penalties_bound_the_pull_of_an_outlier():
    r = col(0.05, 3.0).requires_grad_(True)
    grads = {}
    for penalty in ("l2", "huber", "cauchy"):
        (grads[penalty],) = torch.autograd.grad(losses.robust_penalty(r, penalty, 0.1).sum(), r)
    assert_close(grads["l2"], col(0.1, 6.0))
    assert_close(grads["huber"], col(0.1, 0.2))  # 2 delta beyond delta
    cauchy = grads["cauchy"].flatten()
    assert cauchy[1].item() < 0.01 < cauchy[0].item()  # an outlier pulls almost nothing


def test_robust_penalty_refuses_a_missing_scale_and_an_unknown_name():
    with pytest.raises(ValueError, match="scale > 0"):
        losses.robust_penalty(col(1.0), "huber", 0.0)
    with pytest.raises(ValueError, match="l2, huber or cauchy"):
        losses.robust_penalty(col(1.0), "tukey", 0.1)


def test_the_uncertainty_aware_window_is_the_minimum_until_k_sigma_exceeds_it_and_weights_fall_as_its_square():
    sigma = col(0.0, 0.05, 0.2, 1.0)
    eps = losses.window_half_width(sigma, min_half_width=0.3, sigma_mult=3.0)
    assert_close(eps, col(0.3, 0.3, 0.6, 3.0))
    assert_close(losses.uncertainty_weight(eps, 0.3), col(1.0, 1.0, 0.25, 0.01))


def test_trusted_depth_keeps_windows_up_to_the_limit_and_every_window_without_one():
    eps = col(0.3, 0.6, 0.61, 3.0)
    assert losses.trusted_depth(eps, 0.6).flatten().tolist() == [True, True, False, False]
    assert losses.trusted_depth(eps, 0.0).all()


def test_an_images_trust_share_counts_only_its_own_rays_with_depth_and_is_one_without_any():
    # image 0: 3 rays with depth, 1 trusted; image 1: 2 with depth, both trusted; image 2: none with depth (empty or
    # unknown rays only); image 3: 1 with depth, untrusted
    image = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 3])[:, None]
    with_depth = torch.tensor([1, 1, 1, 0, 1, 1, 0, 0, 1], dtype=torch.bool)[:, None]
    trusted = torch.tensor([1, 0, 0, 0, 1, 1, 0, 0, 0], dtype=torch.bool)[:, None]
    share = losses.image_trust_share(trusted, with_depth, image, num_images=4)
    assert_close(share, torch.tensor([1 / 3] * 4 + [1.0] * 4 + [0.0])[:, None])
    # a trusted flag on a ray without depth is not counted
    assert_close(losses.image_trust_share(torch.ones_like(trusted), torch.zeros_like(with_depth), image, 4),
                 torch.ones(9, 1))


def test_the_empty_weights_scale_only_the_mask_term_per_empty_ray():
    base = assemble()
    half = losses.assemble_depth_losses([LEVEL0_W, LEVEL1_W], [LEVEL0_STARTS, LEVEL1_STARTS],
                                        [LEVEL0_STARTS + 0.5, LEVEL1_STARTS + 1.0], GT, SURFACE, EMPTY, LAMBDAS,
                                        empty_weights=torch.tensor([[0.0], [0.5], [0.0]], dtype=torch.float64))
    assert_close(half["empty_space_loss"], 0.5 * base["empty_space_loss"])
    for name in ("soft_depth_loss", "free_space_loss", "surface_loss"):
        assert torch.equal(half[name], base[name])
    none = losses.assemble_depth_losses([LEVEL0_W, LEVEL1_W], [LEVEL0_STARTS, LEVEL1_STARTS],
                                        [LEVEL0_STARTS + 0.5, LEVEL1_STARTS + 1.0], GT, SURFACE, EMPTY, LAMBDAS,
                                        empty_weights=torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64))
    assert none["empty_space_loss"].item() == 0.0


def test_the_combined_sigma_is_the_larger_of_reported_and_inconsistency_and_the_inconsistency_alone_without_one():
    assert_close(losses.combined_sigma(col(0.0, 0.5, 0.1), col(0.2, 0.2, 0.1)), col(0.2, 0.5, 0.1))
    assert_close(losses.combined_sigma(None, col(0.2, 0.0)), col(0.2, 0.0))


def test_least_squares_alignment_recovers_each_images_scale_and_shift():
    given = torch.tensor([2.0, 3.0, 4.0, 5.0, 2.0, 2.5, 3.0, 6.0], dtype=torch.float64)[:, None]
    image = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])[:, None]
    truth = {0: (0.5, 1.0), 1: (2.0, -1.0)}
    predicted = torch.stack([truth[int(i)][0] * g + truth[int(i)][1] for g, i in zip(given[:, 0], image[:, 0])])
    predicted = predicted[:, None]
    mask = torch.ones_like(given, dtype=torch.bool)
    mask[7] = False  # a masked ray does not count
    predicted[7] = 100.0
    scale, shift, count = losses.least_squares_scale_shift(predicted, given, mask, image, 3, min_rays=2)
    assert_close(scale, torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64))
    assert_close(shift, torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))  # image 2 has no ray: identity
    assert count.tolist() == [4, 3, 0]


def test_least_squares_alignment_minimises_the_squared_residual_of_noisy_data():
    gen = torch.Generator().manual_seed(0)
    given = torch.rand(50, 1, generator=gen, dtype=torch.float64) * 4 + 2
    predicted = 1.3 * given - 0.4 + 0.05 * torch.randn(50, 1, generator=gen, dtype=torch.float64)
    group = torch.zeros(50, 1, dtype=torch.long)
    mask = torch.ones(50, 1, dtype=torch.bool)
    scale, shift, _ = losses.least_squares_scale_shift(predicted, given, mask, group, 1)
    design = torch.cat([given, torch.ones_like(given)], dim=1)
    reference = torch.linalg.lstsq(design, predicted).solution[:, 0]  # the slow obvious solution
    assert_close(torch.stack([scale[0], shift[0]]), reference)


def test_alignment_falls_back_to_identity_on_too_few_rays_or_constant_depth_and_clamps_the_scale():
    given = torch.tensor([[3.0], [3.0], [3.0], [2.0], [4.0]], dtype=torch.float64)
    predicted = torch.tensor([[1.0], [2.0], [3.0], [5.0], [1.0]], dtype=torch.float64)
    image = torch.tensor([[0], [0], [0], [1], [1]])
    mask = torch.ones_like(given, dtype=torch.bool)
    scale, shift, _ = losses.least_squares_scale_shift(predicted, given, mask, image, 2, min_rays=2)
    assert scale[0].item() == 1.0 and shift[0].item() == 0.0  # the given depth does not vary
    assert scale[1].item() == pytest.approx(1e-3)  # anti-correlated: the scale is clamped, not negative


def test_per_ray_window_weights_aligned_soft_depth_and_hard_rays_enter_the_assembly_as_documented():
    base = assemble()
    # one surface ray: weight 0.25 scales its soft, free-space and surface values, not the empty ray's
    weighted = losses.assemble_depth_losses([LEVEL0_W, LEVEL1_W], [LEVEL0_STARTS, LEVEL1_STARTS],
                                            [LEVEL0_STARTS + 0.5, LEVEL1_STARTS + 1.0], GT, SURFACE, EMPTY, LAMBDAS,
                                            ray_weights=col(0.25, 0.25, 0.25))
    for name in ("soft_depth_loss", "free_space_loss", "surface_loss"):
        assert_close(weighted[name], 0.25 * base[name])
    assert torch.equal(weighted["empty_space_loss"], base["empty_space_loss"])
    # a wider margin (eps 0.6: free until 1.4): no bin ends by then (with eps 0.3, bin [1.0, 1.5) was penalised)
    wide = losses.assemble_depth_losses([LEVEL0_W, LEVEL1_W], [LEVEL0_STARTS, LEVEL1_STARTS],
                                        [LEVEL0_STARTS + 0.5, LEVEL1_STARTS + 1.0], GT, SURFACE, EMPTY, LAMBDAS,
                                        half_width=col(0.6, 0.6, 0.6))
    assert_close(wide["free_space_loss"], torch.tensor(0.0, dtype=torch.float64))
    # the soft term compares with soft_gt_depth; hard_surface empties the hard terms
    shifted = losses.assemble_depth_losses([LEVEL0_W, LEVEL1_W], [LEVEL0_STARTS, LEVEL1_STARTS],
                                           [LEVEL0_STARTS + 0.5, LEVEL1_STARTS + 1.0], GT, SURFACE, EMPTY, LAMBDAS,
                                           soft_gt_depth=GT + 1.0, hard_surface=torch.zeros_like(SURFACE))
    d0, d1 = 0.1 * 1.25 + 0.2 * 1.75 + 0.6 * 2.25, 0.4 * 1.5 + 0.4 * 2.5
    assert_close(shifted["soft_depth_loss"], torch.tensor(0.5 * ((d0 - 3.0) ** 2 + (d1 - 3.0) ** 2) / 2,
                                                          dtype=torch.float64))
    assert shifted["free_space_loss"].item() == 0.0 and shifted["surface_loss"].item() == 0.0


def test_a_robust_penalty_reaches_the_soft_term_of_the_assembly():
    huber = assemble(losses.DepthLossWeights(soft=0.5, penalty="huber", penalty_scale=0.1))
    d0, d1 = 0.1 * 1.25 + 0.2 * 1.75 + 0.6 * 2.25, 0.4 * 1.5 + 0.4 * 2.5
    rho = [2 * 0.1 * abs(d - 2.0) - 0.01 for d in (d0, d1)]  # both residuals exceed delta
    assert_close(huber["soft_depth_loss"], torch.tensor(0.5 * sum(rho) / 2, dtype=torch.float64))


def test_the_fit_from_moments_equals_the_direct_least_squares_fit():
    torch.manual_seed(0)
    given = torch.rand(60, 1) * 3 + 2
    predicted = 1.7 * given - 0.4 + 0.05 * torch.randn(60, 1)
    mask = torch.rand(60, 1) > 0.2
    image = torch.randint(0, 3, (60, 1))
    direct = losses.least_squares_scale_shift(predicted, given, mask, image, 3, min_rays=2)
    scale, shift, usable = losses.scale_shift_from_moments(
        losses.alignment_moments(predicted, given, mask, image, 3), min_rays=2)
    torch.testing.assert_close(scale, direct[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shift, direct[1], rtol=1e-5, atol=1e-5)
    assert usable.all()
    halves = losses.alignment_moments(predicted[:30], given[:30], mask[:30], image[:30], 3) + \
        losses.alignment_moments(predicted[30:], given[30:], mask[30:], image[30:], 3)
    torch.testing.assert_close(halves, losses.alignment_moments(predicted, given, mask, image, 3))  # they add up


def test_at_256_rays_over_40_images_every_image_is_aligned_within_a_few_batches():
    """The robustness-quick ratio with the default minimum of 8 rays: about 6 rays of an image per batch, so a fit
    per batch would leave most images with none (and the soft loss on the raw monocular depth); accumulated
    statistics give every image its fit (monocular depth 0.5 D + 1: the alignment is s = 2, t = -2)."""
    generator = torch.Generator().manual_seed(0)
    images, rays = 40, 256
    moments = torch.zeros(images, losses.ALIGNMENT_MOMENTS, dtype=torch.float64)
    per_batch_fits = []
    for _ in range(8):
        image = torch.randint(0, images, (rays, 1), generator=generator)
        truth = torch.rand(rays, 1, generator=generator) * 4 + 2
        given, mask = 0.5 * truth + 1.0, torch.ones(rays, 1, dtype=torch.bool)
        batch = losses.alignment_moments(truth, given, mask, image, images)
        per_batch_fits.append(int((batch[:, 0] >= 8).sum()))
        moments = torch.where((batch[:, 0] > 0)[:, None], 0.9 * moments + batch, moments)
    scale, shift, usable = losses.scale_shift_from_moments(moments, min_rays=8)
    assert max(per_batch_fits) < images // 2  # one batch alone fits fewer than half the images
    assert usable.all()
    torch.testing.assert_close(scale, torch.full((images,), 2.0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(shift, torch.full((images,), -2.0), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------ the batched assembly
def loop_assemble_depth_losses(weights, bin_starts, bin_ends, gt_depth, surface, empty, lambdas, half_width=None,
                               ray_weights=None, soft_gt_depth=None, hard_surface=None, empty_weights=None,
                               soft_surface=None):
    """The slow obvious assembly (the implementation before the levels were stacked): a loop over levels and terms,
    each term of each level one masked_mean, the levels' means averaged."""
    t_mid = [(s + e) / 2 for s, e in zip(bin_starts, bin_ends)]
    eps = torch.full_like(gt_depth, lambdas.half_width) if half_width is None else half_width
    free_until_surface = gt_depth - eps
    free_forever = torch.full_like(gt_depth, float("inf"))
    soft_gt = gt_depth if soft_gt_depth is None else soft_gt_depth
    hard_rays = surface if hard_surface is None else hard_surface
    soft_rays = surface if soft_surface is None else soft_surface
    per_level = {}

    def add(name, lam, values, rays, weights=ray_weights):
        if weights is not None:
            values = values * weights
        per_level.setdefault(name, []).append(lam * losses.masked_mean(values, rays))

    for w, ends, mids in zip(weights, bin_ends, t_mid):
        if lambdas.soft > 0:
            predicted = losses.expected_termination(w, mids)
            add("soft_depth_loss", lambdas.soft,
                losses.soft_depth_loss(predicted, soft_gt, lambdas.penalty, lambdas.penalty_scale), soft_rays)
        if lambdas.hard > 0:
            add("free_space_loss", lambdas.hard, losses.free_space_loss(w, ends, free_until_surface), hard_rays)
            add("surface_loss", lambdas.hard, losses.surface_loss(w, mids, gt_depth, lambdas.surface_variance),
                hard_rays)
        if lambdas.empty > 0:
            add("empty_space_loss", lambdas.empty, losses.free_space_loss(w, ends, free_forever), empty, empty_weights)
    return {name: torch.stack(terms).mean() for name, terms in per_level.items()}


def random_batch(dtype, rays=96, samples=(12, 7, 5), seed=0):
    """Levels of different sample counts over [2, 6], weights from random densities (leaves with a gradient), each
    ray's state drawn among surface / empty / unknown, and every optional per-ray argument of the assembly."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    densities = [rand(rays, n, 1) * 4 for n in samples]
    starts = [2.0 + torch.sort(rand(rays, n, 1) * 3.5, dim=-2).values for n in samples]
    ends = [torch.cat([s[:, 1:], torch.full_like(s[:, :1], 6.0)], dim=-2) for s in starts]
    weights = [weights_from_density(d, s, e).requires_grad_(True) for d, s, e in zip(densities, starts, ends)]
    state = torch.randint(0, 3, (rays, 1), generator=g)
    surface, empty = state == 0, state == 1
    extra = {
        "half_width": (0.3 + rand(rays, 1)).requires_grad_(True),
        "ray_weights": rand(rays, 1).requires_grad_(True),
        "soft_gt_depth": (2.0 + 4 * rand(rays, 1)).requires_grad_(True),
        "hard_surface": surface & (rand(rays, 1) > 0.3),
        "soft_surface": surface & (rand(rays, 1) > 0.2),
        "empty_weights": rand(rays, 1).requires_grad_(True),
    }
    return weights, starts, ends, (2.0 + 4 * rand(rays, 1)) * surface, surface, empty, extra


# float32: the values to 1e-6; a gradient to 1e-5 of its largest entry, as where a residual D - D_gt cancels (the huber
# and cauchy gradients are the residual itself) a sum over samples in another order moves it by more than 1e-6
@pytest.mark.parametrize("dtype, tolerance, grad_tolerance", [(torch.float64, 1e-12, 1e-12),
                                                              (torch.float32, 1e-6, 1e-5)])
@pytest.mark.parametrize("lambdas", [
    losses.DepthLossWeights(soft=0.03, hard=0.015, empty=0.015),  # depth-hybrid
    losses.DepthLossWeights(hard=0.015, empty=0.015, surface_variance=0.5),  # depth-hard
    losses.DepthLossWeights(soft=0.03),  # depth-soft
    losses.DepthLossWeights(hard=0.2),
    losses.DepthLossWeights(empty=0.7),
    losses.DepthLossWeights(soft=0.03, hard=0.015, empty=0.015, penalty="cauchy", penalty_scale=0.1),
    losses.DepthLossWeights(soft=0.5, penalty="huber", penalty_scale=0.1),
], ids=["hybrid", "hard", "soft", "hard-only", "empty-only", "cauchy", "huber"])
@pytest.mark.parametrize("optional", [(), ("half_width", "ray_weights", "empty_weights"),
                                      ("soft_gt_depth", "hard_surface", "soft_surface")],
                         ids=["plain", "uncertain", "aligned"])
def test_the_batched_assembly_gives_the_loop_over_levels_and_terms_values_and_gradients(dtype, tolerance,
                                                                                        grad_tolerance, lambdas,
                                                                                        optional):
    weights, starts, ends, gt, surface, empty, extra = random_batch(dtype)
    per_ray = {name: extra[name] for name in optional}
    fast = losses.assemble_depth_losses(weights, starts, ends, gt, surface, empty, lambdas, **per_ray)
    slow = loop_assemble_depth_losses(weights, starts, ends, gt, surface, empty, lambdas, **per_ray)
    assert list(fast) == list(slow)  # the same terms in the same order (the training loss sums them in order)
    leaves = weights + [v for v in per_ray.values() if v.requires_grad]
    for name in slow:
        assert_close(fast[name], slow[name], rtol=tolerance, atol=0.0, msg=name)
        fast_grads = torch.autograd.grad(fast[name], leaves, retain_graph=True, allow_unused=True)
        slow_grads = torch.autograd.grad(slow[name], leaves, retain_graph=True, allow_unused=True)
        for leaf, f, s in zip(leaves, fast_grads, slow_grads):
            f = torch.zeros_like(leaf) if f is None else f
            s = torch.zeros_like(leaf) if s is None else s
            largest = float(s.abs().max().clamp(min=1e-30))
            assert_close(f, s, rtol=grad_tolerance, atol=grad_tolerance * largest, msg=name)


def test_the_batched_assembly_of_a_term_without_rays_is_zero_with_a_zero_gradient_as_in_the_loop():
    weights, starts, ends, gt, surface, empty, _ = random_batch(torch.float64)
    nothing = torch.zeros_like(surface)
    lambdas = losses.DepthLossWeights(soft=0.03, hard=0.015, empty=0.015)
    fast = losses.assemble_depth_losses(weights, starts, ends, gt, nothing, nothing, lambdas)
    assert all(value.item() == 0.0 for value in fast.values())
    grads = torch.autograd.grad(sum(fast.values()), weights)
    assert all(g.abs().max().item() == 0.0 for g in grads)


def test_stacked_levels_pad_with_zero_samples_and_take_the_same_assembly_as_the_list():
    weights, starts, ends, gt, surface, empty, _ = random_batch(torch.float64)
    stacked = losses.stack_levels(weights)
    assert stacked.shape == (3, 96, 12, 1)
    assert torch.equal(stacked[1, :, :7], weights[1]) and stacked[1, :, 7:].abs().max().item() == 0.0
    lambdas = losses.DepthLossWeights(soft=0.03, hard=0.015, empty=0.015)
    listed = losses.assemble_depth_losses(weights, starts, ends, gt, surface, empty, lambdas)
    given_stacked = losses.assemble_depth_losses(stacked, losses.stack_levels(starts), losses.stack_levels(ends), gt,
                                                 surface, empty, lambdas)
    assert all(torch.equal(listed[name], given_stacked[name]) for name in listed)
    with pytest.raises(ValueError, match="stacked"):
        losses.assemble_depth_losses(stacked, starts, ends, gt, surface, empty, lambdas)


def test_masked_means_are_the_masked_mean_of_each_column():
    g = torch.Generator().manual_seed(1)
    values = torch.rand(3, 20, 4, generator=g, dtype=torch.float64)
    mask = torch.rand(20, 4, generator=g) > 0.5
    mask[:, 2] = False
    got = losses.masked_means(values, mask)
    for k in range(4):
        column = torch.stack([losses.masked_mean(values[level, :, k:k + 1], mask[:, k:k + 1])
                              for level in range(3)]).mean()
        assert_close(got[k], column)
    assert got[2].item() == 0.0
