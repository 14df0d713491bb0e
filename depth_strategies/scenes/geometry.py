"""Geometry of the built-in analytic scene (``ds-make-scene``): colours, procedural textures and analytic
surface sheets (spheres, finite cylinders, disks/annuli, oriented boxes).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

SCENE_BOUND: float = 1.3
"""Every object lies inside ``[-SCENE_BOUND, SCENE_BOUND]^3``."""

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


def build_thin_scene() -> tuple[Sheet, ...]:
    """A thin, dark object that covers a few per cent of each view, alone in front of the background (no
    platform): the kind of NeRF-synthetic object (a microphone on a tripod) on which RGB-only training leaves the
    image white and depth-guided training learns the shape but can lose its colour (``docs/appearance-collapse.md``).

    A banded head (a closed cylinder of radius 0.18 on a stem), three tripod legs and a cable lying as a flat ring
    below them, all dark (albedo 0.08 to 0.35) so that the white background explains almost every pixel."""
    dark, mid, brown = BLACK, (0.35, 0.33, 0.30), (0.30, 0.20, 0.12)
    sheets: list[Sheet] = []
    sheets += _capped_cylinder("head", (0.0, 0.0, 0.05), 0.18, 0.6, bands_z(0.12, dark, mid), solid(mid))
    sheets += _capped_cylinder("stem", (0.0, 0.0, -0.55), 0.03, 0.6, solid(dark), solid(dark))
    foot = np.array([0.0, 0.0, -0.55])
    for angle in (0.0, 120.0, 240.0):
        a = math.radians(angle)
        end = np.array([0.7 * math.cos(a), 0.7 * math.sin(a), -0.95])
        sheets += _capped_cylinder("legs", foot, 0.025, float(np.linalg.norm(end - foot)), bands_z(0.3, dark, brown),
                                   solid(dark), rotation=frame_from_axis(end - foot))
    sheets.append(DiskSheet("cable", (0.1, -0.1, -0.95), _IDENTITY, solid(dark), height=0.0, r_in=0.85, r_out=0.9))
    return tuple(sheets)


SCENE: tuple[Sheet, ...] = build_scene()
"""The immutable list of sheets traced by :func:`trace`."""

THIN_SCENE: tuple[Sheet, ...] = build_thin_scene()
"""The thin dark object of :func:`build_thin_scene`."""

SCENES: dict[str, tuple[Sheet, ...]] = {"builtin": SCENE, "thin": THIN_SCENE}
"""The object scenes ``ds-make-scene --scene NAME`` renders."""

OBJECT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(s.obj for s in SCENE))
"""Object names in scene order; :func:`trace_objects` returns indices into this tuple (-1 for a miss)."""
