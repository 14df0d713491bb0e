"""Multi-view consistency of the training depth: how far each image's depth disagrees with its neighbours'.

A depth map that is right up to noise agrees with the other views: a surface point seen by image ``i`` at ray
distance ``D_i`` lands, in a neighbouring view ``j``, on or *behind* the surface that ``j`` sees there (behind when
something occludes it from ``j``). A monocular estimate with its own scale and shift per image, a wrong depth
unit, or a misregistered frame puts the points in front of what the neighbours see. This is the geometric check of
multi-view stereo fusion (Schoenberger et al., "Pixelwise View Selection for Unstructured Multi-View Stereo", ECCV
2016; Galliani et al., Gipuma, ICCV 2015) reduced to one robust number per image, in the depth's own unit:

* residuals ``r = |p - o_j| - D_j(pi_j(p))`` of image ``i``'s surface points ``p`` that project onto a surface
  pixel of view ``j`` (:func:`reprojection_residuals`): about 0 where both depths are right, > 0 where ``j`` sees
  an occluder, < 0 where the points float in front of ``j``'s surface;
* the pair's violation ``v_ij = max(0, -Q_q(r))``, ``Q_q`` the lower quartile (:func:`pair_violation`):
  occlusions only raise residuals, so they cannot make it large; for depths with independent Gaussian errors of
  standard deviation s and no occlusion it is 0.674 * sqrt(2) s = 0.95 s;
* a pair disagrees by ``c_ij = max(v_ij, v_ji)`` (a scale too small in ``i`` shows as ``v_ij``, too large as
  ``v_ji``), and image ``i``'s inconsistency is the median of ``c_ij`` over its nearest views
  (:func:`consistency_sigma`): one bad image does not taint its neighbours, whose other pairs agree.

Cameras are pinhole in nerfstudio's convention (camera to world, OpenGL axes: the camera looks down -z, +y up);
lens distortion is ignored. Depths are distances along each pixel's ray through the pixel centre.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Bool, Float, Int

Intrinsics = Tuple[float, float, float, float]
"""(fx, fy, cx, cy) in pixels."""

OCCLUSION_QUANTILE = 0.25
"""Q_q of the residuals: the lower quartile, which occlusions (positive residuals) cannot pull down unless they
cover three quarters of the matched points (views far apart; the nearest views are used)."""
MIN_MATCHES = 50
"""A pair with fewer matched points (sparse depth, little overlap) has no violation (NaN): not enough evidence."""
NEIGHBOURS = 4
"""Views each image is compared with: its nearest by viewing direction."""
MAX_POINTS = 4096
"""Surface points of each image that are reprojected (a fixed random subset), which bounds the cost for large
images and many views."""


def rays_through(
    intrinsics: Intrinsics, rows: Int[np.ndarray, "*bs"], cols: Int[np.ndarray, "*bs"]
) -> Float[np.ndarray, "*bs 3"]:
    """Unit direction, in camera coordinates (OpenGL axes), of the ray through the centre of each pixel (row, col)."""
    fx, fy, cx, cy = intrinsics
    u, v = np.asarray(cols, np.float64), np.asarray(rows, np.float64)
    rays = np.stack([(u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -np.ones_like(u)], axis=-1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def pixel_rays(intrinsics: Intrinsics, height: int, width: int) -> Float[np.ndarray, "height width 3"]:
    """:func:`rays_through` every pixel of an image."""
    rows, cols = np.mgrid[:height, :width]
    return rays_through(intrinsics, rows, cols)


def reprojection_residuals(
    points: Float[np.ndarray, "num_points 3"],
    c2w_j: Float[np.ndarray, "3 4"],
    intrinsics_j: Intrinsics,
    depth_j: Float[np.ndarray, "height width"],
    surface_j: Bool[np.ndarray, "height width"],
) -> Float[np.ndarray, "num_matched"]:  # noqa: F821
    """``|p - o_j| - D_j`` at the pixel of view ``j`` that each world point ``p`` projects into (the pixel whose
    square holds the projection), for the points in front of ``j`` that land on one of its surface pixels.

    Points landing on pixels ``j`` knows to be empty are not counted: depth noise alone moves points next to a
    silhouette across it (at 40 degrees between views, 0.4 units of noise move a point by about 18 px of 200), and
    with sparse depth those would outnumber the surface matches."""
    fx, fy, cx, cy = intrinsics_j
    rotation, origin = c2w_j[:, :3], c2w_j[:, 3]
    local = (points - origin) @ rotation  # world -> camera: R^T (p - o), row vectors
    ahead = -local[:, 2]
    front = ahead > 1e-9
    safe = np.where(front, ahead, 1.0)
    u = fx * local[:, 0] / safe + cx
    v = -fy * local[:, 1] / safe + cy
    height, width = depth_j.shape
    col, row = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    inside = front & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col, row = col[inside], row[inside]
    hit = surface_j[row, col]
    distance = np.linalg.norm(local[inside], axis=-1)
    return distance[hit] - depth_j[row, col][hit]


def pair_violation(
    residuals: Float[np.ndarray, "num_matched"],  # noqa: F821
    quantile: float = OCCLUSION_QUANTILE,
    min_matches: int = MIN_MATCHES,
) -> float:
    """``max(0, -Q_q(r))``: how far the lower ``quantile`` of the residuals lies in front of the other view's
    surface; NaN with fewer than ``min_matches`` residuals."""
    if residuals.size < min_matches:
        return float("nan")
    return max(0.0, -float(np.quantile(residuals, quantile)))


def nearest_views(c2ws: Float[np.ndarray, "num_images 3 4"], k: int) -> Int[np.ndarray, "num_images k"]:
    """The ``k`` other views whose viewing direction (-z axis) is closest in angle to each view's (fewer when there
    are fewer views), ties broken by index."""
    forward = -c2ws[:, :, 2]
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    cosine = forward @ forward.T
    np.fill_diagonal(cosine, -np.inf)
    k = min(k, len(c2ws) - 1)
    return np.argsort(-cosine, axis=1, kind="stable")[:, :k]


def surface_points(
    depth: Float[np.ndarray, "height width"],
    surface: Bool[np.ndarray, "height width"],
    c2w: Float[np.ndarray, "3 4"],
    intrinsics: Intrinsics,
    max_points: Optional[int] = MAX_POINTS,
    rng: Optional[np.random.Generator] = None,
) -> Float[np.ndarray, "num_points 3"]:
    """World points of an image's surface pixels (at most ``max_points``, a random subset drawn with ``rng``)."""
    rows, cols = np.nonzero(surface)
    if max_points is not None and rows.size > max_points:
        pick = (rng or np.random.default_rng(0)).choice(rows.size, size=max_points, replace=False)
        rows, cols = rows[pick], cols[pick]
    rays = rays_through(intrinsics, rows, cols)
    return c2w[:, 3] + (rays * depth[rows, cols, None]) @ c2w[:, :3].T


