"""Where each ray is sampled: the part of ``[near, far]`` that lies inside the scene box.

An object scene lives in its scene box (nerfstudio's Blender box is ``[-1.5, 1.5]^3``). nerfacto's
``NearFarCollider`` gives every ray the same ``[near, far]`` (2 to 6 Blender units), so a share of every ray's
samples lies outside the box: nerfacto's fields multiply such positions by zero (``positions * selector``), which
makes them worthless and sends them all to one corner of the hash grid, whose gradient then accumulates them one
after another. Sampling each ray only between its entry into and exit from the box (the slab method, Kay & Kajiya
1986; instant-ngp samples object scenes the same way) spends every sample where the object can be.

The maths is :func:`ray_box_interval` and :func:`clip_to_interval`, pure functions; :class:`BoxNearFarCollider`
only sets a ``RayBundle``'s ``nears`` and ``fars`` with them.
"""

from __future__ import annotations

from typing import Tuple

import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.scene_colliders import SceneCollider
from torch import Tensor

PARALLEL_EPS = 1e-12
"""|direction component| below which a ray counts as parallel to that pair of slabs (avoids 0 * inf = NaN)."""
EMPTY_INTERVAL = 1e-6
"""Length, in model units, of the interval of a ray that misses the box: its samples have (almost) zero length,
so zero weight, and the samplers never divide by a zero-length interval."""


def ray_box_interval(
    origins: Float[Tensor, "*bs 3"], directions: Float[Tensor, "*bs 3"], aabb: Float[Tensor, "2 3"]
) -> Tuple[Float[Tensor, "*bs 1"], Float[Tensor, "*bs 1"]]:
    """Distances along each ray at which it enters and leaves the axis-aligned box ``aabb`` (min and max corner).

    Slab method: per axis, the ray crosses the two planes at ``(aabb - o) / d``; it is inside the box between the
    largest entry and the smallest exit. A ray that misses the box gets ``exit < entry``. Distances are in units
    of ``|d|`` (nerfstudio's ray directions are unit vectors, so these are Euclidean distances).
    """
    safe = torch.where(directions.abs() < PARALLEL_EPS, torch.full_like(directions, PARALLEL_EPS), directions)
    t0 = (aabb[0] - origins) / safe
    t1 = (aabb[1] - origins) / safe
    entry = torch.minimum(t0, t1).amax(dim=-1, keepdim=True)
    exit_ = torch.maximum(t0, t1).amin(dim=-1, keepdim=True)
    return entry, exit_


def clip_to_interval(
    entry: Float[Tensor, "*bs 1"], exit_: Float[Tensor, "*bs 1"], near: float, far: float
) -> Tuple[Float[Tensor, "*bs 1"], Float[Tensor, "*bs 1"]]:
    """``[max(entry, near), min(exit, far)]``; a ray whose intersection is empty gets the interval
    ``[near, near + EMPTY_INTERVAL]`` (nothing to see, nothing to learn)."""
    nears = entry.clamp(min=near)
    fars = exit_.clamp(max=far)
    empty = fars <= nears
    nears = torch.where(empty, torch.full_like(nears, near), nears)
    fars = torch.where(empty, nears + EMPTY_INTERVAL, fars)
    return nears, fars


class BoxNearFarCollider(SceneCollider):
    """Sets each ray's ``nears`` and ``fars`` to the part of ``[near_plane, far_plane]`` inside the scene box, in
    training and at test time alike."""

    def __init__(self, aabb: Float[Tensor, "2 3"], near_plane: float, far_plane: float) -> None:
        super().__init__()
        self.register_buffer("aabb", aabb.detach().clone().float(), persistent=False)
        self.near_plane = near_plane
        self.far_plane = far_plane

    def set_nears_and_fars(self, ray_bundle: RayBundle) -> RayBundle:
        entry, exit_ = ray_box_interval(ray_bundle.origins, ray_bundle.directions, self.aabb)
        ray_bundle.nears, ray_bundle.fars = clip_to_interval(entry, exit_, self.near_plane, self.far_plane)
        return ray_bundle
