"""The measurements of a loaded dataset, the kind and level of its depth in the study's terms, and the pick.

:func:`measure_data` runs every measurement of :mod:`depth_strategies.inspect.measure` over the training split;
:func:`classify` names the kinds it finds, each with its level in the unit of ``configs/depth-kinds.json``; the
kind that decides the pick is the first found in :data:`PRECEDENCE`; :func:`recommend` looks the pick up at the
studied level nearest the measured one.

Where a kind was studied, whether a level is found at all is decided by the studied levels: a measured level counts
when it is nearer the mildest studied level than the clean value (:func:`nearer_than_clean`). Kinds no study
degraded depth into need a floor of their own; each is a named constant with its reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from depth_strategies.core import consistency
from depth_strategies.inspect import measure
from depth_strategies.inspect.load import LoadedData, surfaces
from depth_strategies.inspect.mapping import KINDS, ns_train_line

PRECEDENCE = ("monocular", "sparse", "phone", "lowres", "flying", "noise", "holes", "quantise")
"""Which found kind decides the pick, first first: a monocular scale or sparse points change what a method can
do with the depth at all; a phone's low-resolution depth with confidence maps is the study's phone capture whatever
else it has; then the kinds that leave dense metric depth, flying pixels before noise because they inflate the
noise estimate (they are outliers at edges: on a 64 px view with many edges, a third of the pixels).
``clean`` when none is found."""
CLEAN_LEVEL = {"noise": 0.0, "sparse": 0.0, "monocular": 1.0}
"""The level of exact depth in each studied kind's unit: no noise, no pixel without depth, one scale."""
HOLES_SHARE = 0.05
"""Share of the expected surface pixels without depth above which dense depth has holes. Chosen: the exact depth
of the built-in scene misses none and lego's (8-bit) misses under 1 %; the holes model of the study's docs drops
from 10 %."""
FLYING_EDGE_SHARE = 0.5
"""Share of the edge pixels found flying (:func:`measure.flying_share`: flying / edges) above which depth has
flying pixels. Chosen from measurements on the built-in scene at 64 and 128 px and on lego-10: exact depth gives
0.05, 0.20 and 0.36 (lego's fine parts, whose slopes read as jumps), noise and rounding up to 0.42, monocular
depth as exact; flying pixels at every edge (1 or 2 px wide) 0.58 to 0.73."""
MIN_FACTOR = measure.MIN_FACTOR
"""Depth at half the image resolution or less is low-resolution."""


def nearer_than_clean(kind: str, value: float, studied: Sequence[float]) -> bool:
    """Whether a measured level of a studied ``kind`` is nearer to its mildest studied level than to the clean
    level (:data:`CLEAN_LEVEL`), on the scale of :func:`_coordinate`: beyond half way from clean to the mildest
    studied level (noise: sigma / depth above 0.5 %; sparse: more than 40 % of the pixels without depth;
    monocular: r above exp(log(1.1) / 2) = 1.049, with the committed studies)."""
    if not studied or not math.isfinite(value):
        return False
    clean = CLEAN_LEVEL[kind]
    mildest = min(studied, key=lambda level: abs(_coordinate(kind, level) - _coordinate(kind, clean)))
    return abs(_coordinate(kind, value) - _coordinate(kind, clean)) > 0.5 * abs(
        _coordinate(kind, mildest) - _coordinate(kind, clean))


def _coordinate(kind: str, level: float) -> float:
    """A level on the scale where the studied levels are compared: the noise's sigma / depth as it is, the sparse
    share without depth as it is, the monocular scale range as log r."""
    return math.log(level) if kind == "monocular" else float(level)


def _spacing(kind: str, level: float) -> float:
    """The quantity whose logarithm spaces a studied kind's levels evenly: the noise's sigma / depth (0.01, 0.03,
    0.1), the sparse density, 1 - the share without depth (20 %, 5 %, 1 %), the monocular log r (1.1, 1.5, 2)."""
    value = 1.0 - level if kind == "sparse" else math.log(level) if kind == "monocular" else level
    return max(value, 1e-12)


