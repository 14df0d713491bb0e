"""Depth-guided sampling: the pure edge merge (hand-computed and against a slow reference) and the module."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler, UniformSampler
from torch.testing import assert_close

from depth_strategies.core.sampling import (
    DepthGuidedProposalSampler,
    edges_from_samples,
    euclidean_to_spacing,
    guided_bin_edges,
    kept_edge_indices,
    num_guided_samples,
    trusted_rays,
    with_spacing_edges,
)


def test_num_guided_samples_rounds_the_fraction_and_keeps_two_own_edges():
    assert num_guided_samples(32, 0.75) == 24
    assert num_guided_samples(32, 0.5) == 16
    assert num_guided_samples(32, 0.0) == 0
    assert num_guided_samples(4, 1.0) == 2  # n - 2: first and last own edge survive
    with pytest.raises(ValueError):
        num_guided_samples(8, 1.5)


def test_trusted_rays_guide_a_valid_ray_when_its_uniform_draw_is_below_its_trust():
    valid = torch.tensor([[True], [True], [True], [False], [True]])
    trust = torch.tensor([[1.0], [0.0], [0.5], [1.0], [0.5]])
    uniform = torch.tensor([[0.999], [0.0], [0.4], [0.1], [0.5]])
    assert trusted_rays(valid, trust, uniform).tolist() == [[True], [False], [True], [False], [False]]


def test_trusted_rays_guide_a_share_equal_to_the_trust():
    generator = torch.Generator().manual_seed(0)
    uniform = torch.rand(20000, 1, generator=generator)
    share = trusted_rays(torch.ones(20000, 1, dtype=torch.bool), torch.full((20000, 1), 0.25), uniform).float().mean()
    assert abs(share.item() - 0.25) < 0.01  # 3.3 standard errors of a binomial share at n = 20000


def test_guided_edges_hand_computed():
    own = torch.linspace(0, 1, 9).repeat(2, 1)  # 8 bins
    lo = torch.tensor([[0.4], [0.4]])
    hi = torch.tensor([[0.6], [0.6]])
    valid = torch.tensor([[True], [False]])
    edges = guided_bin_edges(own, lo, hi, valid, num_guided=4)
    # kept own edges: indices round(linspace(0, 8, 4)) = 0, 3, 5, 8 -> 0, 0.375, 0.625, 1
    # guided edges: 0.4 + (k + 0.5) * 0.2 / 5, k = 0..4 -> 0.42, 0.46, 0.50, 0.54, 0.58
    expected = torch.tensor([0.0, 0.375, 0.42, 0.46, 0.50, 0.54, 0.58, 0.625, 1.0])
    assert_close(edges[0], expected)
    assert_close(edges[1], own[1]), "a ray without depth keeps the model's own edges"


def test_guided_edges_jitter_stays_inside_the_window():
    own = torch.linspace(0, 1, 17).repeat(3, 1)
    lo, hi = torch.full((3, 1), 0.3), torch.full((3, 1), 0.5)
    jitter = torch.tensor([[0.0], [0.5], [0.999]])
    edges = guided_bin_edges(own, lo, hi, torch.ones(3, 1, dtype=torch.bool), num_guided=8, jitter=jitter)
    mids = (edges[:, 1:] + edges[:, :-1]) / 2
    in_window = ((mids >= 0.3) & (mids <= 0.5)).sum(-1)
    assert (in_window >= 8).all()
    assert (edges[:, 1:] >= edges[:, :-1]).all()


def test_guided_edges_window_outside_near_far_is_treated_as_invalid():
    own = torch.linspace(0, 1, 9)[None]
    edges = guided_bin_edges(own, torch.tensor([[1.2]]), torch.tensor([[1.0]]), torch.ones(1, 1, dtype=torch.bool), 4)
    assert_close(edges, own)


def slow_guided_bin_edges(own, lo, hi, valid, g, jitter):
    """Obvious per-ray reference of guided_bin_edges."""
    out = []
    n_edges = own.shape[-1]
    for r in range(own.shape[0]):
        if not bool(valid[r, 0]) or not bool(hi[r, 0] > lo[r, 0]):
            out.append(own[r])
            continue
        n_keep = n_edges - (g + 1)
        kept = [own[r, round(i * (n_edges - 1) / (n_keep - 1))] for i in range(n_keep)]
        step = (hi[r, 0] - lo[r, 0]) / (g + 1)
        guided = [lo[r, 0] + (k + jitter[r, 0]) * step for k in range(g + 1)]
        out.append(torch.sort(torch.stack(kept + guided))[0])
    return torch.stack(out)


def test_guided_edges_match_slow_reference_forward_and_backward():
    gen = torch.Generator().manual_seed(0)
    n_rays, n_edges, g = 6, 13, 7
    own = torch.sort(torch.rand(n_rays, n_edges, generator=gen, dtype=torch.float64), dim=-1)[0]
    lo = torch.rand(n_rays, 1, generator=gen, dtype=torch.float64) * 0.5
    hi = lo + torch.rand(n_rays, 1, generator=gen, dtype=torch.float64) * 0.4
    hi[2] = lo[2] - 0.1  # an empty window
    valid = torch.tensor([[True], [False], [True], [True], [False], [True]])
    jitter = torch.rand(n_rays, 1, generator=gen, dtype=torch.float64)

    def run(fn):
        o, lo_, hi_ = (t.clone().requires_grad_(True) for t in (own, lo, hi))
        out = fn(o, lo_, hi_, valid, g, jitter)
        (out * torch.arange(n_edges, dtype=torch.float64)).sum().backward()
        return out.detach(), o.grad, lo_.grad, hi_.grad

    fast, slow = run(guided_bin_edges), run(slow_guided_bin_edges)
    for a, b in zip(fast, slow):
        assert_close(a, b)


def test_euclidean_to_spacing_inverts_uniform_spacing():
    nears, fars = torch.tensor([[2.0]]), torch.tensor([[6.0]])
    assert_close(euclidean_to_spacing(torch.tensor([[3.0]]), nears, fars, lambda x: x), torch.tensor([[0.25]]))


# ------------------------------------------------------------------------------------- the module
N_PROP, N_NERF = (16,), 16


def make_bundle(n_rays: int = 3) -> RayBundle:
    origins = torch.zeros(n_rays, 3)
    directions = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0]]).repeat(n_rays, 1), dim=-1)
    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=torch.ones(n_rays, 1),
        nears=torch.full((n_rays, 1), 2.0),
        fars=torch.full((n_rays, 1), 6.0),
        camera_indices=torch.zeros(n_rays, 1, dtype=torch.long),
    )


class TinyField(torch.nn.Module):
    """Density = softplus(linear(position)): enough to check that gradients reach field parameters."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, positions):
        return torch.nn.functional.softplus(self.linear(positions))


