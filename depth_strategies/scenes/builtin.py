"""Built-in analytic test scene and its Blender/NeRF-synthetic dataset writer (``ds-make-scene``).

The scene is made of analytic surfaces only (spheres, finite cylinders, disks/annuli, oriented boxes) and is
rendered by vectorised numpy ray casting: no rasteriser, no network, no randomness except the camera poses,
which come from ``numpy.random.default_rng`` seeded from ``(seed, split)``. Same arguments give byte-identical
files.

Everything lies inside ``[-1.3, 1.3]^3`` (nerfstudio's Blender scene box is ``[-1.5, 1.5]^3``):

============  ==========================================================================================
object        geometry (world units, world +z up)
============  ==========================================================================================
platform      flat cylinder, radius 1.2 about the z axis, z in [-0.75, -0.6]; checkerboard top (cells 0.25),
              striped side
sphere        centre (0.45, 0.40, -0.15), radius 0.45 (rests on the platform); latitude/longitude checker
cup           hollow cylinder at (x, y) = (-0.5, 0.45): outer radius 0.35, inner radius 0.28, z in
              [-0.6, 0.15], open top, inner floor at z = -0.5 (the concavity, seen from above); striped
              outer wall, striped inner wall, rim, floor
box           centre (0.40, -0.50, -0.30), half extents (0.30, 0.22, 0.30), rotated 30 deg about z;
              two-tone diagonal stripes
centre rod    thin vertical cylinder at (0, 0), radius 0.04, z in [-0.6, 0.75], capped; banded
gate          two thin posts at (-0.8, -0.3) and (-0.3, -0.8), radius 0.035, z in [-0.6, 0.35], joined by a
              horizontal bar of radius 0.03 at z = 0.3
============  ==========================================================================================

Shading is Lambertian and view-independent: ``colour = albedo * (AMBIENT + DIFFUSE * max(0, n . LIGHT_DIR))``
with the normal facing the incoming ray; there is no specular term and no shadowing, so a surface point has the
same colour in every view.

Conventions (nerfstudio's): camera-to-world matrices are Blender/OpenGL (camera looks down its -z axis, +y up),
``focal = 0.5 * W / tan(0.5 * camera_angle_x)``, ``cx = W / 2``, ``cy = H / 2`` and the ray through pixel
``(u, v)`` at sub-pixel offset ``(ox, oy)`` has camera-space direction ``((u+ox-cx)/f, -(v+oy-cy)/f, -1)``.
Depth maps are z-depth (planar depth along the camera's viewing axis, like Blender's Z pass).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tyro
from numpy.typing import NDArray

# ----------------------------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------------------------

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

SCENE_BOUND: float = 1.3
"""Every object lies inside ``[-SCENE_BOUND, SCENE_BOUND]^3``."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Dataset splits written by :func:`make_scene`."""

GENERATOR_NAME: str = "ds-make-scene"
"""Value of ``generator.name`` in the transforms files; used to recognise a previous output folder."""

GENERATOR_VERSION: int = 1
"""Bumped whenever the scene or the file layout changes."""

MARKER_NAME: str = ".ds-make-scene"
"""Marker file written first into an output folder, so an interrupted run can be overwritten by a rerun."""

_EPS: float = 1e-9
"""Smallest accepted ray distance (avoids self-hits at the ray origin)."""

Array = NDArray[np.float64]


# ----------------------------------------------------------------------------------------------------------------
# Colours and procedural textures
# ----------------------------------------------------------------------------------------------------------------

RED = (0.85, 0.12, 0.10)
WHITE = (0.95, 0.95, 0.95)
CREAM = (0.90, 0.85, 0.55)
TEAL = (0.08, 0.45, 0.50)
GREEN = (0.10, 0.70, 0.20)
YELLOW = (0.95, 0.85, 0.10)
PURPLE = (0.55, 0.20, 0.80)
ORANGE = (1.00, 0.55, 0.10)
BLUE = (0.15, 0.30, 0.90)
BLACK = (0.08, 0.08, 0.08)
CYAN = (0.10, 0.80, 0.85)
MAGENTA = (0.90, 0.10, 0.60)
GREY = (0.50, 0.50, 0.50)

Texture = Callable[[Array], Array]
"""Maps hit points in a sheet's local frame ``[N, 3]`` to albedo ``[N, 3]`` in ``[0, 1]``."""