def nearest_level(kind: str, value: float, studied: Sequence[float]) -> Optional[float]:
    """The studied level nearest the measured ``value`` on the log scale of :func:`_spacing`."""
    if not studied or not math.isfinite(value):
        return None
    target = math.log(_spacing(kind, value))
    return min(studied, key=lambda level: abs(math.log(_spacing(kind, level)) - target))


@dataclass
class FrameMeasures:
    """What was measured on one training image."""

    index: int
    """Index in the training split."""
    image: str
    """Image file name."""
    coverage: float
    """Share of the expected surface pixels with depth."""
    neighbours: List[float]
    """Share of pixels with depth whose horizontal / vertical neighbour has depth."""
    noise: float
    """Relative noise sigma / depth (:func:`measure.relative_noise`)."""
    noise_units: float
    """The same in scene units, at the image's median depth."""
    flying: float
    """Share of surface pixels found flying."""
    inside_box: float
    """Share of its surface points inside the scene box."""
    flying_pixels: int
    """Pixels found flying."""
    edge_pixels: int
    """Surface pixels on a depth edge or a silhouette."""
    median_depth: float
    """Median depth of its surface pixels, scene units."""
    consistency_median: float
    """Median relative reprojection error of its points in its nearest views."""
    consistency_p90: float
    """90th percentile of the same."""
    scale: float
    """Its depth scale against its neighbours' (1 for metric depth; a set of images is aligned to their geometric
    mean, :func:`measure.frame_log_scales`)."""
    inconsistency: Optional[float]
    """Its multi-view inconsistency as training measures it (``core.consistency``), scene units."""


@dataclass
class Measurements:
    """Everything measured over the training split."""

    frames: List[FrameMeasures]
    """Per image."""
    coverage: float
    """Share of the expected surface pixels with depth, over every image."""
    neighbours: List[float]
    """Horizontal / vertical neighbour shares, mean over images."""
    noise: float
    """Relative noise, median over images."""
    noise_units: float
    """Noise in scene units, median over images."""
    flying: float
    """Flying share of the surface pixels, mean over images."""
    flying_edges: float
    """Pixels found flying over edge pixels, over every image."""
    inside_box: float
    """Share of the surface points inside the scene box, mean over images."""
    quantisation_step: Optional[float]
    """Step the depth is rounded to, scene units; None: not rounded."""
    upsampling_factor: Optional[float]
    """Factor the depth was upsampled by: from the files' resolution, else from the depth maps' kinks; None."""
    file_factor: Optional[float]
    """Image width over stored depth width, when the depth is stored smaller."""
    scale_range: float
    """r of the per-image scales (:func:`measure.scale_range`): 1 for metric depth."""
    consistency_median: float
    """Median relative reprojection error over every matched point."""
    consistency_p90: float
    """90th percentile of the same."""
    median_depth: float
    """Median depth over every surface pixel, scene units."""
    depth_range: List[float]
    """1st and 99th percentile of the depth over every surface pixel, scene units."""
    confidence_maps: int
    """Training images with a confidence map."""


