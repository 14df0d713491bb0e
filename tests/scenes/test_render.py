"""Rendering of the built-in scene (``depth_strategies.scenes.render``): depth, colour, alpha and cameras."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from depth_strategies.core.depth_io import read_exr
from depth_strategies.scenes.builtin import write_depth_exr
from depth_strategies.scenes.geometry import OBJECT_NAMES
from depth_strategies.scenes.render import (
    CAMERA_RADIUS,
    camera_rays,
    focal_from_width,
    look_at,
    render_view,
    sample_cameras,
    shade,
    subpixel_offsets,
    trace,
    trace_objects,
)
from tests.scenes.conftest import orbit

# ----------------------------------------------------------------------------------------------------------------
# 1. Depth equals hand-computed analytic distances
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eye", "target", "expected_z", "what"),
    [
        # straight down the z axis onto the top cap of the centre rod (top at z = 0.75)
        ((0.0, 0.0, CAMERA_RADIUS), (0.0, 0.0, 0.0), CAMERA_RADIUS - 0.75, "rod top"),
        # straight down onto the top of the sphere (centre z = -0.15, radius 0.45)
        ((0.45, 0.40, CAMERA_RADIUS), (0.45, 0.40, 0.0), CAMERA_RADIUS - (-0.15 + 0.45), "sphere top"),
        # horizontally along -y onto the side of the sphere (hit at y = 0.40 + 0.45)
        ((0.45, CAMERA_RADIUS, -0.15), (0.45, 0.40, -0.15), CAMERA_RADIUS - (0.40 + 0.45), "sphere side"),
        # straight down into the cup onto its inner floor (z = -0.5)
        ((-0.5, 0.45, CAMERA_RADIUS), (-0.5, 0.45, 0.0), CAMERA_RADIUS + 0.5, "cup floor"),
        # straight down onto the top face of the box (z = 0)
        ((0.40, -0.50, CAMERA_RADIUS), (0.40, -0.50, 0.0), CAMERA_RADIUS - 0.0, "box top"),
    ],
)
def test_centre_pixel_depth_equals_analytic_distance(tmp_path: Path, eye, target, expected_z, what) -> None:
    res = 33  # odd: the centre pixel's ray is exactly the optical axis
    c2w = look_at(eye, target)
    focal = focal_from_width(res)
    rgba, depth = render_view(c2w, res, res, focal, supersample=2)
    write_depth_exr(tmp_path / "d.exr", depth)
    z_exr = read_exr(tmp_path / "d.exr", "Z")
    assert z_exr.dtype == np.float32 and z_exr.shape == (res, res)
    assert abs(float(z_exr[res // 2, res // 2]) - expected_z) < 1e-4, what
    assert rgba[res // 2, res // 2, 3] == 255, what
    t, n, _ = trace(np.asarray(eye)[None], (np.asarray(target) - np.asarray(eye))[None])
    assert abs(t[0] - expected_z) < 1e-4, what  # on the axis, ray distance == z-depth
    assert np.allclose(n[0], -(np.asarray(target) - eye) / np.linalg.norm(np.asarray(target) - eye), atol=1e-6)


def test_planar_surfaces_have_constant_z_depth_seen_from_straight_above() -> None:
    """Looking straight down, z-depth on a horizontal plane is the same at every pixel, not only at the centre."""
    res = 48
    eye = np.array([0.0, 0.0, CAMERA_RADIUS])
    c2w = look_at(eye)
    o, d, norm = camera_rays(c2w, res, res, focal_from_width(res))
    _, depth = render_view(c2w, res, res, focal_from_width(res), supersample=1)
    t, n, _ = trace(o, d)
    ids = trace_objects(o, d)
    hit_platform_top = (ids == OBJECT_NAMES.index("platform")) & (n[:, 2] > 0.999)
    assert hit_platform_top.sum() > 200
    np.testing.assert_allclose(depth.reshape(-1)[hit_platform_top], CAMERA_RADIUS + 0.6, atol=1e-4)
    np.testing.assert_allclose((t / norm)[hit_platform_top], CAMERA_RADIUS + 0.6, atol=1e-6)
    box_top = (ids == OBJECT_NAMES.index("box")) & (n[:, 2] > 0.999)
    assert box_top.sum() > 10
    np.testing.assert_allclose(depth.reshape(-1)[box_top], CAMERA_RADIUS - 0.0, atol=1e-4)


def test_trace_distance_is_along_unit_direction_and_rods_are_hit() -> None:
    # centre rod (radius 0.04 at the origin, top z = 0.75), hit from y = -4 at height 0.2: t = 4 - 0.04
    t, n, _ = trace(np.array([[0.0, -4.0, 0.2]]), np.array([[0.0, 10.0, 0.0]]))  # non-unit direction
    assert abs(t[0] - (4.0 - 0.04)) < 1e-9
    np.testing.assert_allclose(n[0], [0.0, -1.0, 0.0], atol=1e-9)
    # a ray passing 0.05 beside the rod misses it and everything else
    t_miss, n_miss, a_miss = trace(np.array([[0.05, -4.0, 0.6]]), np.array([[0.0, 1.0, 0.0]]))
    assert np.isinf(t_miss[0]) and not n_miss.any() and not a_miss.any()
    # the gate's horizontal bar (radius 0.03, from (-0.8,-0.3,0.3) to (-0.3,-0.8,0.3)), hit perpendicularly at
    # its midpoint from 3 units away: t = 3 - 0.03
    mid = np.array([-0.55, -0.55, 0.3])
    outward = np.array([-1.0, -1.0, 0.0]) / math.sqrt(2.0)
    t_bar = trace((mid + 3.0 * outward)[None], -outward[None])[0]
    assert abs(t_bar[0] - (3.0 - 0.03)) < 1e-9
    assert trace_objects((mid + 3.0 * outward)[None], -outward[None])[0] == OBJECT_NAMES.index("gate")


# ----------------------------------------------------------------------------------------------------------------
# 2. Multi-view consistency: depth reprojection and colour agreement
# ----------------------------------------------------------------------------------------------------------------


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear sample at continuous pixel-index coordinates; also returns the 4 neighbours ``[N, 4, ...]``."""
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    nb = np.stack([img[v0, u0], img[v0, u0 + 1], img[v0 + 1, u0], img[v0 + 1, u0 + 1]], axis=1)
    w = np.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], axis=1)
    w = w.reshape(w.shape + (1,) * (nb.ndim - 2))
    return (nb * w).sum(axis=1), nb