def _two_tone(parity: NDArray[np.int64], a: Sequence[float], b: Sequence[float]) -> Array:
    """Colour ``a`` where ``parity`` is even, ``b`` where odd."""
    odd = (parity % 2).astype(bool)[:, None]
    return np.where(odd, np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64))


def solid(colour: Sequence[float]) -> Texture:
    """Uniform albedo."""
    c = np.asarray(colour, dtype=np.float64)
    return lambda p: np.broadcast_to(c, p.shape).copy()


def checker_xy(period: float, a: Sequence[float], b: Sequence[float]) -> Texture:
    """Checkerboard in the local x/y coordinates with square cells of side ``period``."""
    return lambda p: _two_tone(
        np.floor(p[:, 0] / period).astype(np.int64) + np.floor(p[:, 1] / period).astype(np.int64), a, b
    )


def bands_z(period: float, a: Sequence[float], b: Sequence[float]) -> Texture:
    """Horizontal bands along the local z axis, each ``period / 2`` wide."""
    return lambda p: _two_tone(np.floor(2.0 * p[:, 2] / period).astype(np.int64), a, b)


def angular_stripes(count: int, a: Sequence[float], b: Sequence[float]) -> Texture:
    """``count`` vertical stripes around the local z axis (``count`` should be even)."""
    return lambda p: _two_tone(
        np.floor((np.arctan2(p[:, 1], p[:, 0]) + math.pi) / (2.0 * math.pi) * count).astype(np.int64), a, b
    )


def lat_long_checker(lat_bands: int, long_bands: int, a: Sequence[float], b: Sequence[float]) -> Texture:
    """Latitude/longitude checker on a sphere centred at the local origin."""

    def texture(p: Array) -> Array:
        r = np.linalg.norm(p, axis=1)
        theta = np.arccos(np.clip(p[:, 2] / np.maximum(r, 1e-12), -1.0, 1.0))
        phi = np.arctan2(p[:, 1], p[:, 0]) + math.pi
        i = np.floor(theta / math.pi * lat_bands).astype(np.int64)
        j = np.floor(phi / (2.0 * math.pi) * long_bands).astype(np.int64)
        return _two_tone(i + j, a, b)

    return texture


def diagonal_stripes(period: float, a: Sequence[float], b: Sequence[float]) -> Texture:
    """Stripes along the planes ``x + y + z = const`` (local frame), each ``period / 2`` wide."""
    return lambda p: _two_tone(np.floor(2.0 * p.sum(axis=1) / period).astype(np.int64), a, b)


# ----------------------------------------------------------------------------------------------------------------
# Analytic surface sheets
# ----------------------------------------------------------------------------------------------------------------

_IDENTITY = np.eye(3)
_IDENTITY.setflags(write=False)