def measure_data(data: LoadedData) -> Measurements:
    """Every measurement over the training split of ``data``."""
    frames = data.train
    depths = [f.depth for f in frames]
    surface = surfaces(frames)
    c2ws = np.stack([f.c2w for f in frames])
    intrinsics = [f.intrinsics for f in frames]
    matches = measure.pair_matches(depths, surface, c2ws, intrinsics)
    log_scales = measure.frame_log_scales(len(frames), [(m.i, m.j, measure.pair_log_scale(m)) for m in matches])
    all_depth = np.concatenate([f.depth[s] for f, s in zip(frames, surface)])
    typical = float(np.median(all_depth)) if all_depth.size else float("nan")
    step = measure.quantisation_step(np.concatenate([measure.neighbour_differences(f.depth, f.state) for f in frames]),
                                     typical)
    rounding = step / math.sqrt(12.0) / typical if step is not None else 0.0  # a rounding error's sigma: q / sqrt(12)
    train = next(s for s in data.splits if s.split == "train")
    per_frame = []
    for k, f in enumerate(frames):
        if train.depth_hw and train.depth_hw[1] < f.depth.shape[1]:  # stored smaller: measure the stored values
            grid = np.ix_(*measure.stored_grid(f.depth.shape, train.depth_hw))
            noise, _ = measure.relative_noise(f.depth[grid], f.state[grid])
        else:
            noise, _ = measure.relative_noise(f.depth, f.state)
        median = float(np.median(f.depth[surface[k]])) if surface[k].any() else float("nan")
        errors = np.concatenate([m.relative_error for m in matches if m.i == k] or [np.empty(0)])
        points = consistency.surface_points(f.depth, surface[k], f.c2w, f.intrinsics)
        fly_share, fly_count, edge_count = measure.flying_share(
            f.depth, f.state, max(noise, rounding) if math.isfinite(noise) else rounding)
        per_frame.append(FrameMeasures(
            index=f.index,
            image=f.image.name,
            coverage=measure.coverage(f.state, f.expected),
            neighbours=list(measure.neighbour_shares(f.state)),
            noise=noise,
            noise_units=noise * median,
            flying=fly_share,
            inside_box=measure.inside_box(points, data.scene_box),
            flying_pixels=fly_count,
            edge_pixels=edge_count,
            median_depth=median,
            consistency_median=float(np.median(errors)) if errors.size else float("nan"),
            consistency_p90=float(np.quantile(errors, 0.9)) if errors.size else float("nan"),
            scale=float(math.exp(log_scales[k])) if math.isfinite(log_scales[k]) else float("nan"),
            inconsistency=None if data.training_inconsistency is None else float(data.training_inconsistency[k]),
        ))
    kinks: Dict[tuple, List] = {}
    for f in frames:
        kinks.setdefault(f.depth.shape, []).append(measure.kink_profiles(f.depth, f.state))
    largest = max(kinks.values(), key=len)
    kink_factor = measure.upsampling_factor([k[0] for k in largest], [k[1] for k in largest])
    file_factor = None
    if train.depth_hw and train.image_hw and train.depth_hw[1] < train.image_hw[1]:
        file_factor = train.image_hw[1] / train.depth_hw[1]
    errors = np.concatenate([m.relative_error for m in matches] or [np.empty(0)])
    expected = sum(int(f.expected.sum()) for f in frames)
    return Measurements(
        frames=per_frame,
        coverage=float(sum(int(s.sum()) for s in surface) / expected) if expected else float("nan"),
        neighbours=[float(v) for v in np.nanmean([pf.neighbours for pf in per_frame], axis=0)],
        noise=_finite(np.median, [pf.noise for pf in per_frame]),
        noise_units=_finite(np.median, [pf.noise_units for pf in per_frame]),
        flying=_finite(np.mean, [pf.flying for pf in per_frame]),
        inside_box=_finite(np.mean, [pf.inside_box for pf in per_frame]),
        flying_edges=(sum(pf.flying_pixels for pf in per_frame) / edges) if (edges := sum(
            pf.edge_pixels for pf in per_frame)) else float("nan"),
        quantisation_step=step,
        upsampling_factor=file_factor or kink_factor,
        file_factor=file_factor,
        scale_range=measure.scale_range(log_scales),
        consistency_median=float(np.median(errors)) if errors.size else float("nan"),
        consistency_p90=float(np.quantile(errors, 0.9)) if errors.size else float("nan"),
        median_depth=typical,
        depth_range=[float(v) for v in np.percentile(all_depth, [1, 99])] if all_depth.size else [],
        confidence_maps=train.with_confidence,
    )


