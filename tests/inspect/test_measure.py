"""The measurements of depth_strategies/inspect/measure.py on maps whose answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_strategies.core.degradation import SURFACE, UNKNOWN, low_resolution, quantise, smooth_field
from depth_strategies.inspect import measure


def plane(h: int = 64, w: int = 64, depth: float = 4.0, slope: float = 0.01) -> np.ndarray:
    """A slanted plane: depth grows by ``slope`` per column."""
    return depth + slope * np.arange(w)[None, :].repeat(h, axis=0)


def surface(shape) -> np.ndarray:
    return np.full(shape, SURFACE, np.uint8)


def test_relative_noise_of_an_exact_plane_is_zero():
    d = plane()
    assert measure.relative_noise(d, surface(d.shape))[0] == pytest.approx(0.0, abs=1e-9)


def test_relative_noise_recovers_the_sigma_of_gaussian_noise_proportional_to_depth():
    rng = np.random.default_rng(0)
    d = plane(128, 128)
    noisy = d * (1 + 0.02 * rng.standard_normal(d.shape))
    sigma, n = measure.relative_noise(noisy, surface(d.shape))
    assert n == 2 * 128 * 126
    assert sigma == pytest.approx(0.02, rel=0.05)


def test_neighbour_shares_tell_scanlines_from_points_and_dense_depth():
    state = np.full((32, 32), UNKNOWN, np.uint8)
    state[::4, :] = SURFACE
    assert measure.neighbour_shares(state) == (1.0, 0.0)
    assert measure.neighbour_shares(surface((8, 8))) == (1.0, 1.0)
    points = np.full((9, 9), UNKNOWN, np.uint8)
    points[::2, ::2] = SURFACE
    assert measure.neighbour_shares(points) == (0.0, 0.0)


def test_coverage_counts_surface_pixels_among_the_expected_ones():
    state = surface((4, 4))
    state[0, :] = UNKNOWN
    expected = np.ones((4, 4), bool)
    expected[:, 0] = False  # 12 expected, of which 9 have depth
    assert measure.coverage(state, expected) == pytest.approx(9 / 12)


def test_quantisation_step_is_found_on_rounded_depth_and_not_on_continuous_depth():
    rng = np.random.default_rng(1)
    d = 4.0 + 0.5 * smooth_field((64, 64), rng)
    state = surface(d.shape)
    rounded, _, _ = quantise(d, state, np.zeros_like(d), rng, step=0.05)
    step = measure.quantisation_step(measure.neighbour_differences(rounded, state), 4.0)
    assert step == pytest.approx(0.05, rel=1e-5)
    assert measure.quantisation_step(measure.neighbour_differences(d, state), 4.0) is None


def test_upsampling_factor_is_the_period_of_the_sensor_grid():
    rng = np.random.default_rng(2)
    rows, columns, rows_full, columns_full = [], [], [], []
    for _ in range(6):
        d = 4.0 + 0.5 * smooth_field((96, 96), rng, terms=6)
        state = surface(d.shape)
        up, up_state, _ = low_resolution(d, state, np.zeros_like(d), rng, factor=6)
        r, c = measure.kink_profiles(up, up_state)
        rows.append(r)
        columns.append(c)
        r, c = measure.kink_profiles(d, state)
        rows_full.append(r)
        columns_full.append(c)
    assert measure.upsampling_factor(rows, columns) == pytest.approx(6.0, rel=0.02)
    assert measure.upsampling_factor(rows_full, columns_full) is None


def test_flying_share_counts_a_column_mixed_between_two_planes():
    d = np.full((20, 20), 3.0)
    d[:, 10:] = 5.0
    d[:, 10] = 4.0  # one flying pixel per row, half way between the planes
    share, flying, edges = measure.flying_share(d, surface(d.shape))
    assert flying == 20 and edges == 60  # the flying column and the columns on either side of it
    assert share == pytest.approx(20 / 400 / (1 - 2 * measure.FLYING_MARGIN))
    clean = d.copy()
    clean[:, 10] = 5.0
    assert measure.flying_share(clean, surface(d.shape))[0] == 0.0


def test_frame_log_scales_recover_scales_from_their_pair_ratios():
    x = np.array([0.1, -0.2, 0.05, 0.05])
    pairs = [(i, j, x[j] - x[i]) for i in range(4) for j in range(4) if i != j]
    np.testing.assert_allclose(measure.frame_log_scales(4, pairs), x, atol=1e-9)


def test_frame_log_scales_ignore_one_pair_of_views_that_disagrees():
    pairs = [(i, j, 0.0) for i in range(5) for j in range(5) if i != j]
    pairs[0] = (0, 1, 0.7)  # two views that see different things
    assert np.abs(measure.frame_log_scales(5, pairs)).max() < 0.01


def test_scale_range_of_log_uniform_scales_is_their_range():
    r = 1.5
    log_scales = np.linspace(-math.log(r), math.log(r), 2001)  # uniform in log
    assert measure.scale_range(log_scales) == pytest.approx(r, rel=1e-3)
    assert measure.scale_range(np.zeros(10)) == 1.0


def test_stored_grid_picks_the_centres_of_the_stored_depth_pixels():
    rows, cols = measure.stored_grid((48, 64), (12, 16))
    np.testing.assert_array_equal(rows, np.arange(12) * 4 + 2)
    np.testing.assert_array_equal(cols, np.arange(16) * 4 + 2)


def test_inside_box_counts_points_within_the_corners():
    aabb = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    points = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.5, 0.0, 0.0], [0.0, -2.0, 0.0]])
    assert measure.inside_box(points, aabb) == 0.5