def rotation_z(angle_deg: float) -> Array:
    """Rotation matrix about the world z axis (columns are the rotated x, y, z axes)."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def frame_from_axis(axis: Sequence[float]) -> Array:
    """Rotation whose third column (the local z axis) is ``axis`` normalised."""
    z = np.asarray(axis, dtype=np.float64)
    z = z / np.linalg.norm(z)
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


@dataclass(frozen=True, eq=False)
class Sheet:
    """One analytic surface piece, defined in a local frame ``p_local = (p_world - center) @ rotation``.

    Subclasses implement :meth:`intersect_local` (ray distance, ``inf`` for a miss) and :meth:`normal_local`
    (any unit normal; it is flipped to face the ray by :func:`trace`).
    """

    obj: str
    """Name of the object this sheet belongs to (see :data:`OBJECT_NAMES`)."""
    center: tuple[float, float, float]
    rotation: Array
    texture: Texture

    def __post_init__(self) -> None:
        rotation = np.array(self.rotation, dtype=np.float64)
        rotation.setflags(write=False)
        object.__setattr__(self, "rotation", rotation)

    def to_local(self, points: Array, directions: Array) -> tuple[Array, Array]:
        """Transform world points and directions into the local frame."""
        return (points - np.asarray(self.center)) @ self.rotation, directions @ self.rotation

    def intersect(self, origins: Array, directions: Array) -> Array:
        """Distance along the (world) rays to the first hit with ``t > _EPS``; ``inf`` where there is none."""
        o, d = self.to_local(origins, directions)
        return self.intersect_local(o, d)

    def shade_info(self, points: Array) -> tuple[Array, Array]:
        """World-frame unit normals and albedo at world ``points`` lying on the sheet."""
        p = (points - np.asarray(self.center)) @ self.rotation
        n = self.normal_local(p) @ self.rotation.T
        return n, np.clip(self.texture(p), 0.0, 1.0)

    def intersect_local(self, o: Array, d: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def normal_local(self, p: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError


def _first_positive(t1: Array, ok1: NDArray[np.bool_], t2: Array, ok2: NDArray[np.bool_]) -> Array:
    """Nearest of two candidate roots (``t1 <= t2``) that is valid and beyond ``_EPS``."""
    ok1 = ok1 & (t1 > _EPS)
    ok2 = ok2 & (t2 > _EPS)
    return np.where(ok1, t1, np.where(ok2, t2, np.inf))


@dataclass(frozen=True, eq=False)
class SphereSheet(Sheet):
    """Sphere of ``radius`` about the local origin."""

    radius: float = 1.0

    def intersect_local(self, o: Array, d: Array) -> Array:
        a = np.einsum("ij,ij->i", d, d)
        b = np.einsum("ij,ij->i", o, d)
        c = np.einsum("ij,ij->i", o, o) - self.radius**2
        disc = b * b - a * c
        ok = disc >= 0.0
        sq = np.sqrt(np.where(ok, disc, 0.0))
        return _first_positive((-b - sq) / a, ok, (-b + sq) / a, ok)

    def normal_local(self, p: Array) -> Array:
        return p / np.linalg.norm(p, axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class CylinderSheet(Sheet):
    """Open side of a cylinder of ``radius`` about the local z axis, for local z in ``[z0, z1]``."""

    radius: float = 1.0
    z0: float = 0.0
    z1: float = 1.0

    def intersect_local(self, o: Array, d: Array) -> Array:
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
        c = o[:, 0] ** 2 + o[:, 1] ** 2 - self.radius**2
        a_safe = np.where(a > 1e-18, a, 1.0)
        disc = b * b - a * c
        ok = (disc >= 0.0) & (a > 1e-18)
        sq = np.sqrt(np.where(ok, disc, 0.0))
        t1 = (-b - sq) / a_safe
        t2 = (-b + sq) / a_safe
        z1 = o[:, 2] + t1 * d[:, 2]
        z2 = o[:, 2] + t2 * d[:, 2]
        ok1 = ok & (z1 >= self.z0) & (z1 <= self.z1)
        ok2 = ok & (z2 >= self.z0) & (z2 <= self.z1)
        return _first_positive(t1, ok1, t2, ok2)

    def normal_local(self, p: Array) -> Array:
        n = np.zeros_like(p)
        n[:, :2] = p[:, :2]
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True, eq=False)
class DiskSheet(Sheet):
    """Annulus ``r_in <= r <= r_out`` in the local plane ``z = height`` (a disk when ``r_in == 0``)."""

    height: float = 0.0
    r_in: float = 0.0
    r_out: float = 1.0

    def intersect_local(self, o: Array, d: Array) -> Array:
        dz = d[:, 2]
        ok = np.abs(dz) > 1e-18
        t = (self.height - o[:, 2]) / np.where(ok, dz, 1.0)
        x = o[:, 0] + t * d[:, 0]
        y = o[:, 1] + t * d[:, 1]
        r2 = x * x + y * y
        ok &= (r2 <= self.r_out**2) & (r2 >= self.r_in**2) & (t > _EPS)
        return np.where(ok, t, np.inf)

    def normal_local(self, p: Array) -> Array:
        n = np.zeros_like(p)
        n[:, 2] = 1.0
        return n


@dataclass(frozen=True, eq=False)
class BoxSheet(Sheet):
    """Closed box ``|x_i| <= half[i]`` in the local frame (all six faces, slab intersection)."""

    half: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def intersect_local(self, o: Array, d: Array) -> Array:
        h = np.asarray(self.half)
        d_safe = np.where(np.abs(d) < 1e-15, 1e-15, d)
        ta = (-h - o) / d_safe
        tb = (h - o) / d_safe
        t_enter = np.minimum(ta, tb).max(axis=1)
        t_exit = np.maximum(ta, tb).min(axis=1)
        ok = (t_enter <= t_exit) & (t_exit > _EPS)
        t = np.where(t_enter > _EPS, t_enter, t_exit)
        return np.where(ok, t, np.inf)

    def normal_local(self, p: Array) -> Array:
        q = np.abs(p) / np.asarray(self.half)
        axis = np.argmax(q, axis=1)
        n = np.zeros_like(p)
        n[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
        return n


def _capped_cylinder(
    obj: str,
    base: Sequence[float],
    radius: float,
    height: float,
    side: Texture,
    cap: Texture,
    rotation: Array = _IDENTITY,
) -> list[Sheet]:
    """Closed cylinder: side plus bottom and top disks, from ``base`` along the frame's z axis for ``height``."""
    c = (float(base[0]), float(base[1]), float(base[2]))
    return [
        CylinderSheet(obj, c, rotation, side, radius=radius, z0=0.0, z1=height),
        DiskSheet(obj, c, rotation, cap, height=0.0, r_out=radius),
        DiskSheet(obj, c, rotation, cap, height=height, r_out=radius),
    ]