def _finite(statistic, values: Sequence[float]) -> float:
    """``statistic`` of the finite ``values``; NaN when none is (sparse depth with no three pixels in a row)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(statistic(finite)) if finite else float("nan")


@dataclass
class Finding:
    """One kind found in the depth, with its level."""

    kind: str
    """A kind of ``configs/depth-kinds.json``."""
    level: Optional[float]
    """Its level in the mapping's unit for the kind (``KINDS[kind]["level"]``); None where it has none."""
    evidence: str
    """What was measured, in words."""


def studied_levels(mapping: Mapping[str, Any], kind: str) -> List[float]:
    """The levels of ``kind`` that a committed study measured."""
    return [entry["level"] for entry in mapping["kinds"][kind]["levels"]
            if entry["level"] is not None and entry["rows"]]


def classify(m: Measurements, mapping: Mapping[str, Any]) -> List[Finding]:
    """Every kind found in the measurements, in :data:`PRECEDENCE` order; ``[clean]`` when none is."""
    found: Dict[str, Finding] = {}
    relative = beyond_noise(m.scale_range, m.noise)
    if nearer_than_clean("monocular", relative, studied_levels(mapping, "monocular")):
        found["monocular"] = Finding("monocular", relative,
                                     f"per-image scales against the neighbours spread over r = {relative:.2f}")
    horizontal, vertical = m.neighbours
    share_without = 1.0 - m.coverage
    sparse_pattern = min(horizontal, vertical) < SPARSE_NEIGHBOUR_SHARE
    if sparse_pattern and nearer_than_clean("sparse", share_without, studied_levels(mapping, "sparse")):
        pattern = "scanlines" if horizontal >= SPARSE_NEIGHBOUR_SHARE else "scattered points"
        found["sparse"] = Finding("sparse", share_without,
                                  f"{pattern}: {m.coverage:.1%} of the expected pixels have depth")
    if m.confidence_maps:
        found["phone"] = Finding("phone", None, f"{m.confidence_maps} training images have confidence maps")
    if m.upsampling_factor is not None and m.upsampling_factor >= MIN_FACTOR:
        source = "stored" if m.file_factor else "upsampled (kinks every"
        text = (f"depth stored at 1/{m.file_factor:.3g} of the image width" if m.file_factor
                else f"{source} {m.upsampling_factor:.2f} px)")
        found["lowres"] = Finding("lowres", m.upsampling_factor, text)
    noise = m.noise
    quantisation = 0.0
    if m.quantisation_step is not None and m.median_depth > 0:
        quantisation = m.quantisation_step / math.sqrt(12.0) / m.median_depth  # a rounding error's sigma: q / sqrt(12)
        noise = math.sqrt(max(0.0, noise**2 - quantisation**2))
    if nearer_than_clean("noise", noise, studied_levels(mapping, "noise")):
        found["noise"] = Finding("noise", noise, f"sigma = {noise:.2%} of the depth ({m.noise_units:.3g} scene units)")
    if m.flying_edges > FLYING_EDGE_SHARE:
        found["flying"] = Finding("flying", m.flying, f"{m.flying_edges:.0%} of the pixels at depth edges and "
                                                      f"{m.flying:.1%} of all lie between two surfaces")
    if not sparse_pattern and share_without > HOLES_SHARE:
        found["holes"] = Finding("holes", share_without, f"{share_without:.1%} of the expected pixels have no depth")
    if m.quantisation_step is not None and nearer_than_clean("noise", quantisation, studied_levels(mapping, "noise")):
        found["quantise"] = Finding("quantise", m.quantisation_step,
                                    f"rounded to steps of {m.quantisation_step:.3g} scene units "
                                    f"(sigma {quantisation:.2%} of the depth)")
    ordered = [found[k] for k in PRECEDENCE if k in found]
    return ordered or [Finding("clean", 0.0, "metric, consistent across views, no noise, holes or rounding found")]


