"""Depth-guided sampling: put a fraction of each ray's NeRF samples in a window around the known surface.

The maths is :func:`guided_bin_edges`, a pure function over bin edges in the sampler's *spacing* space
(the normalised coordinate in which nerfstudio's proposal sampler works; for the uniform initial sampler it
is ``s = (t - near) / (far - near)``). :class:`DepthGuidedProposalSampler` only turns a ``RayBundle`` into
``RaySamples`` around it.

Construction, for a ray with ``n`` NeRF samples of which ``g`` are guided (``g = round(fraction * n)``):

* the model's own sampler draws ``n`` bins (``n + 1`` edges) from the proposal PDF, as nerfacto does;
* a ray with valid depth keeps ``n - g`` of those edges, evenly spaced in index and always including the
  first and the last, so the ray still spans ``[near, far]`` and the kept edges are a coarser stratified
  draw from the same PDF; it adds ``g + 1`` edges stratified over the window ``[D - eps, D + eps]`` with one
  jitter per ray (``lo + (k + u) (hi - lo) / (g + 1)``, ``k = 0..g``), which makes ``g`` bins inside it;
* edges are merged and sorted, so bins stay contiguous (``start_{i+1} = end_i``), ``n`` bins in all, and
  the spacing edges are the exact images of the Euclidean ones: volume rendering weights, nerfacto's
  interlevel loss and its distortion loss see an ordinary set of samples;
* a ray without valid depth keeps all ``n`` of the model's own edges.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Tuple

import torch
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler, SpacedSampler
from torch import Tensor

MIN_OWN_EDGES = 2
"""A guided ray keeps at least its first and last own edge, so its samples still span [near, far]."""


def num_guided_samples(num_samples: int, fraction: float) -> int:
    """Number of guided bins ``g`` out of ``num_samples``: ``round(fraction * n)``, at most ``n - 2``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"guided fraction must be in [0, 1], got {fraction}")
    return max(0, min(round(fraction * num_samples), num_samples + 1 - MIN_OWN_EDGES - 1))


def kept_edge_indices(num_edges: int, num_guided: int, device: torch.device | str = "cpu") -> Int[Tensor, " num_own"]:
    """Which of a guided ray's ``num_edges`` own edges it keeps: ``n - g`` of them, evenly spaced in index, the
    first and the last included."""
    num_own = num_edges - (num_guided + 1)
    if num_own < MIN_OWN_EDGES:
        raise ValueError(f"{num_guided} guided bins leave fewer than {MIN_OWN_EDGES} of {num_edges} own edges")
    return torch.linspace(0, num_edges - 1, num_own, device=device).round().long()


def guided_bin_edges(
    own_edges: Float[Tensor, "*bs num_edges"],
    window_start: Float[Tensor, "*bs 1"],
    window_end: Float[Tensor, "*bs 1"],
    valid: Bool[Tensor, "*bs 1"],
    num_guided: int,
    jitter: Optional[Float[Tensor, "*bs 1"]] = None,
    keep: Optional[Int[Tensor, " num_own"]] = None,
    strata: Optional[Float[Tensor, " num_guided_edges"]] = None,
) -> Float[Tensor, "*bs num_edges"]:
    """Merge ``num_guided`` stratified bins inside ``[window_start, window_end]`` into a ray's own sorted edges.

    Args:
        own_edges: sorted bin edges from the model's own sampler (``n + 1`` edges for ``n`` bins).
        window_start: lower end of the window around the surface (same space as ``own_edges``).
        window_end: upper end of the window; rays with ``window_end <= window_start`` are treated as invalid.
        valid: rays that have a known surface depth; the others keep ``own_edges`` unchanged.
        num_guided: ``g``, the number of bins placed in the window (``0 <= g <= n - 2``).
        jitter: per-ray offset ``u`` in [0, 1) of the stratified window edges; ``None`` uses the centre 0.5.
        keep: :func:`kept_edge_indices` of these sizes on ``own_edges``' device, when the caller holds them (a
            sampler builds them once instead of every step); ``None`` builds them here.
        strata: ``k = 0..g`` in ``own_edges``' dtype and device, likewise; ``None`` builds them here.

    Returns:
        ``n + 1`` sorted edges per ray.
    """
    num_edges = own_edges.shape[-1]
    if num_guided == 0:
        return own_edges
    if keep is None:
        keep = kept_edge_indices(num_edges, num_guided, own_edges.device)
    kept = own_edges[..., keep]
    if jitter is None:
        jitter = torch.full_like(window_start, 0.5)
    k = torch.arange(num_guided + 1, device=own_edges.device, dtype=own_edges.dtype) if strata is None else strata
    step = (window_end - window_start) / (num_guided + 1)
    guided = window_start + (k + jitter) * step
    merged, _ = torch.sort(torch.cat([kept, guided], dim=-1), dim=-1)
    use_guided = valid & (window_end > window_start)
    return torch.where(use_guided, merged, own_edges)


def trusted_rays(
    valid: Bool[Tensor, "*bs 1"], trust: Float[Tensor, "*bs 1"], uniform: Float[Tensor, "*bs 1"]
) -> Bool[Tensor, "*bs 1"]:
    """Rays guided when the guidance follows the depth's trust: a valid ray is guided when ``uniform < trust``, with
    ``uniform`` drawn from U(0, 1) per ray, i.e. with probability ``trust`` (in [0, 1]; the uncertainty weight
    (eps_min / eps)^2 of :func:`depth_strategies.core.losses.uncertainty_weight`). A ray that is not guided keeps
    all of the model's own samples, so as the depth's sigma grows the sampling tends to the baseline's instead of
    spending a fixed share of the samples on a window too wide to say where the surface is."""
    return valid & (uniform < trust)