def consistency_sigma(
    depths: Sequence[Float[np.ndarray, "height width"]],
    surfaces: Sequence[Bool[np.ndarray, "height width"]],
    c2ws: Float[np.ndarray, "num_images 3 4"],
    intrinsics: Sequence[Intrinsics],
    neighbours: int = NEIGHBOURS,
    max_points: Optional[int] = MAX_POINTS,
    seed: int = 0,
) -> Float[np.ndarray, "num_images"]:  # noqa: F821
    """Each image's inconsistency with its nearest views, in the depths' unit: the median over its ``neighbours``
    nearest views ``j`` of ``max(v_ij, v_ji)`` (:func:`pair_violation`); 0 where no pair has enough matches (a
    sparse or lonely depth map is not judged, nor one so short that its points leave the neighbours' views)."""
    num = len(depths)
    if num < 2:
        return np.zeros(num)
    rng = np.random.default_rng(seed)
    points = [surface_points(d, s, c, k, max_points, rng) for d, s, c, k in zip(depths, surfaces, c2ws, intrinsics)]
    near = nearest_views(c2ws, neighbours)
    # both directions of every (image, neighbour) pair
    pairs = {(i, int(j)) for i in range(num) for j in near[i]}
    violation = np.full((num, num), np.nan)
    for i, j in pairs | {(j, i) for i, j in pairs}:
        violation[i, j] = pair_violation(
            reprojection_residuals(points[i], c2ws[j], intrinsics[j], depths[j], surfaces[j])
        )
    pair = np.fmax(violation, violation.T)
    sigma = np.zeros(num)
    for i in range(num):
        values = pair[i, near[i]]
        values = values[~np.isnan(values)]
        sigma[i] = float(np.median(values)) if values.size else 0.0
    return sigma