def test_depth_reprojects_consistently_and_colours_agree_between_views() -> None:
    res = 96
    f = focal_from_width(res)
    c = res / 2.0
    c2w_1, c2w_2 = orbit(30.0, 40.0), orbit(35.0, 65.0)  # ~25 degrees apart
    rgba1, z1 = render_view(c2w_1, res, res, f)
    rgba2, z2 = render_view(c2w_2, res, res, f)

    v, u = np.nonzero((rgba1[..., 3] == 255) & (z1 > 0))
    z = z1[v, u].astype(np.float64)
    p_cam = np.stack([(u + 0.5 - c) / f * z, -(v + 0.5 - c) / f * z, -z], axis=1)
    p_world = p_cam @ c2w_1[:3, :3].T + c2w_1[:3, 3]
    q = (p_world - c2w_2[:3, 3]) @ c2w_2[:3, :3]
    zp = -q[:, 2]
    u2 = f * q[:, 0] / zp + c - 0.5
    v2 = -f * q[:, 1] / zp + c - 0.5
    inside = (u2 >= 0) & (u2 < res - 1) & (v2 >= 0) & (v2 < res - 1)
    u, v, zp, u2, v2 = u[inside], v[inside], zp[inside], u2[inside], v2[inside]
    z_interp, z_nb = _bilinear(z2, u2, v2)
    _, a_nb = _bilinear(rgba2[..., 3].astype(np.float64), u2, v2)
    # visible in view 2: opaque neighbourhood whose depths agree with the projected depth (occlusion test)
    visible = (a_nb == 255).all(axis=1) & (np.abs(z_nb - zp[:, None]) < 0.02 * zp[:, None]).all(axis=1)
    assert visible.sum() > 1000, visible.sum()

    footprint = zp[visible] / f  # one texel's size at that depth
    err = np.abs(zp[visible] - z_interp[visible])
    # measured ~0.004; a half-pixel error in the pixel-centre convention gives ~0.08, Euclidean depth ~0.6
    assert np.median(err / footprint) < 0.02, np.median(err / footprint)

    # colours: only pixels whose 3x3 neighbourhood in view 1 is fully opaque (away from silhouettes)
    opaque1 = rgba1[..., 3] == 255
    interior = np.ones_like(opaque1)
    interior[1:-1, 1:-1] = np.all(
        [opaque1[1 + dv : res - 1 + dv, 1 + du : res - 1 + du] for dv in (-1, 0, 1) for du in (-1, 0, 1)], axis=0
    )
    interior[[0, -1], :] = False
    interior[:, [0, -1]] = False
    sel = visible & interior[v, u]
    assert sel.sum() > 500
    rgb2, _ = _bilinear(rgba2[..., :3].astype(np.float64), u2[sel], v2[sel])
    diff = np.abs(rgb2 - rgba1[v[sel], u[sel], :3].astype(np.float64)).mean(axis=1)
    assert np.median(diff) < 8.0, np.median(diff)  # image-level (texture edges + resampling blur the tail)

    # shading is exactly view-independent: the analytic colour of each surface point is the same from both eyes
    eye2 = c2w_2[:3, 3]
    t_back, n_back, a_back = trace(np.broadcast_to(eye2, p_world.shape), p_world - eye2)
    seen = np.abs(t_back - np.linalg.norm(p_world - eye2, axis=1)) < 1e-4
    assert seen.mean() > 0.5
    dir2 = (p_world - eye2) / np.linalg.norm(p_world - eye2, axis=1, keepdims=True)
    p_surf = eye2 + t_back[seen, None] * dir2[seen]  # exactly on the surface (the EXR depth is float32)
    eye1 = np.broadcast_to(c2w_1[:3, 3], p_surf.shape)
    _, n_front, a_front = trace(eye1, p_surf - eye1)
    np.testing.assert_allclose(shade(n_back[seen], a_back[seen]), shade(n_front, a_front), atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# 3. Transparency exactly where nothing is hit
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("supersample", [1, 2, 3])
def test_alpha_is_zero_exactly_where_no_subpixel_ray_hits(supersample: int) -> None:
    res = 40
    f = focal_from_width(res)
    c2w = orbit(25.0, 200.0)
    rgba, depth = render_view(c2w, res, res, f, supersample=supersample)
    hits = np.zeros(res * res, dtype=int)
    for off in subpixel_offsets(supersample):
        o, d, _ = camera_rays(c2w, res, res, f, off)
        hits += np.isfinite(trace(o, d)[0])
    hits = hits.reshape(res, res)
    n = supersample**2
    alpha = rgba[..., 3]
    assert np.array_equal(alpha == 0, hits == 0)
    assert np.array_equal(alpha == 255, hits == n)
    assert (hits == 0).any() and (hits == n).any()
    if supersample > 1:
        assert ((hits > 0) & (hits < n)).any()  # anti-aliased silhouettes
    assert not rgba[alpha == 0, :3].any()  # no white (or any colour) baked into the background
    o, d, _ = camera_rays(c2w, res, res, f)
    centre_hit = np.isfinite(trace(o, d)[0]).reshape(res, res)
    assert np.all(depth[~centre_hit] == 0.0)
    assert np.all(depth[centre_hit] > 0.0)


def test_sampled_cameras_orbit_the_origin_on_the_upper_hemisphere() -> None:
    c2w = sample_cameras(200, 3, "train")
    assert c2w.shape == (200, 4, 4)
    pos, rot = c2w[:, :3, 3], c2w[:, :3, :3]
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), CAMERA_RADIUS, rtol=1e-12)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    np.testing.assert_allclose(rot[:, :, 2], pos / CAMERA_RADIUS, atol=1e-12)  # looks down -z at the origin
    assert np.all(rot[:, 2, 1] > 0)  # camera +y points upwards
    elev = np.degrees(np.arcsin(pos[:, 2] / CAMERA_RADIUS))
    assert elev.min() >= 10.0 and elev.max() <= 70.0
    np.testing.assert_array_equal(c2w[:, 3], np.broadcast_to([0, 0, 0, 1], (200, 4)))