def build_scene() -> tuple[Sheet, ...]:
    """All surface sheets of the built-in scene (closed solids; see the module docstring for the layout)."""
    sheets: list[Sheet] = []
    # Platform: flat cylinder, checkerboard top.
    sheets += [
        CylinderSheet(
            "platform", (0.0, 0.0, -0.75), _IDENTITY, angular_stripes(24, RED, WHITE), radius=1.2, z0=0.0, z1=0.15
        ),
        DiskSheet("platform", (0.0, 0.0, -0.75), _IDENTITY, checker_xy(0.25, CREAM, TEAL), height=0.15, r_out=1.2),
        DiskSheet("platform", (0.0, 0.0, -0.75), _IDENTITY, solid(GREY), height=0.0, r_out=1.2),
    ]
    # Sphere resting on the platform.
    sheets.append(
        SphereSheet("sphere", (0.45, 0.40, -0.15), _IDENTITY, lat_long_checker(8, 12, RED, WHITE), radius=0.45)
    )
    # Cup: open top, inner floor at z = -0.5; it stands on the platform, whose top closes it from below.
    cup = (-0.5, 0.45, -0.6)
    sheets += [
        CylinderSheet("cup", cup, _IDENTITY, bands_z(0.1, GREEN, YELLOW), radius=0.35, z0=0.0, z1=0.75),
        CylinderSheet("cup", cup, _IDENTITY, angular_stripes(16, PURPLE, WHITE), radius=0.28, z0=0.1, z1=0.75),
        DiskSheet("cup", cup, _IDENTITY, solid(WHITE), height=0.75, r_in=0.28, r_out=0.35),
        DiskSheet("cup", cup, _IDENTITY, solid(ORANGE), height=0.1, r_out=0.28),
    ]
    # Rotated box with two-tone diagonal stripes.
    sheets.append(
        BoxSheet(
            "box", (0.40, -0.50, -0.30), rotation_z(30.0), diagonal_stripes(0.2, BLUE, ORANGE), half=(0.30, 0.22, 0.30)
        )
    )
    # Thin structures: a centre rod and a gate (two posts and a horizontal bar).
    sheets += _capped_cylinder("rod", (0.0, 0.0, -0.6), 0.04, 1.35, bands_z(0.2, BLACK, YELLOW), solid(YELLOW))
    post_a, post_b = np.array([-0.8, -0.3, 0.3]), np.array([-0.3, -0.8, 0.3])
    for base in (post_a, post_b):
        sheets += _capped_cylinder("gate", (base[0], base[1], -0.6), 0.035, 0.95, solid(CYAN), solid(CYAN))
    sheets += _capped_cylinder(
        "gate",
        post_a,
        0.03,
        float(np.linalg.norm(post_b - post_a)),
        bands_z(0.1, MAGENTA, WHITE),
        solid(MAGENTA),
        rotation=frame_from_axis(post_b - post_a),
    )
    return tuple(sheets)


SCENE: tuple[Sheet, ...] = build_scene()
"""The immutable list of sheets traced by :func:`trace`."""

OBJECT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(s.obj for s in SCENE))
"""Object names in scene order; :func:`trace_objects` returns indices into this tuple (-1 for a miss)."""


