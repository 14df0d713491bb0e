"""What a depth map is worth, measured: pure functions over depth maps, their pixel states and the cameras.

Per image (no other view needed):

* coverage and the sparsity pattern (:func:`coverage`, :func:`neighbour_shares`): the share of the pixels that
  should have depth that do, and how often a pixel with depth has one beside it (horizontally, vertically): dense
  depth and depth with holes have neighbours, scanlines only horizontal ones, scattered points none;
* the noise (:func:`relative_noise`): the robust spread of the second difference of depth along rows and columns,
  relative to the depth (a smooth surface has a second difference near 0, independent noise of standard deviation
  s one of standard deviation sqrt(6) s);
* a quantisation step (:func:`quantisation_step`): differences between neighbouring depths that are all whole
  multiples of one step;
* a lower resolution than the image's (:func:`upsampling_factor`): the period of the kinks that an upsampled
  depth map has at the edges of its sensor pixels;
* flying pixels (:func:`flying_share`): depths between the near and the far side of a depth edge.

Across views (:func:`pair_matches`, :func:`frame_log_scales`): each image's surface points reprojected into its
nearest views (``core.consistency``'s reprojection), their relative error, and the per-image scale that best aligns
each image with its neighbours: metric depth needs none (every scale 1), a monocular network's depth a different
one per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Bool, Float, Int

from depth_strategies.core import consistency
from depth_strategies.core.degradation import SURFACE, discontinuities

MAD_TO_SIGMA = 1.4826
"""Standard deviation of a normal distribution over its median absolute deviation: 1 / Phi^-1(3/4)."""
SECOND_DIFFERENCE_VARIANCE = 6.0
"""Var(e[x-1] - 2 e[x] + e[x+1]) over Var(e) for independent errors e: 1 + 4 + 1."""
EDGE_JUMP = 0.05
"""Relative depth jump between 4-neighbours that marks a depth edge (5 % of the nearer depth): the noise is
measured away from edges, flying pixels only next to them. The slope of a surface seen at 80 degrees changes the
depth of a 64 px view by about 1 % per pixel, so slopes do not reach it."""
QUANTISATION_TOLERANCE = 0.05
"""A neighbour difference counts as a whole multiple of the step when it is within this fraction of the step of
one (float32 storage of a rounded value is exact to 1e-7 relative)."""
QUANTISATION_SHARE = 0.75
"""Share of the nonzero neighbour differences that must be whole multiples of the step for the depth to count as
quantised (noise or a continuous depth leaves about 2 QUANTISATION_TOLERANCE of them near a multiple by chance;
flying pixels at the edges of rounded depth break the lattice for a minority)."""
MIN_RELATIVE_STEP = 1e-5
"""Quantisation steps below this share of the depth are not looked for: float32 resolves 6e-8 of a value, so
differences of a few of its units are storage; a millimetre at 10 m is 1e-4."""
PERIOD_PEAK_RATIO = 20.0
"""The periodogram peak of the kink profile (:func:`upsampling_factor`) must exceed the median of the periodogram
by this factor to count as the sensor grid of an upsampled depth map. A profile of independent noise has an
exponentially distributed periodogram whose largest of about 30 bins is near 5 times its median; upsampled depth
of the built-in scene gives 40 to 300."""
PHASE_COHERENCE = 0.8
"""Length of the mean unit phasor of the images' kink profiles at the peak above which the kinks sit at the same
pixels in every image (one sensor grid). Random phases over 10 images give about 0.3; lego's own ~22 px structure
peaks there at up to 35 times the median power, as strongly as a sensor grid of 16 px."""
MIN_PERIODS = 8
"""The sensor grid is looked for at 8 cycles per image and more (factors up to 8 on a 64 px image, 25 on 200 px,
240 on a phone's 1920 px): slower variations of the kink profile are the object's place and shape in the image
(noisy views of the built-in scene peak at 2.5 cycles along both axes, of lego at 4.5)."""
PERIOD_AGREEMENT = 0.1
"""The periods found along rows and along columns must agree within this share to be one sensor grid's."""
MIN_FACTOR = 2.0
"""Smallest upsampling factor looked for: a period of 2 px is the finest a kink profile can show (Nyquist)."""
FLYING_MARGIN = 0.15
"""A depth next to a depth edge is flying when it is further than this share of the edge's jump from both its
near and its far side. With flying pixels mixed uniformly between the two sides (Reynolds et al. 2011, the model
of ``core.degradation.flying_pixels``), a share 1 - 2 margin of them is detected, which :func:`flying_share`
divides out."""
FLYING_REACH = 1
"""How far from a pixel (px) the surfaces on either side are looked for. 1: a band of one flying pixel on each side
of an edge is found; in wider bands the sides are themselves flying and part of the band is missed (lego with
2 px bands: 0.30 found for 0.45 changed). Reaching 4 px finds the bands but also every curved surface (exact lego
depth: 0.63)."""
JUMP_NOISE_MULT = 10.0
"""A depth edge, for flying pixels, is a jump above this many times the depth's relative noise: L_1 - R_1 of
:func:`flying_share` has a standard deviation of sqrt(10) sigma (L_1 and R_1 sqrt(5) sigma each), so about 3 of
them."""
MIN_MATCHES = consistency.MIN_MATCHES
"""A pair of views with fewer matched points says nothing about their relative scale (``core.consistency``)."""
OCCLUSION_TRIM = 0.25
"""Matched points whose log depth ratio is below this quantile are dropped before the scale of a pair is
estimated: points occluded in the other view have a neighbour depth that is too short (``core.consistency``'s
lower quartile, from the other side)."""


# ----------------------------------------------------------------------------------------------- one image
def coverage(state: Int[np.ndarray, "h w"], expected: Bool[np.ndarray, "h w"]) -> float:
    """Share of the ``expected`` pixels (where a surface is: opaque pixels of an object scene, every pixel of a
    capture) whose state is SURFACE; NaN without expected pixels."""
    total = int(expected.sum())
    return float(((state == SURFACE) & expected).sum() / total) if total else float("nan")


def neighbour_shares(state: Int[np.ndarray, "h w"]) -> Tuple[float, float]:
    """(horizontal, vertical): the share of SURFACE pixels whose left or right (upper or lower) neighbour is SURFACE
    too. Dense depth and depth with holes: both near 1; scanlines: (1, 0); random points at density d: both about
    1 - (1 - d)^2. NaN without SURFACE pixels."""
    surface = state == SURFACE
    n = int(surface.sum())
    if n == 0:
        return float("nan"), float("nan")
    pad = np.pad(surface, 1)
    horizontal = surface & (pad[1:-1, :-2] | pad[1:-1, 2:])
    vertical = surface & (pad[:-2, 1:-1] | pad[2:, 1:-1])
    return float(horizontal.sum() / n), float(vertical.sum() / n)


def _second_differences(
    depth: Float[np.ndarray, "h w"], smooth: Bool[np.ndarray, "h w"]
) -> Tuple[Float[np.ndarray, "n"], Float[np.ndarray, "n"]]:  # noqa: F821
    """D[x-1] - 2 D[x] + D[x+1] along rows and columns where the three pixels are ``smooth``, and D[x] there."""
    diffs, centres = [], []
    for d, s in ((depth, smooth), (depth.T, smooth.T)):
        ok = s[:, :-2] & s[:, 1:-1] & s[:, 2:]
        diffs.append((d[:, :-2] - 2 * d[:, 1:-1] + d[:, 2:])[ok])
        centres.append(d[:, 1:-1][ok])
    return np.concatenate(diffs), np.concatenate(centres)


def smooth_surface(depth: Float[np.ndarray, "h w"], state: Int[np.ndarray, "h w"]) -> Bool[np.ndarray, "h w"]:
    """SURFACE pixels that are not on a depth edge or a silhouette (``core.degradation.discontinuities`` with a
    relative jump of :data:`EDGE_JUMP`)."""
    return (state == SURFACE) & ~discontinuities(depth, state, EDGE_JUMP, relative=True)


def relative_noise(depth: Float[np.ndarray, "h w"], state: Int[np.ndarray, "h w"]) -> Tuple[float, int]:
    """(s, n): the robust standard deviation of the depth's independent per-pixel error relative to the depth,
    s = MAD_TO_SIGMA * median|d2 / D| / sqrt(SECOND_DIFFERENCE_VARIANCE) over the n second differences d2 of three
    SURFACE pixels in a row or a column; NaN with none. A surface's own curvature adds to it; depth edges and
    outliers, a minority of the triples, do not (the median). Edges are not left out: noise of a few per cent
    would mark most pixels as edges."""
    d2, centre = _second_differences(depth.astype(np.float64), state == SURFACE)
    if d2.size == 0:
        return float("nan"), 0
    return float(MAD_TO_SIGMA * np.median(np.abs(d2 / centre)) / math.sqrt(SECOND_DIFFERENCE_VARIANCE)), int(d2.size)


def stored_grid(
    shape: Tuple[int, int], stored: Tuple[int, int]
) -> Tuple[Int[np.ndarray, "sh"], Int[np.ndarray, "sw"]]:  # noqa: F821
    """Rows and columns of an image of ``shape`` that sit at the centres of the pixels of a depth map stored at
    ``stored`` size: a depth map that training brought up to the image's size by picking
    (``core.data.upsample_depth``) holds its stored values there, so noise is measured on them, not on the copies
    (which would make every second difference inside a block 0)."""
    (h, w), (sh, sw) = shape, stored
    rows = np.minimum(((np.arange(sh) + 0.5) * h / sh).astype(int), h - 1)
    cols = np.minimum(((np.arange(sw) + 0.5) * w / sw).astype(int), w - 1)
    return rows, cols


def neighbour_differences(depth: Float[np.ndarray, "h w"], state: Int[np.ndarray, "h w"]) -> Float[np.ndarray, "n"]:  # noqa: F821
    """|D[x+1] - D[x]| between horizontal and vertical neighbours that are both :func:`smooth_surface` pixels."""
    smooth = smooth_surface(depth, state)
    d = depth.astype(np.float64)
    return np.concatenate([np.abs(d[:, 1:] - d[:, :-1])[smooth[:, 1:] & smooth[:, :-1]],
                           np.abs(d[1:] - d[:-1])[smooth[1:] & smooth[:-1]]])


def quantisation_step(differences: Float[np.ndarray, "n"], typical_depth: float) -> Optional[float]:  # noqa: F821
    """The step q when the nonzero ``differences`` (:func:`neighbour_differences`, pooled over images) are whole
    multiples of their smallest one (at least :data:`QUANTISATION_SHARE` of them within
    :data:`QUANTISATION_TOLERANCE` q of one), else None. q is the median of the differences within the tolerance of
    the smallest, so one tiny stray difference does not set it. A step below :data:`MIN_RELATIVE_STEP` of the
    ``typical_depth`` is the float storage's, not a sensor's, and is not reported."""
    nonzero = differences[differences > MIN_RELATIVE_STEP * typical_depth]
    if nonzero.size < MIN_MATCHES:
        return None
    smallest = float(nonzero.min())
    q = float(np.median(nonzero[nonzero <= smallest * (1 + QUANTISATION_TOLERANCE)]))
    multiple = nonzero / q
    whole = np.abs(multiple - np.round(multiple)) <= QUANTISATION_TOLERANCE
    return q if whole.mean() >= QUANTISATION_SHARE else None


def kink_profiles(
    depth: Float[np.ndarray, "h w"], state: Int[np.ndarray, "h w"]
) -> Tuple[Float[np.ndarray, "w"], Float[np.ndarray, "h"]]:  # noqa: F821
    """Mean |second difference| / D at each column (along rows) and at each row (along columns), over
    :func:`smooth_surface` pixels. A depth map upsampled from a sensor grid kinks where its pixels meet (bilinear)
    or steps there (nearest), so these profiles repeat with the upsampling factor as period."""
    smooth = smooth_surface(depth, state)
    d = depth.astype(np.float64)
    profiles = []
    for a, s in ((d, smooth), (d.T, smooth.T)):
        ok = s[:, :-2] & s[:, 1:-1] & s[:, 2:]
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.where(ok, np.abs(a[:, :-2] - 2 * a[:, 1:-1] + a[:, 2:]) / np.where(ok, a[:, 1:-1], 1.0), 0.0)
        total, count = k.sum(axis=0), ok.sum(axis=0)
        profile = np.zeros(a.shape[1])
        profile[1:-1] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        profiles.append(profile)
    return profiles[0], profiles[1]


def _period(profiles: Sequence[Float[np.ndarray, "n"]]) -> Tuple[float, float, float]:  # noqa: F821
    """(period in px, peak ratio, phase coherence) of the summed ``profiles``: the periodogram's highest peak
    between :data:`MIN_PERIODS` cycles per image and 1 / :data:`MIN_FACTOR` cycles per pixel, refined by a parabola
    through it and its neighbours; its power over the periodogram's median; and the length of the mean unit phasor
    of the images' own Fourier coefficients at the peak (1: every image has its kinks at the same pixels, as one
    sensor grid gives; about 1 / sqrt(images) for an object's own structure, which moves between views). NaN where
    the profile is too short or flat."""
    stacked = np.stack(profiles)
    profile = stacked.sum(axis=0)
    n = profile.size
    power = np.abs(np.fft.rfft(profile - profile.mean())) ** 2
    lowest, highest = MIN_PERIODS, int(n / MIN_FACTOR)
    band = power[lowest : highest + 1]
    median = float(np.median(power[1:])) if power.size > 1 else 0.0
    if band.size < 3 or not median > 0:
        return float("nan"), float("nan"), float("nan")
    k = lowest + int(np.argmax(band))
    offset = 0.0
    if 0 < k < power.size - 1:
        left, centre, right = power[k - 1], power[k], power[k + 1]
        denominator = left - 2 * centre + right
        offset = float(np.clip(0.5 * (left - right) / denominator, -0.5, 0.5)) if denominator != 0 else 0.0
    own = np.fft.rfft(stacked - stacked.mean(axis=1, keepdims=True), axis=1)[:, k]
    phasors = own / np.maximum(np.abs(own), 1e-300)
    coherence = float(np.abs(phasors.mean()))
    return float(n / (k + offset)), float(power[k] / median), coherence


def upsampling_factor(
    rows: Sequence[Float[np.ndarray, "w"]], columns: Sequence[Float[np.ndarray, "h"]]  # noqa: F821
) -> Optional[float]:
    """The factor by which the depth maps were upsampled from a sensor grid, from their :func:`kink_profiles`
    (along rows, along columns; images of one size): the mean of the two axes' periods (:func:`_period`) when each
    peak stands :data:`PERIOD_PEAK_RATIO` times above its periodogram's median, the images agree on its phase
    (:data:`PHASE_COHERENCE`) and the two periods agree within :data:`PERIOD_AGREEMENT`; None otherwise. A sensor
    grid repeats along both axes with one factor; an object's
    own shape may make one axis periodic, rarely both with one period."""
    if not rows or not columns:
        return None
    (row_period, row_ratio, row_phase), (column_period, column_ratio, column_phase) = _period(rows), _period(columns)
    if not (row_ratio >= PERIOD_PEAK_RATIO and column_ratio >= PERIOD_PEAK_RATIO):
        return None
    if not (row_phase >= PHASE_COHERENCE and column_phase >= PHASE_COHERENCE):
        return None
    if abs(row_period - column_period) > PERIOD_AGREEMENT * min(row_period, column_period):
        return None
    return 0.5 * (row_period + column_period)


def flying_share(
    depth: Float[np.ndarray, "h w"], state: Int[np.ndarray, "h w"], noise: float = 0.0
) -> Tuple[float, int, int]:
    """(share, flying, edges): the share of SURFACE pixels that fly (depth between two surfaces, still marked
    valid), the number of pixels found flying, and the number of SURFACE pixels on a depth edge or a silhouette
    (``core.degradation.discontinuities`` with the same relative limit as below): flying pixels sit on edges, so
    ``flying / edges`` compares images of any resolution (a 64 px view has more of its pixels on edges than a
    200 px one).

    Along each row and column, the surface k pixels to the left of a pixel x, continued to x, lies at
    L_k = D[x-k] + k (D[x-k] - D[x-k-1]) (R_k likewise from the right), for k = 1 .. :data:`FLYING_REACH`. A pixel on a
    smooth surface, or on either side of a clean depth edge, lies at one of them; a flying pixel lies further than
    :data:`FLYING_MARGIN` of the jump |L_k - R_k| from both, for some k where that jump exceeds :data:`EDGE_JUMP`
    of the depth and :data:`JUMP_NOISE_MULT` times the relative ``noise`` (sigma / depth, rounding included). At a
    silhouette (no SURFACE pixel next to it on one side) it lies further than that limit behind L_1. The share of
    flying pixels mixed uniformly between the sides that these tests find is about 1 - 2 FLYING_MARGIN, which is
    divided out."""
    surface = state == SURFACE
    n = int(surface.sum())
    if n == 0:
        return float("nan"), 0, 0
    d = np.where(surface, depth.astype(np.float64), np.nan)
    flying = np.zeros_like(surface)
    judged = np.zeros_like(surface)
    limit = max(EDGE_JUMP, JUMP_NOISE_MULT * (noise if math.isfinite(noise) else 0.0))
    edges = int(discontinuities(np.where(surface, depth, 0.0), state, limit, relative=True).sum())
    pad = FLYING_REACH + 1
    for a, s, flip in ((d, surface, False), (d.T, surface.T, True)):
        found, seen = np.zeros_like(s), np.zeros_like(s)
        p = np.pad(a, ((0, 0), (pad, pad)), constant_values=np.nan)
        ps = np.pad(s, ((0, 0), (pad, pad)))
        width = s.shape[1]

        def at(array: np.ndarray, offset: int) -> np.ndarray:
            return array[:, pad + offset : pad + offset + width]

        centre = at(p, 0)
        with np.errstate(invalid="ignore"):
            for k in range(1, FLYING_REACH + 1):
                left_ok, right_ok = at(ps, -k) & at(ps, -k - 1), at(ps, k) & at(ps, k + 1)
                left = at(p, -k) + k * (at(p, -k) - at(p, -k - 1))
                right = at(p, k) + k * (at(p, k) - at(p, k + 1))
                jump = np.abs(left - right)
                both = s & left_ok & right_ok
                edge = both & (jump > limit * centre)
                found |= edge & (np.minimum(np.abs(centre - left), np.abs(centre - right)) > FLYING_MARGIN * jump)
                seen |= both
                if k == 1:
                    for ok, other_ok, continued in ((left_ok, at(ps, 1), left), (right_ok, at(ps, -1), right)):
                        silhouette = s & ok & ~other_ok
                        found |= silhouette & (centre - continued > limit * centre)
                        seen |= silhouette
        flying |= found.T if flip else found
        judged |= seen.T if flip else seen
    if not judged.any():
        return float("nan"), 0, edges
    return float(flying.sum() / n / (1 - 2 * FLYING_MARGIN)), int(flying.sum()), edges


def inside_box(points: Float[np.ndarray, "p 3"], aabb: Float[np.ndarray, "2 3"]) -> float:
    """Share of ``points`` inside the axis-aligned box ``aabb`` (min corner, max corner), faces included: the
    part of the depth that lands where the model samples (the dataparser's scene box); NaN without points."""
    if len(points) == 0:
        return float("nan")
    inside = np.all((points >= aabb[0]) & (points <= aabb[1]), axis=1)
    return float(inside.mean())


# ----------------------------------------------------------------------------------------------- across views
@dataclass(frozen=True)
class PairMatch:
    """Image ``i``'s surface points seen by view ``j``."""

    i: int
    """The image whose points were reprojected."""
    j: int
    """The view they were reprojected into."""
    relative_error: Float[np.ndarray, "m"]  # noqa: F821
    """|r| / D_j of each matched point, r = |p - o_j| - D_j (``core.consistency.reprojection_residuals``)."""
    log_ratio: Float[np.ndarray, "m"]  # noqa: F821
    """log(D_j / |p - o_j|) of each matched point: 0 where the two depths agree, log(s_j / s_i) for depths scaled
    by s_i and s_j."""


def pair_matches(
    depths: Sequence[Float[np.ndarray, "h w"]],
    surfaces: Sequence[Bool[np.ndarray, "h w"]],
    c2ws: Float[np.ndarray, "n 3 4"],
    intrinsics: Sequence[consistency.Intrinsics],
    neighbours: int = consistency.NEIGHBOURS,
    max_points: Optional[int] = consistency.MAX_POINTS,
    seed: int = 0,
) -> List[PairMatch]:
    """Every image's surface points (at most ``max_points``) reprojected into each of its ``neighbours`` nearest
    views (``core.consistency.nearest_views``), as :class:`PairMatch` es."""
    rng = np.random.default_rng(seed)
    near = consistency.nearest_views(c2ws, neighbours) if len(depths) > 1 else np.zeros((len(depths), 0), int)
    matches = []
    for i in range(len(depths)):
        points = consistency.surface_points(depths[i], surfaces[i], c2ws[i], intrinsics[i], max_points, rng)
        for j in near[i]:
            j = int(j)
            residual = consistency.reprojection_residuals(points, c2ws[j], intrinsics[j], depths[j], surfaces[j])
            distance = _distances_matched(points, c2ws[j], intrinsics[j], depths[j], surfaces[j])
            target = distance - residual  # D_j at each matched point: r = |p - o_j| - D_j
            ok = (target > 0) & (distance > 0)
            matches.append(PairMatch(i, j, np.abs(residual[ok]) / target[ok], np.log(target[ok] / distance[ok])))
    return matches


def _distances_matched(
    points: Float[np.ndarray, "p 3"],
    c2w: Float[np.ndarray, "3 4"],
    intrinsics: consistency.Intrinsics,
    depth: Float[np.ndarray, "h w"],
    surface: Bool[np.ndarray, "h w"],
) -> Float[np.ndarray, "m"]:  # noqa: F821
    """|p - o_j| of the points that ``core.consistency.reprojection_residuals`` matches, in its order: the residual
    plus D_j is that distance, so the residual of depth 0 everywhere is the distance itself."""
    return consistency.reprojection_residuals(points, c2w, intrinsics, np.zeros_like(depth), surface)


def pair_log_scale(match: PairMatch) -> float:
    """log(s_j / s_i): the mean log depth ratio of the matched points above the :data:`OCCLUSION_TRIM` quantile
    and below the mirrored one (occlusions make the ratio too small; the trim is symmetric so that noise does not
    bias it); NaN with fewer than :data:`MIN_MATCHES` matches."""
    if match.log_ratio.size < MIN_MATCHES:
        return float("nan")
    lo, hi = np.quantile(match.log_ratio, [OCCLUSION_TRIM, 1 - OCCLUSION_TRIM])
    kept = match.log_ratio[(match.log_ratio >= lo) & (match.log_ratio <= hi)]
    return float(np.mean(kept)) if kept.size else float("nan")


def frame_log_scales(num_images: int, pairs: Sequence[Tuple[int, int, float]]) -> Float[np.ndarray, "n"]:  # noqa: F821
    """Per-image log scales x minimising sum over pairs (i, j, l_ij) of rho(l_ij - (x_j - x_i)) with sum(x) = 0 (a
    scale common to every image cannot be seen from the images alone): iteratively reweighted least squares with
    Cauchy weights 1 / (1 + (r / c)^2), c = MAD_TO_SIGMA * median|r| (at least :data:`MIN_LOG_SCALE_SPREAD`), so a
    pair of views that see different things (a walk through a room turns away) does not pull every scale; NaN for
    an image in no pair with a finite l_ij."""
    rows = [(i, j, value) for i, j, value in pairs if math.isfinite(value)]
    x = np.full(num_images, np.nan)
    if not rows:
        return x
    seen = sorted({i for i, _, _ in rows} | {j for _, j, _ in rows})
    index = {image: k for k, image in enumerate(seen)}
    a = np.zeros((len(rows) + 1, len(seen)))
    b = np.zeros(len(rows) + 1)
    for r, (i, j, value) in enumerate(rows):
        a[r, index[j]], a[r, index[i]], b[r] = 1.0, -1.0, value
    a[-1, :] = 1.0  # the gauge: sum(x) = 0
    weights = np.ones(len(rows) + 1)
    solution = np.zeros(len(seen))
    for _ in range(IRLS_ITERATIONS):
        solution = np.linalg.lstsq(a * weights[:, None], b * weights, rcond=None)[0]
        residual = (a @ solution - b)[:-1]
        c = max(MAD_TO_SIGMA * float(np.median(np.abs(residual))), MIN_LOG_SCALE_SPREAD)
        weights[:-1] = np.sqrt(1.0 / (1.0 + (residual / c) ** 2))
    x[seen] = solution
    return x


IRLS_ITERATIONS = 20
"""Reweighting rounds of :func:`frame_log_scales` (the weights settle within a few)."""
MIN_LOG_SCALE_SPREAD = 1e-3
"""Smallest Cauchy scale of :func:`frame_log_scales` (0.1 % in scale): pairs that agree to numerical precision
would otherwise give every other pair a weight of 0."""


def scale_range(log_scales: Float[np.ndarray, "n"]) -> float:  # noqa: F821
    """r of a per-image scale drawn log-uniformly in [1/r, r] (``core.degradation.monocular``) that has the
    standard deviation of the finite ``log_scales``: a log-uniform scale on [-log r, log r] has standard deviation
    log r / sqrt(3), so r = exp(sqrt(3) std); 1 for depth in one scale; NaN with fewer than 2 images."""
    finite = log_scales[np.isfinite(log_scales)]
    if finite.size < 2:
        return float("nan")
    return float(math.exp(math.sqrt(3.0) * float(np.std(finite))))


def error_map(
    index: int,
    depths: Sequence[Float[np.ndarray, "h w"]],
    surfaces: Sequence[Bool[np.ndarray, "h w"]],
    c2ws: Float[np.ndarray, "n 3 4"],
    intrinsics: Sequence[consistency.Intrinsics],
    neighbours: int = consistency.NEIGHBOURS,
) -> Float[np.ndarray, "h w"]:
    """Per pixel of image ``index``: the relative reprojection error |r| / D_j of its surface point in the
    neighbour (among its ``neighbours`` nearest) where it is smallest (an occlusion in one neighbour does not show);
    NaN where no neighbour sees it."""
    depth, surface = depths[index], surfaces[index]
    rows, cols = np.nonzero(surface)
    out = np.full(depth.shape, np.nan)
    if rows.size == 0 or len(depths) < 2:
        return out
    points = consistency.surface_points(depth, surface, c2ws[index], intrinsics[index], max_points=None)
    best = np.full(rows.size, np.inf)
    for j in consistency.nearest_views(c2ws, neighbours)[index]:
        j = int(j)
        fx, fy, cx, cy = intrinsics[j]
        rotation, origin = c2ws[j][:, :3], c2ws[j][:, 3]
        local = (points - origin) @ rotation
        ahead = -local[:, 2]
        safe = np.where(ahead > 1e-9, ahead, 1.0)
        u = np.floor(fx * local[:, 0] / safe + cx).astype(np.int64)
        v = np.floor(-fy * local[:, 1] / safe + cy).astype(np.int64)
        h, w = depths[j].shape
        inside = (ahead > 1e-9) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        hit = np.zeros_like(inside)
        hit[inside] = surfaces[j][v[inside], u[inside]]
        target = np.zeros(rows.size)
        target[hit] = depths[j][v[hit], u[hit]]
        distance = np.linalg.norm(local, axis=-1)
        relative = np.where(hit, np.abs(distance - target) / np.where(hit, target, 1.0), np.inf)
        best = np.minimum(best, relative)
    out[rows, cols] = np.where(np.isfinite(best), best, np.nan)
    return out