def make_sampler(fraction: float, cls=DepthGuidedProposalSampler, **extra):
    kwargs = dict(
        num_proposal_samples_per_ray=N_PROP,
        num_nerf_samples_per_ray=N_NERF,
        num_proposal_network_iterations=1,
        single_jitter=True,
        initial_sampler=UniformSampler(single_jitter=True),
    )
    if issubclass(cls, DepthGuidedProposalSampler):
        kwargs["guided_fraction"] = fraction
    return cls(**{**kwargs, **extra})


def test_module_places_the_fraction_in_the_window_only_on_valid_rays():
    torch.manual_seed(0)
    field = TinyField()
    sampler = make_sampler(0.75)
    bundle = make_bundle()
    depth = torch.tensor([[4.0], [3.0], [5.0]])
    valid = torch.tensor([[True], [False], [True]])
    samples, _, _ = sampler(bundle, density_fns=[field], guide_depth=depth, guide_valid=valid, guide_half_width=0.3)
    mids = ((samples.frustums.starts + samples.frustums.ends) / 2)[..., 0]
    in_window = ((mids >= depth - 0.3) & (mids <= depth + 0.3)).sum(-1)
    assert samples.frustums.starts.shape == (3, N_NERF, 1)
    assert in_window[0] >= 12 and in_window[2] >= 12  # 0.75 * 16
    # bins sorted and contiguous; spacing consistent with the Euclidean bins (uniform: t = 2 + 4 s)
    assert (samples.frustums.ends >= samples.frustums.starts).all()
    assert_close(samples.frustums.starts[:, 1:], samples.frustums.ends[:, :-1])
    assert_close(samples.frustums.starts, 2.0 + 4.0 * samples.spacing_starts)
    assert_close(samples.frustums.ends, 2.0 + 4.0 * samples.spacing_ends)