# ----------------------------------------------------------------------------------------------------------------
# Ray tracing and rendering
# ----------------------------------------------------------------------------------------------------------------


def _trace_full(origins: Array, directions: Array) -> tuple[Array, Array, Array, NDArray[np.int64]]:
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    if len(o) != len(d):
        o = np.broadcast_to(o, d.shape)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    best_t = np.full(len(d), np.inf)
    best = np.full(len(d), -1, dtype=np.int64)
    for k, sheet in enumerate(SCENE):
        t = sheet.intersect(o, d)
        closer = t < best_t
        best_t = np.where(closer, t, best_t)
        best[closer] = k
    normals = np.zeros_like(d)
    albedo = np.zeros_like(d)
    obj_ids = np.full(len(d), -1, dtype=np.int64)
    for k in np.unique(best[best >= 0]):
        m = best == k
        n, a = SCENE[k].shade_info(o[m] + best_t[m, None] * d[m])
        flip = np.einsum("ij,ij->i", n, d[m]) > 0.0
        n[flip] *= -1.0
        normals[m] = n
        albedo[m] = a
        obj_ids[m] = OBJECT_NAMES.index(SCENE[k].obj)
    return best_t, normals, albedo, obj_ids


def trace(origins: Array, directions: Array) -> tuple[Array, Array, Array]:
    """Cast rays into the scene and return the nearest hit.

    Args:
        origins: ``[N, 3]`` ray origins (world frame); ``[3]`` or ``[1, 3]`` broadcasts to all rays.
        directions: ``[N, 3]`` ray directions; they need not be unit length: they are normalised inside.

    Returns:
        ``t``: ``[N]`` Euclidean distance from the origin to the hit point along the *unit* direction
        (``np.inf`` where the ray misses everything); ``normals``: ``[N, 3]`` unit surface normals facing the
        incoming ray (zeros for misses); ``albedo``: ``[N, 3]`` albedo in ``[0, 1]`` (zeros for misses).
    """
    t, n, a, _ = _trace_full(origins, directions)
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
    c2w: Array, width: int, height: int, focal: float, supersample: int = 2
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
        t, n, a = trace(o, d)
        hit = np.isfinite(t)
        rgb_sum += np.where(hit[:, None], shade(n, a), 0.0)
        n_hits += hit
        if off == (0.5, 0.5):
            centre_t = t
    o, d, norm = camera_rays(c2w, width, height, focal, (0.5, 0.5))
    if centre_t is None:
        centre_t = trace(o, d)[0]
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


# ----------------------------------------------------------------------------------------------------------------
# File I/O
# ----------------------------------------------------------------------------------------------------------------


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = _tmp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_rgba_png(path: Path, rgba: NDArray[np.uint8]) -> None:
    """Write an RGBA uint8 image as PNG, atomically and deterministically (no metadata, fixed compression)."""
    from PIL import Image

    tmp = _tmp_path(path)
    Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA").save(
        tmp, format="PNG", compress_level=6, optimize=False
    )
    os.replace(tmp, path)


