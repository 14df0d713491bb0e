"""Content of the built-in scene (``depth_strategies.scenes.geometry``), seen through its renderer."""

from __future__ import annotations

import numpy as np

from depth_strategies.scenes.geometry import OBJECT_NAMES, SCENE_BOUND
from depth_strategies.scenes.render import (
    CAMERA_RADIUS,
    camera_rays,
    focal_from_width,
    look_at,
    render_view,
    sample_cameras,
    trace,
    trace_objects,
)
from tests.scenes.conftest import orbit


def test_scene_shows_several_objects_with_occlusions_and_a_wide_depth_range() -> None:
    res = 64
    f = focal_from_width(res)
    seen_anywhere: set[int] = set()
    for c2w in sample_cameras(4, 0, "train"):
        o, d, norm = camera_rays(c2w, res, res, f)
        ids = trace_objects(o, d)
        visible = {int(i) for i in np.unique(ids) if i >= 0 and (ids == i).sum() >= 3}
        assert len(visible) >= 4, [OBJECT_NAMES[i] for i in visible]
        seen_anywhere |= visible
        _, depth = render_view(c2w, res, res, f, supersample=1)
        valid = depth[depth > 0]
        assert valid.max() - valid.min() > 1.0
    assert seen_anywhere == set(range(len(OBJECT_NAMES)))
    assert {"platform", "sphere", "cup", "box", "rod", "gate"} <= set(OBJECT_NAMES)


def test_thin_rod_is_visible_as_a_run_of_at_most_three_pixels() -> None:
    res = 64
    f = focal_from_width(res)
    c2w = orbit(20.0, 30.0)
    o, d, _ = camera_rays(c2w, res, res, f)
    rod = (trace_objects(o, d) == OBJECT_NAMES.index("rod")).reshape(res, res)
    rows = [np.nonzero(r)[0] for r in rod if r.any()]
    assert len(rows) >= 10  # a long vertical structure
    assert all(r.max() - r.min() + 1 <= 3 for r in rows)  # ... that is only 1-3 px wide


def test_cup_interior_is_visible_from_above() -> None:
    """The concavity: looking down into the cup we see its inner wall and floor, deeper than the rim."""
    res = 33
    c2w = look_at((-0.5, 0.45, CAMERA_RADIUS), (-0.5, 0.45, 0.0))
    o, d, norm = camera_rays(c2w, res, res, focal_from_width(res))
    t, n, _ = trace(o, d)
    cup = trace_objects(o, d) == OBJECT_NAMES.index("cup")
    z = t / norm
    rim = cup & np.isclose(z, CAMERA_RADIUS - 0.15, atol=1e-6)
    floor = cup & np.isclose(z, CAMERA_RADIUS + 0.5, atol=1e-6)
    inner_wall = cup & (np.abs(n[:, 2]) < 1e-6) & (z > CAMERA_RADIUS - 0.15)
    assert rim.sum() > 5 and floor.sum() > 20 and inner_wall.sum() > 5
    # the inner wall's normals face the cup's axis (towards the viewer inside the cavity)
    p = o[inner_wall] + t[inner_wall, None] * d[inner_wall]
    radial = p[:, :2] - np.array([-0.5, 0.45])
    assert np.all(np.einsum("ij,ij->i", n[inner_wall, :2], radial) < 0)


def test_scene_fits_in_its_bounding_box() -> None:
    """Rays cast along each axis from outside ``[-1.3, 1.3]^3`` only hit at |coordinate| <= 1.3."""
    g = np.linspace(-1.6, 1.6, 81)
    a, b = np.meshgrid(g, g, indexing="ij")
    a, b = a.ravel(), b.ravel()
    for axis in range(3):
        for sign in (-1.0, 1.0):
            o = np.zeros((a.size, 3))
            others = [i for i in range(3) if i != axis]
            o[:, others[0]], o[:, others[1]], o[:, axis] = a, b, sign * 5.0
            d = np.zeros_like(o)
            d[:, axis] = -sign
            t = trace(o, d)[0]
            hit = np.isfinite(t)
            assert hit.any()
            assert np.all(np.abs(o[hit] + t[hit, None] * d[hit]) <= SCENE_BOUND + 1e-9)