def test_module_keeps_the_first_and_last_own_edge():
    field = TinyField()
    bundle = make_bundle()
    torch.manual_seed(7)
    plain, _, _ = make_sampler(0.75)(bundle, density_fns=[field])
    torch.manual_seed(7)
    guided, _, _ = make_sampler(0.75)(
        bundle,
        density_fns=[field],
        guide_depth=torch.full((3, 1), 4.0),
        guide_valid=torch.ones(3, 1, dtype=torch.bool),
        guide_half_width=0.3,
    )
    assert_close(edges_from_samples(guided)[:, [0, -1]], edges_from_samples(plain)[:, [0, -1]])


def test_module_without_guide_is_nerfstudios_proposal_sampler():
    field = TinyField()
    bundle = make_bundle()
    torch.manual_seed(3)
    ours, _, _ = make_sampler(0.75)(bundle, density_fns=[field])
    torch.manual_seed(3)
    theirs, _, _ = make_sampler(0.0, cls=ProposalNetworkSampler)(bundle, density_fns=[field])
    assert_close(ours.frustums.starts, theirs.frustums.starts)
    assert_close(ours.frustums.ends, theirs.frustums.ends)


def test_module_invalid_rays_keep_their_own_samples():
    field = TinyField()
    bundle = make_bundle()
    torch.manual_seed(5)
    plain, _, _ = make_sampler(0.75)(bundle, density_fns=[field])
    torch.manual_seed(5)
    guided, _, _ = make_sampler(0.75)(
        bundle,
        density_fns=[field],
        guide_depth=torch.full((3, 1), 4.0),
        guide_valid=torch.tensor([[False], [True], [False]]),
        guide_half_width=0.3,
    )
    assert_close(guided.frustums.starts[[0, 2]], plain.frustums.starts[[0, 2]])
    assert not torch.allclose(guided.frustums.starts[1], plain.frustums.starts[1])


def test_module_guided_edges_carry_no_gradient_while_the_proposal_weights_do():
    """As nerfstudio's PDF sampler: sample positions are detached; the proposal network learns through the
    weights it returns (interlevel loss, supervised depth losses), not through where the NeRF samples land."""
    field = TinyField()
    samples, weights_list, _ = make_sampler(0.5)(
        make_bundle(),
        density_fns=[field],
        guide_depth=torch.full((3, 1), 4.0),
        guide_valid=torch.ones(3, 1, dtype=torch.bool),
        guide_half_width=0.3,
    )
    assert not samples.frustums.starts.requires_grad and not samples.frustums.ends.requires_grad
    weights_list[0].sum().backward()
    assert field.linear.weight.grad is not None and field.linear.weight.grad.abs().sum() > 0


def test_module_window_partly_beyond_far_is_clipped_to_near_far():
    torch.manual_seed(0)
    samples, _, _ = make_sampler(0.75)(
        make_bundle(),
        density_fns=[TinyField()],
        guide_depth=torch.tensor([[5.9], [2.1], [4.0]]),  # windows [5.6, 6.2], [1.8, 2.4] cross far, near
        guide_valid=torch.ones(3, 1, dtype=torch.bool),
        guide_half_width=0.3,
    )
    starts, ends = samples.frustums.starts[..., 0], samples.frustums.ends[..., 0]
    assert starts.min() >= 2.0 - 1e-6 and ends.max() <= 6.0 + 1e-6
    mids = (starts + ends) / 2
    assert ((mids[0] >= 5.6) & (mids[0] <= 6.0)).sum() >= 12  # the guided bins fill what is left of the window
    assert ((mids[1] >= 2.0) & (mids[1] <= 2.4)).sum() >= 12


# ------------------------------------------------------------------------------------- unbounded scenes
def piecewise_spacing(x):
    """nerfstudio's UniformLinDispPiecewiseSampler spacing: linear to distance 1, then in disparity."""
    return torch.where(x < 1, x / 2, 1 - 1 / (2 * x))