def write_depth_exr(path: Path, depth: NDArray[np.float32]) -> None:
    """Write a float32 depth map as a single-channel ("Z") ZIP-compressed scanline OpenEXR, atomically."""
    import OpenEXR

    tmp = _tmp_path(path)
    header = {"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION}
    OpenEXR.File(header, {"Z": np.ascontiguousarray(depth, dtype=np.float32)}).write(str(tmp))
    os.replace(tmp, path)


def read_depth_exr(path: Path) -> NDArray[np.float32]:
    """Read the "Z" channel of an EXR depth map as ``[H, W]`` float32."""
    import OpenEXR

    return np.asarray(OpenEXR.File(str(path)).channels()["Z"].pixels, dtype=np.float32)


def is_previous_output(out: Path) -> bool:
    """Whether ``out`` holds (possibly partial) output of ``ds-make-scene``."""
    if (out / MARKER_NAME).is_file():
        return True
    for split in SPLITS:
        try:
            meta = json.loads((out / f"transforms_{split}.json").read_text())
        except (OSError, ValueError):
            continue
        if (
            isinstance(meta, dict)
            and isinstance(meta.get("generator"), dict)
            and meta["generator"].get("name") == GENERATOR_NAME
        ):
            return True
    return False


def make_scene(
    out: Path,
    resolution: int = 128,
    views_train: int = 50,
    views_val: int = 10,
    views_test: int = 20,
    seed: int = 0,
    supersample: int = 2,
) -> Path:
    """Write the built-in scene as a Blender/NeRF-synthetic dataset with z-depth EXRs into ``out``.

    Layout: ``transforms_{train,val,test}.json`` and ``{split}/r_{i}.png`` (RGBA, transparent background) plus
    ``{split}/r_{i}_depth.exr`` (float32 "Z" channel, z-depth in scene units, 0 = no hit), and a marker file
    :data:`MARKER_NAME`. Refuses to write into a non-empty folder that is not a previous output; a previous
    output is overwritten (its old frames are removed first). Every file is written atomically.

    Returns:
        ``out``.
    """
    out = Path(out)
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    counts = {"train": views_train, "val": views_val, "test": views_test}
    for split, n in counts.items():
        if n < 1:
            raise ValueError(f"--views-{split} must be >= 1 (nerfstudio cannot load an empty split), got {n}")
    subpixel_offsets(supersample)  # validates
    _split_seed(seed, "train")  # validates
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not is_previous_output(out):
        raise FileExistsError(
            f"{out} is not empty and does not look like a previous ds-make-scene output "
            f"(no {MARKER_NAME} marker or transforms_*.json with generator '{GENERATOR_NAME}'); "
            "refusing to overwrite it: choose an empty or new folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    generator = {"name": GENERATOR_NAME, "seed": int(seed), "resolution": int(resolution), "version": GENERATOR_VERSION}
    _atomic_write_bytes(out / MARKER_NAME, (json.dumps(generator, indent=2) + "\n").encode())
    for split in SPLITS:  # remove stale frames of a previous run
        folder = out / split
        if folder.is_dir():
            for f in [*folder.glob("r_*.png"), *folder.glob("r_*_depth.exr")]:
                f.unlink()

    focal = focal_from_width(resolution)
    for split in SPLITS:
        folder = out / split
        folder.mkdir(exist_ok=True)
        frames = []
        for i, c2w in enumerate(sample_cameras(counts[split], seed, split)):
            rgba, depth = render_view(c2w, resolution, resolution, focal, supersample)
            write_rgba_png(folder / f"r_{i}.png", rgba)
            write_depth_exr(folder / f"r_{i}_depth.exr", depth)
            frames.append(
                {
                    "file_path": f"./{split}/r_{i}",
                    "transform_matrix": c2w.tolist(),
                    "depth_file_path": f"./{split}/r_{i}_depth.exr",
                }
            )
        meta = {
            "camera_angle_x": CAMERA_ANGLE_X,
            "depth_format": "exr",
            "depth_type": "z",
            "depth_scale": 1.0,
            "generator": generator,
            "frames": frames,
        }
        _atomic_write_bytes(out / f"transforms_{split}.json", (json.dumps(meta, indent=2) + "\n").encode())
    return out


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------


def make_scene_cli(
    out: tyro.conf.Positional[Path],
    resolution: int = 128,
    views_train: int = 50,
    views_val: int = 10,
    views_test: int = 20,
    seed: int = 0,
    supersample: int = 2,
) -> None:
    """Write the built-in analytic test scene as a Blender/NeRF-synthetic dataset with z-depth EXR maps.

    Args:
        out: Output folder (created; must be empty, new, or a previous ds-make-scene output).
        resolution: Image width and height in pixels.
        views_train: Number of training views.
        views_val: Number of validation views.
        views_test: Number of test views.
        seed: Seed of the camera poses (same seed, same files).
        supersample: Sub-pixel rays per pixel side for colour and alpha (supersample^2 rays per pixel).
    """
    try:
        make_scene(
            out,
            resolution=resolution,
            views_train=views_train,
            views_val=views_val,
            views_test=views_test,
            seed=seed,
            supersample=supersample,
        )
    except (FileExistsError, ValueError) as e:
        raise SystemExit(f"ds-make-scene: error: {e}") from None
    print(
        f"ds-make-scene: wrote {out} (train {views_train} / val {views_val} / test {views_test} views, "
        f"{resolution}x{resolution}, supersample {supersample}, seed {seed})"
    )


def entrypoint() -> None:
    """Console script ``ds-make-scene``."""
    tyro.cli(make_scene_cli)
