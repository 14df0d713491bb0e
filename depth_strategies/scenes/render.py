"""Rendering of the built-in scene: numpy ray casting, Lambertian shading and cameras.

Shading is Lambertian and view-independent: ``colour = albedo * (AMBIENT + DIFFUSE * max(0, n . LIGHT_DIR))``
with the normal facing the incoming ray; there is no specular term and no shadowing, so a surface point has the
same colour in every view.

Conventions (nerfstudio's): camera-to-world matrices are Blender/OpenGL (camera looks down its -z axis, +y up),
``focal = 0.5 * W / tan(0.5 * camera_angle_x)``, ``cx = W / 2``, ``cy = H / 2`` and the ray through pixel
``(u, v)`` at sub-pixel offset ``(ox, oy)`` has camera-space direction ``((u+ox-cx)/f, -(v+oy-cy)/f, -1)``.
Depth maps are z-depth (planar depth along the camera's viewing axis, like Blender's Z pass).

No rasteriser, no network, no randomness except the camera poses, which come from ``numpy.random.default_rng``
seeded from ``(seed, split)``.
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from depth_strategies.scenes.geometry import SCENE, Array, Sheet

CAMERA_ANGLE_X: float = 0.6911112070083618
"""Horizontal field of view in radians (the NeRF-synthetic value), written as ``camera_angle_x``."""

CAMERA_RADIUS: float = 4.0311
"""Distance of every sampled camera from the origin (the same as NeRF-synthetic lego)."""

ELEVATION_RANGE_DEG: tuple[float, float] = (10.0, 70.0)
"""Camera elevations above the xy plane are drawn uniformly from this range (degrees); azimuth is uniform."""

LIGHT_DIR: NDArray[np.float64] = np.array([0.5, -0.3, 0.8]) / np.linalg.norm([0.5, -0.3, 0.8])
"""Unit vector pointing from the surface towards the fixed directional light (world frame)."""
LIGHT_DIR.setflags(write=False)

AMBIENT: float = 0.3
"""Ambient term of the Lambertian shading."""

DIFFUSE: float = 0.7
"""Diffuse term of the Lambertian shading (AMBIENT + DIFFUSE = 1, so colours never exceed the albedo)."""


# ----------------------------------------------------------------------------------------------------------------
# Ray tracing and rendering
# ----------------------------------------------------------------------------------------------------------------


def _trace_full(
    origins: Array, directions: Array, sheets: Sequence[Sheet] = SCENE
) -> tuple[Array, Array, Array, NDArray[np.int64]]:
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    if len(o) != len(d):
        o = np.broadcast_to(o, d.shape)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    best_t = np.full(len(d), np.inf)
    best = np.full(len(d), -1, dtype=np.int64)
    names = tuple(dict.fromkeys(s.obj for s in sheets))
    for k, sheet in enumerate(sheets):
        t = sheet.intersect(o, d)
        closer = t < best_t
        best_t = np.where(closer, t, best_t)
        best[closer] = k
    normals = np.zeros_like(d)
    albedo = np.zeros_like(d)
    obj_ids = np.full(len(d), -1, dtype=np.int64)
    for k in np.unique(best[best >= 0]):
        m = best == k
        n, a = sheets[k].shade_info(o[m] + best_t[m, None] * d[m])
        flip = np.einsum("ij,ij->i", n, d[m]) > 0.0
        n[flip] *= -1.0
        normals[m] = n
        albedo[m] = a
        obj_ids[m] = names.index(sheets[k].obj)
    return best_t, normals, albedo, obj_ids


def trace(origins: Array, directions: Array, sheets: Sequence[Sheet] = SCENE) -> tuple[Array, Array, Array]:
    """Cast rays into the scene and return the nearest hit.

    Args:
        origins: ``[N, 3]`` ray origins (world frame); ``[3]`` or ``[1, 3]`` broadcasts to all rays.
        directions: ``[N, 3]`` ray directions; they need not be unit length: they are normalised inside.
        sheets: the scene (default: the built-in object scene; :mod:`depth_strategies.scenes.room` has a room).

    Returns:
        ``t``: ``[N]`` Euclidean distance from the origin to the hit point along the *unit* direction
        (``np.inf`` where the ray misses everything); ``normals``: ``[N, 3]`` unit surface normals facing the
        incoming ray (zeros for misses); ``albedo``: ``[N, 3]`` albedo in ``[0, 1]`` (zeros for misses).
    """
    t, n, a, _ = _trace_full(origins, directions, sheets)
    return t, n, a


def trace_objects(origins: Array, directions: Array) -> NDArray[np.int64]:
    """Index into :data:`OBJECT_NAMES` of the object each ray hits first (-1 for a miss)."""
    return _trace_full(origins, directions)[3]


def shade(normals: Array, albedo: Array) -> Array:
    """View-independent Lambertian colour ``albedo * (AMBIENT + DIFFUSE * max(0, n . LIGHT_DIR))`` in [0, 1]."""
    lambert = np.maximum(normals @ LIGHT_DIR, 0.0)
    return np.clip(albedo * (AMBIENT + DIFFUSE * lambert)[:, None], 0.0, 1.0)


def focal_from_width(width: int, camera_angle_x: float = CAMERA_ANGLE_X) -> float:
    """Focal length in pixels, as nerfstudio's Blender parser computes it."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def camera_rays(
    c2w: Array, width: int, height: int, focal: float, offsets: tuple[float, float] = (0.5, 0.5)
) -> tuple[Array, Array, Array]:
    """Rays of every pixel of a pinhole camera (nerfstudio/Blender conventions, principal point at the centre).

    Args:
        c2w: ``[4, 4]`` or ``[3, 4]`` OpenGL camera-to-world matrix (camera looks down its -z axis, +y up).
        width, height: image size in pixels.
        focal: focal length in pixels.
        offsets: sub-pixel position ``(ox, oy)`` of the ray inside each pixel; ``(0.5, 0.5)`` is the centre.

    Returns:
        ``origins`` ``[H*W, 3]``, unit world ``directions`` ``[H*W, 3]`` and ``directions_norm`` ``[H*W]``, the
        norm of the camera-space direction ``((u+ox-cx)/f, -(v+oy-cy)/f, -1)``. Rows are in row-major pixel order
        (``index = v * W + u``). The z-depth of a hit at distance ``t`` along the unit direction is
        ``t / directions_norm``.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    rot, pos = c2w[:3, :3], c2w[:3, 3]
    cx, cy = width / 2.0, height / 2.0
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    dirs_cam = np.stack([(u + offsets[0] - cx) / focal, -(v + offsets[1] - cy) / focal, -np.ones_like(u)], axis=-1)
    dirs_cam = dirs_cam.reshape(-1, 3)
    norm = np.linalg.norm(dirs_cam, axis=1)
    dirs = (dirs_cam / norm[:, None]) @ rot.T
    origins = np.broadcast_to(pos, dirs.shape).copy()
    return origins, dirs, norm


def subpixel_offsets(supersample: int) -> list[tuple[float, float]]:
    """Stratified sub-pixel positions used by :func:`render_view`: centres of a ``s x s`` grid of strata."""
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    s = supersample
    return [((i + 0.5) / s, (j + 0.5) / s) for j in range(s) for i in range(s)]


def render_view(
    c2w: Array, width: int, height: int, focal: float, supersample: int = 2, sheets: Sequence[Sheet] = SCENE
) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """Render one view.

    Returns:
        ``rgba``: ``[H, W, 4]`` uint8, alpha = fraction of the ``supersample^2`` sub-pixel rays that hit (0 exactly
        when none hits, 255 exactly when all hit), RGB = mean shaded colour over the hitting sub-rays (straight
        alpha; 0 where nothing is hit). ``z_depth``: ``[H, W]`` float32 planar depth of the hit of the ray through
        the pixel centre, 0.0 where that ray misses.
    """
    offsets = subpixel_offsets(supersample)
    n_hits = np.zeros(width * height, dtype=np.int64)
    rgb_sum = np.zeros((width * height, 3))
    centre_t: Array | None = None
    for off in offsets:
        o, d, _ = camera_rays(c2w, width, height, focal, off)
        t, n, a = trace(o, d, sheets)
        hit = np.isfinite(t)
        rgb_sum += np.where(hit[:, None], shade(n, a), 0.0)
        n_hits += hit
        if off == (0.5, 0.5):
            centre_t = t
    o, d, norm = camera_rays(c2w, width, height, focal, (0.5, 0.5))
    if centre_t is None:
        centre_t = trace(o, d, sheets)[0]
    count = len(offsets)
    alpha = np.round(255.0 * n_hits / count)
    partial = (n_hits > 0) & (n_hits < count)
    alpha = np.where(partial, np.clip(alpha, 1, 254), alpha)
    rgb = np.where(n_hits[:, None] > 0, rgb_sum / np.maximum(n_hits, 1)[:, None], 0.0)
    rgba = np.concatenate([np.round(rgb * 255.0), alpha[:, None]], axis=1).astype(np.uint8).reshape(height, width, 4)
    depth = np.where(np.isfinite(centre_t), centre_t / norm, 0.0).astype(np.float32).reshape(height, width)
    return rgba, depth


# ----------------------------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------------------------


def look_at(
    eye: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0), up: Sequence[float] = (0.0, 0.0, 1.0)
) -> Array:
    """``[4, 4]`` OpenGL camera-to-world matrix at ``eye`` looking at ``target`` (falls back to +y up when the
    view direction is parallel to ``up``)."""
    eye_a = np.asarray(eye, dtype=np.float64)
    back = eye_a - np.asarray(target, dtype=np.float64)
    back /= np.linalg.norm(back)
    up_a = np.asarray(up, dtype=np.float64)
    right = np.cross(up_a, back)
    if np.linalg.norm(right) < 1e-9:
        right = np.cross(np.array([0.0, 1.0, 0.0]), back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, cam_up, back, eye_a
    return c2w


def _split_seed(seed: int, split: str) -> list[int]:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return [int(seed), zlib.crc32(split.encode("utf-8"))]


def sample_cameras(n: int, seed: int, split: str) -> Array:
    """``[n, 4, 4]`` camera-to-world matrices on the upper hemisphere of radius :data:`CAMERA_RADIUS`, looking at
    the origin; elevation uniform in :data:`ELEVATION_RANGE_DEG`, azimuth uniform. Seeded from ``(seed, split)``
    so that splits differ and the same arguments give the same cameras."""
    rng = np.random.default_rng(_split_seed(seed, split))
    lo, hi = (math.radians(x) for x in ELEVATION_RANGE_DEG)
    elev = rng.uniform(lo, hi, size=n)
    azim = rng.uniform(0.0, 2.0 * math.pi, size=n)
    eyes = CAMERA_RADIUS * np.stack([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)], -1)
    return np.stack([look_at(e) for e in eyes]) if n > 0 else np.zeros((0, 4, 4))
