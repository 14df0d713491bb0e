"""Multi-view consistency of depth maps (depth_strategies.core.consistency), on hand-built cameras over a plane."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_strategies.core import consistency as cons

SIZE = 24
FOCAL = 30.0
INTRINSICS = (FOCAL, FOCAL, SIZE / 2, SIZE / 2)


def camera_above(x: float, y: float = 0.0, height: float = 4.0, tilt_deg: float = 0.0) -> np.ndarray:
    """Camera to world of a camera at (x, y, height) looking down -z (OpenGL axes), tilted about the world y axis."""
    a = math.radians(tilt_deg)
    rotation = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    return np.concatenate([rotation, np.array([[x], [y], [height]])], axis=1)


def plane_depth(c2w: np.ndarray) -> np.ndarray:
    """Exact ray distance from the camera to the plane z = 0 through every pixel centre."""
    rays = cons.pixel_rays(INTRINSICS, SIZE, SIZE) @ c2w[:, :3].T
    return c2w[2, 3] / -rays[..., 2]


def slow_residuals(points, c2w, intrinsics, depth, surface):
    """One point at a time, with an explicit inverse of the camera to world matrix."""
    fx, fy, cx, cy = intrinsics
    world_to_camera = np.linalg.inv(np.vstack([c2w, [0, 0, 0, 1]]))
    out = []
    for p in points:
        x, y, z, _ = world_to_camera @ np.append(p, 1.0)
        if z >= 0:
            continue
        u, v = fx * x / -z + cx, -fy * y / -z + cy
        col, row = math.floor(u), math.floor(v)
        if 0 <= col < depth.shape[1] and 0 <= row < depth.shape[0] and surface[row, col]:
            out.append(math.sqrt(x * x + y * y + z * z) - depth[row, col])
    return np.array(out)


def test_pixel_rays_are_unit_and_the_centre_ray_looks_down_minus_z():
    rays = cons.pixel_rays((10.0, 10.0, 1.5, 1.5), 3, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0)
    np.testing.assert_allclose(rays[1, 1], [0.0, 0.0, -1.0])
    assert rays[0, 0, 0] < 0 and rays[0, 0, 1] > 0  # top-left pixel: left (-x) and up (+y)


def test_reprojection_residuals_match_a_point_by_point_reference():
    rng = np.random.default_rng(3)
    c2w_i, c2w_j = camera_above(0.0), camera_above(0.8, 0.3, tilt_deg=10.0)
    depth_i = plane_depth(c2w_i) * rng.uniform(0.9, 1.1, (SIZE, SIZE))
    depth_j = plane_depth(c2w_j) * rng.uniform(0.9, 1.1, (SIZE, SIZE))
    surface_j = rng.random((SIZE, SIZE)) < 0.7
    points = cons.surface_points(depth_i, np.ones((SIZE, SIZE), bool), c2w_i, INTRINSICS, max_points=None)
    fast = cons.reprojection_residuals(points, c2w_j, INTRINSICS, depth_j, surface_j)
    slow = slow_residuals(points, c2w_j, INTRINSICS, depth_j, surface_j)
    assert fast.size > 100
    np.testing.assert_allclose(np.sort(fast), np.sort(slow), atol=1e-9)


def test_a_depth_shortened_by_a_tenth_floats_in_front_by_a_tenth_of_its_depth():
    # Seen from its own camera, a point at 0.9 D lands on its own pixel, which sees the surface at D: r = -0.1 D.
    c2w = camera_above(0.0)
    depth = plane_depth(c2w)
    surface = np.ones((SIZE, SIZE), bool)
    points = cons.surface_points(0.9 * depth, surface, c2w, INTRINSICS, max_points=None)
    residuals = cons.reprojection_residuals(points, c2w, INTRINSICS, depth, surface)
    np.testing.assert_allclose(np.sort(residuals), np.sort(-0.1 * depth.ravel()), atol=1e-9)
    assert cons.pair_violation(residuals) == pytest.approx(0.1 * np.quantile(depth, 0.75))


def test_exact_depth_of_neighbouring_views_has_almost_no_violation():
    c2w_i, c2w_j = camera_above(0.0), camera_above(0.5, tilt_deg=5.0)
    surface = np.ones((SIZE, SIZE), bool)
    points = cons.surface_points(plane_depth(c2w_i), surface, c2w_i, INTRINSICS, max_points=None)
    residuals = cons.reprojection_residuals(points, c2w_j, INTRINSICS, plane_depth(c2w_j), surface)
    assert residuals.size > 300
    assert cons.pair_violation(residuals) < 0.01  # pixel discretisation only (4 units away)


def test_occluded_points_are_not_violations():
    # j sees an occluder at half the distance over the left half of its image: i's points there are behind it.
    c2w = camera_above(0.0)
    depth = plane_depth(c2w)
    occluded = depth.copy()
    occluded[:, : SIZE // 2] *= 0.5
    surface = np.ones((SIZE, SIZE), bool)
    points = cons.surface_points(depth, surface, c2w, INTRINSICS, max_points=None)
    residuals = cons.reprojection_residuals(points, c2w, INTRINSICS, occluded, surface)
    assert (residuals >= -1e-9).all() and (residuals > 1.0).mean() == pytest.approx(0.5)
    assert cons.pair_violation(residuals) == pytest.approx(0.0, abs=1e-9)


def test_too_few_matches_give_no_violation():
    assert math.isnan(cons.pair_violation(np.full(cons.MIN_MATCHES - 1, -5.0)))
    assert cons.pair_violation(np.full(cons.MIN_MATCHES, -5.0)) == 5.0


def test_nearest_views_follow_the_viewing_direction():
    c2ws = np.stack([camera_above(0.0, tilt_deg=t) for t in (0.0, 50.0, 10.0, -20.0)])
    np.testing.assert_array_equal(cons.nearest_views(c2ws, 2), [[2, 3], [2, 0], [0, 3], [0, 2]])
    assert cons.nearest_views(c2ws, 9).shape == (4, 3)


def five_views():
    c2ws = np.stack([camera_above(x, y) for x, y in ((0, 0), (0.4, 0), (-0.4, 0), (0, 0.4), (0, -0.4))])
    depths = [plane_depth(c) for c in c2ws]
    surfaces = [np.ones((SIZE, SIZE), bool) for _ in c2ws]
    return depths, surfaces, c2ws, [INTRINSICS] * len(c2ws)


def test_exact_depth_is_consistent():
    sigma = cons.consistency_sigma(*five_views())
    assert sigma.shape == (5,) and (sigma < 0.01).all()


def test_one_rescaled_image_stands_out_and_does_not_taint_its_neighbours():
    depths, surfaces, c2ws, intrinsics = five_views()
    depths[0] = 0.8 * depths[0]
    sigma = cons.consistency_sigma(depths, surfaces, c2ws, intrinsics)
    assert sigma[0] > 0.6  # about 0.2 D at D ~ 4, in every one of its pairs
    assert (sigma[1:] < 0.01).all()  # each neighbour has one bad pair of four: the median ignores it


def test_depth_too_sparse_to_match_is_not_judged():
    depths, surfaces, c2ws, intrinsics = five_views()
    rng = np.random.default_rng(0)
    sparse = [rng.random((SIZE, SIZE)) < 0.02 for _ in surfaces]
    sigma = cons.consistency_sigma([0.5 * d for d in depths], sparse, c2ws, intrinsics)
    np.testing.assert_array_equal(sigma, 0.0)


def test_a_single_view_is_not_judged():
    depths, surfaces, c2ws, intrinsics = five_views()
    np.testing.assert_array_equal(cons.consistency_sigma(depths[:1], surfaces[:1], c2ws[:1], intrinsics[:1]), [0.0])