NOISE_SCALE_SPREAD = 0.7
"""log r of the per-image scales (:func:`measure.scale_range`) that per-pixel noise alone produces, per unit of
relative noise: metric depth with 3 % and 10 % noise gave r = 1.03 and 1.06-1.07 on the built-in scene and on lego
(each image's share of points occluded in its neighbours differs, and the noise widens what the trim cuts)."""


def beyond_noise(scale_range: float, noise: float) -> float:
    """The scale range r with the spread that the relative ``noise`` explains removed in quadrature:
    exp(sqrt(max(0, log(r)^2 - (NOISE_SCALE_SPREAD noise)^2)))."""
    if not math.isfinite(scale_range):
        return scale_range
    explained = NOISE_SCALE_SPREAD * (noise if math.isfinite(noise) else 0.0)
    return math.exp(math.sqrt(max(0.0, math.log(scale_range) ** 2 - explained**2)))


SPARSE_NEIGHBOUR_SHARE = 0.5
"""Below this share of pixels with depth that have a horizontal (or a vertical) neighbour with depth, the depth is
sparse (points or scanlines) rather than dense with holes: dense depth keeps both shares near 1 (0.99 with 30 %
of it in holes), random points at the study's densest sparse level (20 %) have 1 - 0.8^2 = 0.36."""


@dataclass
class Recommendation:
    """The study's pick for the kind that decides it."""

    kind: str
    """The deciding kind."""
    measured_level: Optional[float]
    """Its measured level."""
    studied_level: Optional[float]
    """The nearest studied level, None where the kind has none."""
    conditions: List[str]
    """The study's conditions at that level."""
    images: Dict[str, Any]
    """The pick for images (PSNR), as the mapping gives it."""
    geometry: Dict[str, Any]
    """The pick for geometry (depth L1)."""
    command: Optional[str]
    """The ``ns-train`` line of the pick for images."""
    geometry_command: Optional[str] = None
    """The ``ns-train`` line of the pick for geometry where it differs from the line for images (a capture for
    reconstruction: the real Kinect kitchen picks the RGB-only baseline for images and ``depth-hybrid`` for
    depth); None where both picks train alike."""
    other_kinds: List[str] = field(default_factory=list)
    """The other kinds found, which the study did not combine with this one."""


def recommend(findings: Sequence[Finding], mapping: Mapping[str, Any], dataparser: str, data: str,
              degradations: Sequence[str] = ()) -> Recommendation:
    """The pick for the first finding at the studied level nearest its measured level; its ``ns-train`` line
    applies ``degradations`` as the inspection did."""
    first = findings[0]
    entry = mapping["kinds"][first.kind]
    levels = entry["levels"]
    chosen = levels[0]
    if first.kind in CLEAN_LEVEL and first.level is not None:
        level = nearest_level(first.kind, first.level, studied_levels(mapping, first.kind))
        chosen = next((e for e in levels if e["level"] == level), levels[0])
    images, geometry = chosen["pick"]["psnr"], chosen["pick"]["depth_l1"]
    command = ns_train_line(images, dataparser, data, degradations)
    geometry_command = ns_train_line(geometry, dataparser, data, degradations)
    return Recommendation(
        kind=first.kind,
        measured_level=first.level,
        studied_level=chosen["level"],
        conditions=list(chosen["conditions"]),
        images=images,
        geometry=geometry,
        command=command,
        geometry_command=None if geometry_command == command else geometry_command,
        other_kinds=[f.kind for f in findings[1:]],
    )


def as_dict(value: Any) -> Any:
    """A dataclass as plain data for ``inspect.json`` (NaN as None)."""
    raw = asdict(value) if hasattr(value, "__dataclass_fields__") else value

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(raw)


assert set(PRECEDENCE) | {"clean"} == set(KINDS), "every kind of the mapping has a place in PRECEDENCE"
