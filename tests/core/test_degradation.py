"""Depth degradation models: each model's measured statistics match its parameters, they are deterministic for a
seed, and the three pixel states are respected (unknown stays unknown, dropped becomes unknown, never empty)."""

from __future__ import annotations

import numpy as np
import pytest

from depth_strategies.core.degradation import (
    EMPTY,
    MODELS,
    SURFACE,
    UNKNOWN,
    degrade,
    discontinuities,
    parse_degradation,
)

H = W = 200


def plane(depth: float = 4.0) -> tuple:
    """A 200x200 surface at constant depth, with an empty left column band and an unknown top row band."""
    d = np.full((H, W), depth)
    state = np.full((H, W), SURFACE, np.uint8)
    state[:, :20] = EMPTY
    state[:10, :] = UNKNOWN
    d[state != SURFACE] = 0.0
    return d, state


def ramp() -> tuple:
    """Depth growing linearly from 2 to 6 along x, every pixel a surface."""
    x = (np.arange(W) + 0.5) / W
    return np.tile(2.0 + 4.0 * x, (H, 1)), np.full((H, W), SURFACE, np.uint8)


def run(spec: str, depth, state, seed: int = 0):
    return degrade(depth, state, [parse_degradation(spec)], seed=seed, image_index=0)


def assert_states_respected(before: np.ndarray, after: np.ndarray) -> None:
    assert np.all(after[before == UNKNOWN] == UNKNOWN), "an unknown pixel must stay unknown"
    assert np.all(after[before == EMPTY] == EMPTY), "an empty pixel (the image's mask) is not the sensor's to change"
    assert not np.any((before == SURFACE) & (after == EMPTY)), "a dropped surface pixel becomes unknown, never empty"


# ------------------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("a,b,c", [(0.01, 0.0, 0.0), (0.0, 0.03, 0.0), (0.002, 0.0, 0.004)])
def test_range_noise_has_zero_mean_and_the_sigma_of_its_parameters(a, b, c):
    depth, state = ramp()
    noisy, new_state, sigma = run(f"noise(a={a}, b={b}, c={c})", depth, state)
    expected_sigma = a + b * depth + c * depth**2
    z = (noisy - depth) / expected_sigma  # standardised error: N(0, 1) if the model is right
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std() - 1.0) < 0.02
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-5)  # the reported sigma is the model's
    assert_states_respected(state, new_state)