def test_euclidean_to_spacing_round_trips_with_the_piecewise_spacing_of_unbounded_scenes():
    from nerfstudio.model_components.ray_samplers import UniformLinDispPiecewiseSampler

    sampler = UniformLinDispPiecewiseSampler()
    nears, fars = torch.full((5, 1), 0.05, dtype=torch.float64), torch.full((5, 1), 1000.0, dtype=torch.float64)
    t = torch.tensor([[0.05], [0.5], [1.0], [3.7], [1000.0]], dtype=torch.float64)
    s = euclidean_to_spacing(t, nears, fars, sampler.spacing_fn)
    g_near, g_far = piecewise_spacing(nears), piecewise_spacing(fars)
    back = sampler.spacing_fn_inv(s * g_far + (1 - s) * g_near)  # nerfstudio's spacing -> distance
    assert_close(back, t)
    assert (s[1:] > s[:-1]).all() and s[0].item() == pytest.approx(0.0) and s[-1].item() == pytest.approx(1.0)


def test_guided_bins_stay_sorted_contiguous_and_metric_in_the_piecewise_spacing():
    from nerfstudio.model_components.ray_samplers import UniformLinDispPiecewiseSampler

    torch.manual_seed(0)
    sampler = make_sampler(0.5, initial_sampler=UniformLinDispPiecewiseSampler(single_jitter=True))
    bundle = make_bundle(4)
    bundle.nears, bundle.fars = torch.full((4, 1), 0.05), torch.full((4, 1), 1000.0)
    depth = torch.tensor([[0.7], [2.5], [12.0], [80.0]])  # both sides of the piecewise switch at distance 1
    samples, _, _ = sampler(bundle, density_fns=[TinyField()], guide_depth=depth,
                            guide_valid=torch.ones(4, 1, dtype=torch.bool), guide_half_width=0.3)
    starts, ends = samples.frustums.starts[..., 0], samples.frustums.ends[..., 0]
    assert (ends >= starts).all() and (starts[:, 1:] >= starts[:, :-1]).all()
    assert_close(starts[:, 1:], ends[:, :-1])  # contiguous
    mids = (starts + ends) / 2
    in_window = ((mids >= depth - 0.3) & (mids <= depth + 0.3)).sum(-1)
    assert (in_window >= 8).all(), in_window  # half of 16 NeRF samples within 0.3 units (metric) of the depth
    # the spacing edges are the images of the distances under the piecewise spacing
    g = samples.spacing_to_euclidean_fn(samples.spacing_starts[..., 0])
    assert_close(g, starts, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------- fewer ops, the same samples
class FirstGuidedSampler(DepthGuidedProposalSampler):
    """The guided sampler as first written, kept as the reference of the one that launches fewer kernels: each end of
    the window converted to spacing on its own, the kept indices and strata built at every call, and the NeRF
    samples built anew from the ray bundle (nerfstudio's ``get_ray_samples``, which broadcasts every field of the
    bundle to the samples again)."""

    def generate_ray_samples(self, ray_bundle=None, density_fns=None, guide_depth=None, guide_valid=None,
                             guide_half_width=0.0, uniform=torch.rand_like):
        ray_samples, weights_list, ray_samples_list = ProposalNetworkSampler.generate_ray_samples(
            self, ray_bundle, density_fns)
        if guide_depth is None or guide_valid is None or self.num_guided == 0:
            return ray_samples, weights_list, ray_samples_list
        nears, fars = ray_bundle.nears, ray_bundle.fars
        spacing_fn = self.initial_sampler.spacing_fn
        lo = euclidean_to_spacing(torch.maximum(guide_depth - guide_half_width, nears), nears, fars, spacing_fn)
        hi = euclidean_to_spacing(torch.minimum(guide_depth + guide_half_width, fars), nears, fars, spacing_fn)
        jitter = uniform(lo) if self.training else None
        edges = guided_bin_edges(edges_from_samples(ray_samples), lo, hi, guide_valid, self.num_guided, jitter)
        edges = edges.detach()
        euclidean = ray_samples.spacing_to_euclidean_fn(edges)
        guided_samples = ray_bundle.get_ray_samples(
            bin_starts=euclidean[..., :-1, None],
            bin_ends=euclidean[..., 1:, None],
            spacing_starts=edges[..., :-1, None],
            spacing_ends=edges[..., 1:, None],
            spacing_to_euclidean_fn=ray_samples.spacing_to_euclidean_fn,
        )
        return guided_samples, weights_list, ray_samples_list


def sample_fields(samples):
    """Every tensor of a RaySamples, by name (the frustums' and the metadata's included)."""
    f = samples.frustums
    fields = {"origins": f.origins, "directions": f.directions, "starts": f.starts, "ends": f.ends,
              "pixel_area": f.pixel_area, "camera_indices": samples.camera_indices, "deltas": samples.deltas,
              "spacing_starts": samples.spacing_starts, "spacing_ends": samples.spacing_ends}
    fields.update({f"metadata.{k}": v for k, v in (samples.metadata or {}).items()})
    return fields


@pytest.mark.parametrize("spacing", ["uniform", "piecewise"])
@pytest.mark.parametrize("training", [True, False])
def test_the_sampler_draws_bit_identical_samples_to_its_first_version(spacing, training):
    from nerfstudio.model_components.ray_samplers import UniformLinDispPiecewiseSampler

    def build(cls):
        initial = UniformSampler(single_jitter=True) if spacing == "uniform" else \
            UniformLinDispPiecewiseSampler(single_jitter=True)
        return make_sampler(0.75, cls=cls, initial_sampler=initial).train(training)

    bundle = make_bundle(8)
    if spacing == "piecewise":
        bundle.nears, bundle.fars = torch.full((8, 1), 0.05), torch.full((8, 1), 1000.0)
    bundle.metadata = {"directions_norm": torch.ones(8, 1)}
    depth = torch.tensor([[4.0], [3.0], [5.9], [2.1], [0.7], [12.0], [4.4], [3.3]])
    valid = torch.tensor([[True], [False], [True], [True], [True], [True], [False], [True]])
    field = TinyField()
    drawn = {}
    for cls in (FirstGuidedSampler, DepthGuidedProposalSampler):
        torch.manual_seed(11)
        stream = torch.Generator().manual_seed(5)
        samples, weights, _ = build(cls)(bundle, density_fns=[field], guide_depth=depth, guide_valid=valid,
                                         guide_half_width=torch.full((8, 1), 0.3),
                                         uniform=lambda like: torch.rand(like.shape, generator=stream))
        drawn[cls] = samples, weights
    (first, first_weights), (now, now_weights) = drawn[FirstGuidedSampler], drawn[DepthGuidedProposalSampler]
    first_fields, now_fields = sample_fields(first), sample_fields(now)
    assert first_fields.keys() == now_fields.keys()
    for name, value in first_fields.items():
        assert now_fields[name].shape == value.shape and torch.equal(now_fields[name], value), name
    probe = torch.rand(8, 5)
    assert now.shape == first.shape
    assert torch.equal(now.spacing_to_euclidean_fn(probe), first.spacing_to_euclidean_fn(probe))
    assert all(torch.equal(a, b) for a, b in zip(first_weights, now_weights))


def test_samples_with_new_spacing_edges_are_nerfstudios_samples_of_those_edges():
    bundle = make_bundle(4)
    bundle.metadata = {"directions_norm": torch.rand(4, 1)}
    samples, _, _ = make_sampler(0.0)(bundle, density_fns=[TinyField()])
    edges = torch.sort(torch.rand(4, N_NERF + 1), dim=-1).values
    moved = with_spacing_edges(samples, edges)
    euclidean = samples.spacing_to_euclidean_fn(edges)
    built = bundle.get_ray_samples(euclidean[..., :-1, None], euclidean[..., 1:, None], edges[..., :-1, None],
                                   edges[..., 1:, None], samples.spacing_to_euclidean_fn)
    for name, value in sample_fields(built).items():
        assert torch.equal(sample_fields(moved)[name], value), name
    assert not torch.equal(samples.frustums.starts, moved.frustums.starts)  # the original is left as it was


def test_guided_edges_with_the_indices_given_are_those_built_inside():
    own = torch.sort(torch.rand(5, 17), dim=-1).values
    lo, hi = torch.full((5, 1), 0.3), torch.full((5, 1), 0.5)
    valid, jitter = torch.ones(5, 1, dtype=torch.bool), torch.rand(5, 1)
    built = guided_bin_edges(own, lo, hi, valid, 8, jitter)
    given = guided_bin_edges(own, lo, hi, valid, 8, jitter, keep=kept_edge_indices(17, 8), strata=torch.arange(9.0))
    assert torch.equal(built, given)
    with pytest.raises(ValueError, match="own edges"):
        kept_edge_indices(9, 8)