def euclidean_to_spacing(
    t: Float[Tensor, "*bs num_points"],
    nears: Float[Tensor, "*bs 1"],
    fars: Float[Tensor, "*bs 1"],
    spacing_fn: Callable[[Tensor], Tensor],
) -> Float[Tensor, "*bs num_points"]:
    """Inverse of nerfstudio's ``spacing_to_euclidean_fn``: s = (g(t) - g(near)) / (g(far) - g(near)), for any
    number of distances per ray."""
    g_near, g_far = spacing_fn(nears), spacing_fn(fars)
    return (spacing_fn(t) - g_near) / (g_far - g_near)


def edges_from_samples(ray_samples: RaySamples) -> Float[Tensor, "*bs num_edges"]:
    """The ``n + 1`` spacing edges of ``n`` contiguous samples."""
    assert ray_samples.spacing_starts is not None and ray_samples.spacing_ends is not None
    return torch.cat([ray_samples.spacing_starts[..., 0], ray_samples.spacing_ends[..., -1:, 0]], dim=-1)


def with_spacing_edges(ray_samples: RaySamples, edges: Float[Tensor, "*bs num_edges"]) -> RaySamples:
    """``ray_samples`` with its ``n`` contiguous bins moved to the spacing ``edges`` (``n + 1`` per ray).

    The same samples as ``ray_bundle.get_ray_samples`` builds from the bundle that ``ray_samples`` came from (bins
    from the edges, deltas = ends - starts), without broadcasting the bundle's origins, directions, pixel area,
    camera indices and metadata to the samples again: ``ray_samples`` holds them broadcast already (a shallow copy
    shares them; the tests compare every field with nerfstudio's construction).
    """
    assert ray_samples.spacing_to_euclidean_fn is not None
    euclidean = ray_samples.spacing_to_euclidean_fn(edges)
    frustums = copy.copy(ray_samples.frustums)
    frustums.starts, frustums.ends = euclidean[..., :-1, None], euclidean[..., 1:, None]
    moved = copy.copy(ray_samples)
    moved.frustums = frustums
    moved.deltas = frustums.ends - frustums.starts
    moved.spacing_starts, moved.spacing_ends = edges[..., :-1, None], edges[..., 1:, None]
    return moved


class DepthGuidedProposalSampler(ProposalNetworkSampler):
    """nerfacto's proposal sampler whose last (NeRF) level can be guided by a known depth per ray.

    Without ``guide_depth`` (evaluation, rendering, the viewer, and every ray of the baseline) it is exactly
    nerfstudio's ``ProposalNetworkSampler``.
    """

    def __init__(self, guided_fraction: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(self.initial_sampler, SpacedSampler):
            raise TypeError("depth guidance needs a spaced initial sampler (e.g. nerfstudio's UniformSampler)")
        self.num_guided = num_guided_samples(self.num_nerf_samples_per_ray, guided_fraction)
        self._guide_indices: Dict[Tuple[int, str, torch.dtype], Tuple[Tensor, Tensor]] = {}

    def _kept_and_strata(self, own_edges: Tensor) -> Tuple[Tensor, Tensor]:
        """:func:`kept_edge_indices` and ``k = 0..g`` of :func:`guided_bin_edges` for ``own_edges`` (its edge count,
        device and dtype), built once instead of at every step (each is a kernel of its own)."""
        key = (own_edges.shape[-1], str(own_edges.device), own_edges.dtype)
        if key not in self._guide_indices:
            self._guide_indices[key] = (
                kept_edge_indices(own_edges.shape[-1], self.num_guided, own_edges.device),
                torch.arange(self.num_guided + 1, device=own_edges.device, dtype=own_edges.dtype),
            )
        return self._guide_indices[key]

    def generate_ray_samples(  # type: ignore[override]
        self,
        ray_bundle: Optional[RayBundle] = None,
        density_fns: Optional[List[Callable]] = None,
        guide_depth: Optional[Float[Tensor, "*bs 1"]] = None,
        guide_valid: Optional[Bool[Tensor, "*bs 1"]] = None,
        guide_half_width: float = 0.0,
        uniform: Callable[[Tensor], Tensor] = torch.rand_like,
    ) -> Tuple[RaySamples, List, List]:
        """nerfstudio's proposal samples, with ``guide_depth`` (model units, per ray) merged into the NeRF level for
        the ``guide_valid`` rays over a window of ``guide_half_width``; ``uniform`` draws the windows' jitter (U(0, 1)
        shaped like its argument; the model passes its own stream, so guidance leaves torch's global one alone)."""
        ray_samples, weights_list, ray_samples_list = super().generate_ray_samples(ray_bundle, density_fns)
        if guide_depth is None or guide_valid is None or self.num_guided == 0:
            return ray_samples, weights_list, ray_samples_list
        assert ray_bundle is not None and ray_bundle.nears is not None and ray_bundle.fars is not None
        assert isinstance(self.initial_sampler, SpacedSampler)
        nears, fars = ray_bundle.nears, ray_bundle.fars
        spacing_fn = self.initial_sampler.spacing_fn
        # both ends of the window in one conversion to spacing
        window = euclidean_to_spacing(
            torch.cat([torch.maximum(guide_depth - guide_half_width, nears),
                       torch.minimum(guide_depth + guide_half_width, fars)], dim=-1),
            nears, fars, spacing_fn,
        )
        lo, hi = window[..., :1], window[..., 1:]
        jitter = uniform(lo) if self.training else None
        own = edges_from_samples(ray_samples)
        keep, strata = self._kept_and_strata(own)
        edges = guided_bin_edges(own, lo, hi, guide_valid, self.num_guided, jitter, keep=keep, strata=strata)
        return with_spacing_edges(ray_samples, edges.detach()), weights_list, ray_samples_list