def test_range_noise_outliers_replace_the_given_fraction_of_surface_pixels():
    depth, state = plane(4.0)
    noisy, new_state, _ = run("noise(a=0.001, outliers=0.05, outlier_lo=2.0, outlier_hi=6.0)", depth, state)
    surface = state == SURFACE
    far_off = np.abs(noisy - depth)[surface] > 0.01  # 10 sigma: only outliers
    # an outlier lands within 0.01 of the truth with probability 0.02 / 4
    expected = 0.05 * (1 - 0.02 / 4)
    n = surface.sum()
    assert abs(far_off.mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    assert np.all((noisy[surface][far_off] >= 2.0) & (noisy[surface][far_off] <= 6.0))
    assert_states_respected(state, new_state)


def test_noise_that_makes_a_depth_non_positive_makes_the_pixel_unknown():
    depth, state = plane(0.05)
    noisy, new_state, _ = run("noise(a=0.2)", depth, state)
    negative_draws = (state == SURFACE) & (new_state == UNKNOWN)
    assert negative_draws.mean() > 0.2  # P(N(0.05, 0.2) <= 0) = 0.40 of the surface pixels
    assert np.all(noisy[new_state == SURFACE] > 0)
    assert np.all(noisy[new_state != SURFACE] == 0)


# ------------------------------------------------------------------------------------------- holes
@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_holes_drop_about_the_requested_fraction_in_blobs(fraction):
    depth, state = plane()
    _, new_state, _ = run(f"holes(fraction={fraction}, radius=5)", depth, state)
    surface = state == SURFACE
    dropped = ((new_state == UNKNOWN) & surface).sum() / surface.sum()
    blob = np.pi * 5**2 / surface.sum()
    assert fraction <= dropped < fraction + 2 * blob  # blobs are added until the fraction is reached
    assert_states_respected(state, new_state)


def test_edge_holes_drop_the_pixels_next_to_a_depth_step_and_a_silhouette():
    depth, state = plane(3.0)
    depth[:, 100:] = 5.0  # an occlusion edge between x = 99 and x = 100
    _, new_state, _ = run("holes(edges=2, jump=0.5)", depth, state)
    rows = slice(20, 180)
    assert np.all(new_state[rows, 98:102] == UNKNOWN)  # two pixels each side of the step
    assert np.all(new_state[rows, 20:22] == UNKNOWN)  # two pixels inside the silhouette (x < 20 is empty)
    assert np.all(new_state[rows, 23:97] == SURFACE)  # the rest untouched
    assert np.all(new_state[rows, :20] == EMPTY)


def test_discontinuities_mark_depth_steps_above_the_jump_only():
    depth = np.array([[2.0, 2.05, 3.0]])
    state = np.full((1, 3), SURFACE, np.uint8)
    np.testing.assert_array_equal(discontinuities(depth, state, jump=0.1), [[False, True, True]])
    # relative: 0.05 / 2.0 = 2.5 % and 0.95 / 2.05 = 46 % of the nearer depth
    np.testing.assert_array_equal(discontinuities(depth, state, jump=0.1, relative=True), [[False, True, True]])
    np.testing.assert_array_equal(discontinuities(depth, state, jump=0.5, relative=True), [[False, False, False]])


# ------------------------------------------------------------------------------------------- flying pixels
def test_flying_pixels_mix_foreground_and_background_at_edges_and_stay_surface():
    depth, state = plane(3.0)
    depth[:, 100:] = 5.0
    flown, new_state, _ = run("flying(width=1, jump=0.5, background=6.0)", depth, state)
    rows = slice(20, 180)
    step = flown[rows, 99:101]
    assert np.all((step >= 3.0) & (step <= 5.0)) and step.std() > 0.3  # mixed, not dropped
    silhouette = flown[rows, 20]
    assert np.all((silhouette >= 3.0) & (silhouette <= 6.0)) and silhouette.std() > 0.3
    np.testing.assert_array_equal(flown[rows, 22:98], 3.0)
    np.testing.assert_array_equal(new_state, state)  # a sensor reports flying pixels as valid


# ------------------------------------------------------------------------------------------- sparse
def test_scanlines_keep_depth_on_exactly_that_many_rows():
    depth, state = ramp()
    _, new_state, _ = run("sparse(lines=16)", depth, state)
    rows_kept = np.flatnonzero((new_state == SURFACE).any(axis=1))
    assert len(rows_kept) == 16
    assert np.all(np.diff(rows_kept) >= H // 16 - 1)  # evenly spaced
    assert np.all((new_state[rows_kept] == SURFACE))


@pytest.mark.parametrize("density", [0.01, 0.05, 0.2])
def test_random_points_keep_the_requested_density(density):
    depth, state = plane()
    _, new_state, _ = run(f"sparse(density={density})", depth, state)
    surface = state == SURFACE
    kept = (new_state[surface] == SURFACE).mean()
    assert abs(kept - density) < 4 * np.sqrt(density * (1 - density) / surface.sum())
    assert_states_respected(state, new_state)


# ------------------------------------------------------------------------------------------- low resolution
def test_bilinear_upsampling_of_low_resolution_depth_reproduces_a_linear_ramp_inside():
    depth, state = ramp()
    up, new_state, _ = run("lowres(factor=4, upsample='bilinear')", depth, state)
    inner = slice(4, -4)
    np.testing.assert_allclose(up[:, inner], depth[:, inner], atol=1e-9)  # a linear function survives exactly
    assert_states_respected(state, new_state)


def test_nearest_upsampling_is_piecewise_constant_within_half_a_sensor_pixel():
    depth, state = ramp()
    up, _, _ = run("lowres(factor=4, upsample='nearest')", depth, state)
    slope = 4.0 / W  # units per image pixel
    assert np.abs(up - depth).max() <= slope * 1.5 + 1e-6  # a block's mean is 1.5 px from its outer pixels
    assert len(np.unique(up[0])) == W // 4


def test_low_resolution_drops_pixels_whose_sensor_neighbours_saw_no_surface():
    depth, state = plane()
    up, new_state, _ = run("lowres(factor=5)", depth, state)
    near_silhouette = new_state[50:150, 20:22]  # image pixels 20, 21 interpolate the empty sensor pixel
    assert np.all(near_silhouette == UNKNOWN)
    assert np.all(new_state[50:150, 22:190] == SURFACE)
    np.testing.assert_allclose(up[50:150, 22:190], 4.0)
    assert_states_respected(state, new_state)


# ------------------------------------------------------------------------------------------- quantisation
def test_eight_bit_quantisation_leaves_errors_within_half_a_level():
    depth, state = ramp()
    q, _, sigma = run("quantise(bits=8, lo=2.0, hi=6.0)", depth, state)
    level = 4.0 / 255
    assert np.abs(q - depth).max() <= level / 2 + 1e-9
    assert len(np.unique(q)) <= 256
    np.testing.assert_allclose(sigma, level / np.sqrt(12), rtol=1e-5)


def test_millimetre_quantisation_rounds_to_the_step():
    depth, state = ramp()
    q, _, _ = run("quantise(step=0.001)", depth, state)
    np.testing.assert_allclose(q, np.round(q.astype(np.float64) / 0.001) * 0.001, atol=1e-6)  # float32 storage
    assert np.abs(q - depth).max() <= 0.0005 + 1e-7


# ------------------------------------------------------------------------------------------- monocular
def test_monocular_scale_and_shift_are_recovered_by_least_squares():
    depth, state = ramp()
    mono, _, _ = run("monocular(scale_lo=0.5, scale_hi=2.0, shift_lo=-1.0, shift_hi=1.0)", depth, state)
    s, t = np.polyfit(depth.ravel(), mono.ravel(), 1)
    assert 0.5 <= s <= 2.0 and -1.0 <= t <= 1.0
    np.testing.assert_allclose(mono, s * depth + t, atol=1e-5)  # exactly affine: nothing else changed
    assert abs(s - 1.0) > 1e-3  # and it is not the identity


def test_monocular_inverse_depth_is_affine_in_inverse_depth():
    depth, state = ramp()
    mono, _, _ = run("monocular(scale_lo=0.8, scale_hi=1.2, shift_lo=0.0, shift_hi=0.05, space='inverse')",
                     depth, state)
    s, t = np.polyfit(1 / depth.ravel(), 1 / mono.ravel(), 1)
    np.testing.assert_allclose(1 / mono, s / depth + t, atol=1e-6)


def test_monocular_warp_is_smooth_and_bounded():
    depth, state = plane(4.0)
    mono, new_state, _ = run("monocular(warp=0.1)", depth, state)
    ratio = mono[new_state == SURFACE] / 4.0
    assert np.all((ratio >= 0.9 - 1e-9) & (ratio <= 1.1 + 1e-9)) and ratio.std() > 0.01
    grid = np.where(new_state == SURFACE, mono, np.nan)[20:, 30:]
    assert np.nanmax(np.abs(np.diff(grid, axis=1))) < 4.0 * 0.1 * 2 * np.pi * 3 / W * 1.5  # low frequency


# ------------------------------------------------------------------------------------------- as data
@pytest.mark.parametrize(
    "spec",
    ["noise(b=0.02, outliers=0.01)", "holes(fraction=0.1, edges=1)", "flying(width=2)", "sparse(lines=8)",
     "sparse(density=0.05)", "lowres(factor=7.5)", "quantise(bits=8)", "monocular(scale_lo=0.5, scale_hi=2.0)"],
)
def test_every_model_is_deterministic_for_a_seed_and_varies_with_it(spec):
    depth, state = plane()
    depth = depth + np.linspace(0, 1, W)[None, :] * (state == SURFACE)
    first = run(spec, depth, state, seed=3)
    again = run(spec, depth, state, seed=3)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert_states_respected(state, first[1])
    if spec.startswith(("noise", "holes", "sparse", "monocular", "flying")):
        other = run(spec, depth, state, seed=4)
        assert any(not np.array_equal(x, y) for x, y in zip(first, other))


def test_models_draw_from_their_own_stream_so_appending_one_changes_nothing_before_it():
    depth, state = ramp()
    one = degrade(depth, state, [parse_degradation("noise(b=0.01)")], seed=0, image_index=5)
    two = degrade(depth, state, [parse_degradation("noise(b=0.01)"), parse_degradation("quantise(step=1e-9)")],
                  seed=0, image_index=5)
    np.testing.assert_allclose(two[0], one[0], atol=1e-8)
    other_image = degrade(depth, state, [parse_degradation("noise(b=0.01)")], seed=0, image_index=6)
    assert not np.array_equal(one[0], other_image[0])


@pytest.mark.parametrize(
    "spec,message",
    [
        ("gauss(b=0.1)", "kind one of noise"),
        ("noise(q=1)", "noise has no parameter 'q'; it takes a, b, c"),
        ("noise(b=-0.1)", "must be >= 0"),
        ("sparse(lines=4, density=0.1)", "exactly one of lines"),
        ("noise(0.1)", "key=value"),
        ("lowres(upsample='cubic')", "bilinear"),
    ],
)
def test_a_bad_degradation_string_names_itself_and_the_fix(spec, message):
    with pytest.raises(ValueError) as err:
        parse_degradation(spec)
    assert spec in str(err.value) and message in str(err.value)


def test_every_model_is_listed_with_a_docstring():
    for kind, fn in MODELS.items():
        assert fn.__doc__ and len(fn.__doc__) > 40, kind
