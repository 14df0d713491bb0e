"""Depth as sensors deliver it: degradation models applied to exact depth maps at load time (training split only).

Every model is a pure function ``(depth, state, sigma, rng, **params) -> (depth, state, sigma)`` over one image:

* ``depth``: distance along each pixel's ray in Blender units, meaningful where ``state`` is SURFACE;
* ``state``: the pixel's :class:`~depth_strategies.core.data.DepthState` (0 unknown, 1 surface, 2 empty);
* ``sigma``: the per-pixel standard deviation of the depth error *as the sensor would report it* (0 = exact), which
  the uncertainty-aware strategies read (``DepthStrategyModelConfig.sigma_window_mult``).

The three pixel states are respected by every model: an UNKNOWN pixel stays UNKNOWN; a dropped SURFACE pixel becomes
UNKNOWN, never EMPTY; EMPTY pixels (alpha = 0, known from the image's mask, not from the depth sensor) are left alone;
a degraded value that is not a positive finite distance makes its pixel UNKNOWN.

Degradations are declared as data: a string ``kind(key=value, ...)`` per model, e.g. ``noise(b=0.01)``, in
``DepthDataManagerConfig.depth_degradations`` (``ns-train ... --pipeline.datamanager.depth-degradations
"noise(b=0.01)" "sparse(lines=16)"``) and in protocols. :func:`parse_degradation` validates one string;
:func:`degrade` applies a list of them, deterministically for a seed and an image index.

Sensor models and their sources:

* ``noise``: sigma = a + b D + c D^2 (ToF / structured light / stereo: noise growing with range; e.g. Khoshelham &
  Elberink 2012 for the Kinect, sigma ~ D^2), plus a fraction of outliers drawn uniformly in a depth range;
* ``holes``: random blobs of missing depth (dark, shiny or far surfaces) and the pixels near depth discontinuities
  and silhouettes dropped (what sensors' edge filters remove);
* ``flying``: flying pixels (Reynolds et al. 2011): pixels at discontinuities and silhouettes get a mix of the
  foreground and background depth instead of being dropped, and stay marked as surface;
* ``sparse``: a spinning LiDAR's horizontal scanlines, or random points at a density;
* ``lowres``: depth measured at 1 / factor of the RGB resolution (the iPhone's 256x192 for 1920x1440 is 1/7.5) and
  upsampled with bilinear interpolation (as ARKit and most pipelines do) or nearest neighbour;
* ``quantise``: values rounded to a step (8-bit over a range: (hi - lo) / 255; millimetre 16-bit: 0.001 m);
* ``monocular``: a monocular network's output, right in shape only: per image an unknown scale and shift in depth or
  in inverse depth, and a smooth low-frequency multiplicative warp.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Float

UNKNOWN, SURFACE, EMPTY = 0, 1, 2
"""Pixel states, as :class:`depth_strategies.core.data.DepthState` (kept as ints: this module imports no torch)."""

DepthMaps = Tuple[Float[np.ndarray, "h w"], np.ndarray, Float[np.ndarray, "h w"]]
"""(depth, state, sigma) of one image."""


# --------------------------------------------------------------------------------------------- helpers
def _finish(depth: np.ndarray, state: np.ndarray, sigma: np.ndarray) -> DepthMaps:
    """Pixels whose depth is no longer a positive finite distance become UNKNOWN; non-SURFACE depth is 0."""
    state = state.copy()
    bad = (state == SURFACE) & ~(np.isfinite(depth) & (depth > 0))
    state[bad] = UNKNOWN
    surface = state == SURFACE
    return (
        np.where(surface, depth, 0.0).astype(np.float32),
        state.astype(np.uint8),
        np.where(surface, sigma, 0.0).astype(np.float32),
    )


def _shift(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``array`` moved by (dy, dx) pixels; pixels moved in from outside the image repeat its border."""
    h, w = array.shape
    r = max(abs(dy), abs(dx))
    padded = np.pad(array, r, mode="edge")
    return padded[r - dy : r - dy + h, r - dx : r - dx + w]


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``mask`` with a (2 radius + 1)^2 square."""
    out = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy or dx:
                out |= _shift(mask, dy, dx)
    return out


def discontinuities(depth: np.ndarray, state: np.ndarray, jump: float, relative: bool = False) -> np.ndarray:
    """SURFACE pixels with a 4-neighbour that is not SURFACE (a silhouette or a hole's rim) or whose depth differs by
    more than ``jump`` Blender units (an occlusion edge); with ``relative``, by more than ``jump`` times the nearer
    of the two depths. Pixels outside the image repeat its border (the border is not an edge)."""
    surface = state == SURFACE
    edge = np.zeros_like(surface)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        neighbour_surface = _shift(surface, dy, dx)
        neighbour_depth = _shift(depth, dy, dx)
        limit = jump * np.minimum(depth, neighbour_depth) if relative else jump
        with np.errstate(invalid="ignore"):
            edge |= surface & (~neighbour_surface | (np.abs(depth - neighbour_depth) > limit))
    return edge


# --------------------------------------------------------------------------------------------- the models
def range_noise(
    depth: np.ndarray,
    state: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    a: float = 0.0,
    b: float = 0.0,
    c: float = 0.0,
    outliers: float = 0.0,
    outlier_lo: float = 2.0,
    outlier_hi: float = 6.0,
) -> DepthMaps:
    """Gaussian noise with sigma = a + b D + c D^2 (Blender units; b a fraction of D, c per unit), and a fraction
    ``outliers`` of the surface pixels replaced by a depth drawn uniformly in [outlier_lo, outlier_hi].

    The reported sigma grows by the noise's sigma (in quadrature); outliers are not flagged (a sensor does not know).
    """
    if min(a, b, c) < 0 or not 0 <= outliers <= 1 or outlier_hi < outlier_lo:
        raise ValueError("noise: a, b, c must be >= 0, outliers in [0, 1] and outlier_lo <= outlier_hi")
    surface = state == SURFACE
    noise_sigma = a + b * depth + c * depth**2
    noisy = depth + rng.standard_normal(depth.shape) * noise_sigma
    replace = surface & (rng.random(depth.shape) < outliers)
    noisy = np.where(replace, rng.uniform(outlier_lo, outlier_hi, depth.shape), noisy)
    return _finish(noisy, state, np.sqrt(sigma.astype(np.float64) ** 2 + noise_sigma**2))


def holes(
    depth: np.ndarray,
    state: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    fraction: float = 0.0,
    radius: int = 4,
    edges: int = 0,
    jump: float = 0.1,
) -> DepthMaps:
    """Drop (make UNKNOWN) round blobs of ``radius`` px covering about ``fraction`` of the surface pixels, and every
    surface pixel within ``edges`` px of a discontinuity (:func:`discontinuities` with ``jump``)."""
    if not 0 <= fraction <= 1 or radius < 0 or edges < 0:
        raise ValueError("holes: fraction must be in [0, 1], radius and edges >= 0")
    surface = state == SURFACE
    dropped = np.zeros_like(surface)
    n_surface = int(surface.sum())
    if fraction > 0 and n_surface:
        yy, xx = np.mgrid[: depth.shape[0], : depth.shape[1]]
        candidates = np.argwhere(surface)
        while (dropped & surface).sum() < fraction * n_surface:
            cy, cx = candidates[rng.integers(len(candidates))]
            dropped |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    if edges > 0:
        dropped |= dilate(discontinuities(depth, state, jump), edges - 1)
    new_state = np.where(surface & dropped, UNKNOWN, state)
    return _finish(depth, new_state, sigma)


def flying_pixels(
    depth: np.ndarray,
    state: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    width: int = 1,
    jump: float = 0.1,
    background: float = 6.0,
) -> DepthMaps:
    """Surface pixels within ``width`` px of a discontinuity get ``(1 - m) D_near + m D_far`` with m ~ U(0, 1),
    ``D_near`` / ``D_far`` the smallest / largest depth in their 3x3 neighbourhood (a non-surface neighbour counts as
    ``background``, Blender units). They stay SURFACE: the sensor reports them as valid."""
    if width < 1:
        raise ValueError("flying: width must be >= 1")
    surface = state == SURFACE
    near, far = depth.copy(), depth.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            neighbour = np.where(_shift(surface, dy, dx), _shift(depth, dy, dx), background)
            near, far = np.minimum(near, neighbour), np.maximum(far, neighbour)
    edge = dilate(discontinuities(depth, state, jump), width - 1) & surface
    mix = rng.random(depth.shape)
    flown = np.where(edge, (1 - mix) * near + mix * far, depth)
    return _finish(flown, state, sigma)


def sparse(
    depth: np.ndarray,
    state: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    lines: int = 0,
    density: float = 0.0,
) -> DepthMaps:
    """Keep depth only on ``lines`` evenly spaced horizontal scanlines (random phase), or at random pixels with
    probability ``density``; the other surface pixels become UNKNOWN. Exactly one of ``lines`` and ``density``."""
    if (lines > 0) == (density > 0) or lines < 0 or not 0 <= density <= 1:
        raise ValueError("sparse: give exactly one of lines (> 0) and density (in (0, 1])")
    h, w = depth.shape
    if lines > 0:
        rows = np.floor((np.arange(lines) + rng.random()) * h / lines).astype(int).clip(0, h - 1)
        keep = np.zeros((h, w), dtype=bool)
        keep[rows, :] = True
    else:
        keep = rng.random((h, w)) < density
    new_state = np.where((state == SURFACE) & ~keep, UNKNOWN, state)
    return _finish(depth, new_state, sigma)


def low_resolution(
    depth: np.ndarray,
    state: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    factor: float = 4.0,
    upsample: str = "bilinear",
) -> DepthMaps:
    """Depth measured at ``1 / factor`` of the image resolution and upsampled back.

    Each sensor pixel averages the depth over the image pixels it covers and measures nothing when fewer than half of
    them are SURFACE; ``upsample`` "nearest" picks the sensor pixel under each image pixel's centre, "bilinear"
    interpolates the four around it (an image pixel with one of them missing becomes UNKNOWN). Only image pixels that
    were SURFACE keep a depth: the interpolation mixes depths across occlusion edges inside the object, as real
    pipelines do.
    """
    if factor < 1 or upsample not in ("bilinear", "nearest"):
        raise ValueError('lowres: factor must be >= 1 and upsample "bilinear" or "nearest"')
    h, w = depth.shape
    lh, lw = max(1, round(h / factor)), max(1, round(w / factor))
    # the sensor pixel that covers each image pixel (by its centre), and the box average over each sensor pixel
    by = np.minimum(((np.arange(h) + 0.5) * lh / h).astype(int), lh - 1)
    bx = np.minimum(((np.arange(w) + 0.5) * lw / w).astype(int), lw - 1)
    block = (by[:, None] * lw + bx[None, :]).ravel()
    surface = (state == SURFACE).ravel()
    count = np.bincount(block, minlength=lh * lw).reshape(lh, lw)
    hits = np.bincount(block, weights=surface.astype(np.float64), minlength=lh * lw).reshape(lh, lw)
    total = np.bincount(block, weights=np.where(surface, depth.ravel(), 0.0), minlength=lh * lw).reshape(lh, lw)
    low_ok = hits * 2 > count
    low = np.where(low_ok, total / np.maximum(hits, 1), 0.0)
    # image pixel centres in sensor pixel coordinates
    py, px = (np.arange(h) + 0.5) * lh / h - 0.5, (np.arange(w) + 0.5) * lw / w - 0.5
    if upsample == "nearest":
        ny, nx = np.floor(py + 0.5).astype(int).clip(0, lh - 1), np.floor(px + 0.5).astype(int).clip(0, lw - 1)
        up, ok = low[np.ix_(ny, nx)], low_ok[np.ix_(ny, nx)]
    else:
        y0, x0 = np.floor(py).astype(int), np.floor(px).astype(int)
        fy, fx = (py - y0)[:, None], (px - x0)[None, :]
        y0c, y1c = y0.clip(0, lh - 1), (y0 + 1).clip(0, lh - 1)
        x0c, x1c = x0.clip(0, lw - 1), (x0 + 1).clip(0, lw - 1)
        up = np.zeros((h, w))
        ok = np.ones((h, w), dtype=bool)
        for yi, wy in ((y0c, 1 - fy), (y1c, fy)):
            for xi, wx in ((x0c, 1 - fx), (x1c, fx)):
                up += wy * wx * low[np.ix_(yi, xi)]
                ok &= low_ok[np.ix_(yi, xi)]
    new_state = np.where((state == SURFACE) & ~ok, UNKNOWN, state)
    return _finish(np.where(ok, up, 0.0), new_state, sigma)


def quantise(
    depth: np.ndarray,
    state: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    step: float = 0.0,
    bits: int = 8,
    lo: float = 2.0,
    hi: float = 6.0,
) -> DepthMaps:
    """Round depth to multiples of ``step`` (Blender units), or, with ``step`` 0, to ``2^bits - 1`` levels over
    [lo, hi] (clipped to it). The reported sigma grows by step / sqrt(12), the rounding error's standard deviation."""
    if step < 0 or bits < 1 or hi <= lo:
        raise ValueError("quantise: step must be >= 0, bits >= 1 and lo < hi")
    if step > 0:
        rounded = np.round(depth / step) * step
        q = step
    else:
        q = (hi - lo) / (2**bits - 1)
        rounded = lo + np.round((np.clip(depth, lo, hi) - lo) / q) * q
    return _finish(rounded, state, np.sqrt(sigma.astype(np.float64) ** 2 + q**2 / 12.0))


def smooth_field(shape: Tuple[int, int], rng: np.random.Generator, terms: int = 3) -> np.ndarray:
    """A random low-frequency field in [-1, 1]: a sum of ``terms`` plane cosines of at most one cycle per image."""
    h, w = shape
    y, x = np.mgrid[:h, :w]
    field = np.zeros(shape)
    for _ in range(terms):
        fy, fx = rng.uniform(-1, 1, 2)
        field += np.cos(2 * np.pi * (fy * y / h + fx * x / w) + rng.uniform(0, 2 * np.pi))
    return field / max(float(np.abs(field).max()), 1e-12)


def monocular(
    depth: np.ndarray,
    state: np.ndarray,
    sigma: np.ndarray,
    rng: np.random.Generator,
    scale_lo: float = 1.0,
    scale_hi: float = 1.0,
    shift_lo: float = 0.0,
    shift_hi: float = 0.0,
    space: str = "depth",
    warp: float = 0.0,
) -> DepthMaps:
    """A monocular estimate: one scale s (log-uniform in [scale_lo, scale_hi]) and shift t (uniform in [shift_lo,
    shift_hi]) per image, ``s D + t`` in "depth" space (t in Blender units) or ``1 / (s / D + t)`` in "inverse" space
    (t in 1 / Blender units), then times ``1 + warp * f`` with f a smooth field in [-1, 1] (:func:`smooth_field`).
    The reported sigma is unchanged: a monocular network reports no metric uncertainty."""
    if not 0 < scale_lo <= scale_hi or shift_hi < shift_lo or space not in ("depth", "inverse") or not 0 <= warp < 1:
        raise ValueError('monocular: need 0 < scale_lo <= scale_hi, shift_lo <= shift_hi, space "depth" or '
                         '"inverse", 0 <= warp < 1')
    s = math.exp(rng.uniform(math.log(scale_lo), math.log(scale_hi)))
    t = rng.uniform(shift_lo, shift_hi)
    d = depth.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = s * d + t if space == "depth" else 1.0 / (s / d + t)
    out = out * (1.0 + warp * smooth_field(depth.shape, rng))
    return _finish(out, state, sigma)


MODELS: Mapping[str, Callable[..., DepthMaps]] = {
    "noise": range_noise,
    "holes": holes,
    "flying": flying_pixels,
    "sparse": sparse,
    "lowres": low_resolution,
    "quantise": quantise,
    "monocular": monocular,
}
"""Degradation kinds by name, as written in ``kind(key=value, ...)``."""


# --------------------------------------------------------------------------------------------- as data
@dataclass(frozen=True)
class Degradation:
    """One parsed degradation: a kind of :data:`MODELS` and its keyword parameters."""

    kind: str
    """Name in :data:`MODELS`."""
    params: Tuple[Tuple[str, Any], ...] = ()
    """Keyword parameters of the model function, in the order written."""

    def apply(self, depth: np.ndarray, state: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> DepthMaps:
        """The model applied to one image."""
        return MODELS[self.kind](depth, state, sigma, rng, **dict(self.params))


_SPEC = re.compile(r"^\s*([a-z]+)\s*(?:\((.*)\))?\s*$", re.S)


def parse_degradation(text: str) -> Degradation:
    """``"noise(b=0.01, outliers=0.02)"`` -> :class:`Degradation`; values are Python literals (numbers, strings).

    Raises ValueError naming the string, the unknown kind or parameter, and the allowed ones.
    """
    match = _SPEC.match(text)
    if not match or match.group(1) not in MODELS:
        raise ValueError(
            f"depth degradation {text!r}: write kind(key=value, ...) with kind one of {', '.join(MODELS)}"
        )
    kind, body = match.group(1), (match.group(2) or "").strip()
    try:
        call = ast.parse(f"f({body})", mode="eval").body
        assert isinstance(call, ast.Call) and not call.args
        params = tuple((kw.arg, ast.literal_eval(kw.value)) for kw in call.keywords)
    except (SyntaxError, ValueError, AssertionError):
        raise ValueError(
            f"depth degradation {text!r}: parameters must be key=value pairs of numbers or strings"
        ) from None
    allowed = list(inspect.signature(MODELS[kind]).parameters)[4:]
    for key, _ in params:
        if key not in allowed:
            raise ValueError(
                f"depth degradation {text!r}: {kind} has no parameter {key!r}; it takes {', '.join(allowed)}"
            )
    degradation = Degradation(kind, params)
    # validate the values once, on a tiny map, so that a bad value fails at start-up with this message
    try:
        degradation.apply(np.full((4, 4), 3.0), np.full((4, 4), SURFACE, np.uint8), np.zeros((4, 4)),
                          np.random.default_rng(0))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"depth degradation {text!r}: {exc}") from None
    return degradation


def degrade(
    depth: np.ndarray,
    state: np.ndarray,
    degradations: Sequence[Degradation],
    seed: int,
    image_index: int,
    sigma: Optional[np.ndarray] = None,
) -> DepthMaps:
    """Apply ``degradations`` in order to one image; the same (seed, image_index) gives the same maps.

    Each model draws from its own generator, seeded by (seed, image_index, position in the list), so adding a
    model at the end of the list does not change what the earlier ones did.
    """
    sigma = np.zeros(depth.shape, np.float32) if sigma is None else sigma
    maps: DepthMaps = _finish(depth.astype(np.float64), state, sigma.astype(np.float64))
    for position, degradation in enumerate(degradations):
        rng = np.random.default_rng([seed, image_index, position])
        maps = degradation.apply(maps[0].astype(np.float64), maps[1], maps[2].astype(np.float64), rng)
    return maps

