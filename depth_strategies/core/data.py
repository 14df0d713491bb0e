"""Depth maps into training batches: a dataset and a datamanager shared by every ``depth-*`` method.

For each image the dataset finds its depth map (:mod:`depth_strategies.core.depth_io`), decodes it, converts it to
distance along the pixel's ray, applies the image's alpha, resizes it like the image (nearest neighbour, never
interpolated across silhouettes) and multiplies it by the dataparser's scale. Every pixel gets one of three
states (:class:`DepthState`). The datamanager hands the depth and state of exactly the sampled pixels to
the model, in the batch and in ``ray_bundle.metadata`` of *training* rays only: evaluation rays are built
from cameras and never carry ground truth.

Works with nerfstudio's stock ``blender-data`` dataparser (depth found next to each image, or through a
``depth_file_path`` key in the transforms json) and with dataparsers that list ``depth_filenames`` in
their metadata (``nerfstudio-data``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Type

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image
from torch import Tensor

from depth_strategies.core import consistency, depth_io, metrics
from depth_strategies.core.degradation import Degradation, degrade, discontinuities, parse_degradation
from depth_strategies.core.depth_io import DepthFileError

DEPTH_KEY = metrics.DEPTH_KEY
"""Batch / ray-metadata key: ground-truth distance along the ray in model units, 0 where the state is not
SURFACE. Same key as nerfstudio's depth datasets, so nerfstudio's ``depth-nerfacto`` model (with
``is_euclidean_depth=True``) reads it too."""
STATE_KEY = metrics.STATE_KEY
"""Batch / ray-metadata key: a :class:`DepthState` per pixel (uint8)."""
SIGMA_KEY = "depth_sigma"
"""Batch / ray-metadata key: the standard deviation of each pixel's depth, in model units, as the (simulated)
sensor reports it; present only when the training depth is degraded (:mod:`depth_strategies.core.degradation`)."""
CONSISTENCY_KEY = "depth_consistency_sigma"
"""Training dataset metadata key (handed to the model): each training image's multi-view inconsistency, model
units, a float tensor with one value per image (:func:`depth_strategies.core.consistency.consistency_sigma`);
present when ``depth_consistency`` is on and the training split has depth."""

BLENDER_NEAR = 2.0
"""Near plane of the NeRF-synthetic scenes in Blender units (Mildenhall et al. 2020, ``load_blender.py``)."""
BLENDER_FAR = 6.0
"""Far plane of the NeRF-synthetic scenes in Blender units (same source)."""
OPAQUE = 255
"""8-bit alpha of a pixel fully covered by the object: only there is a depth value trustworthy (at
silhouettes, area-averaged depth maps mix the surface with the background value)."""

DepthRequirement = Literal["required", "optional", "ignored"]


class DepthState(IntEnum):
    """What a pixel's ground truth says about its ray."""

    UNKNOWN = 0
    """Nothing usable: partial alpha, depth missing, zero, NaN, inf, negative or outside the depth range."""
    SURFACE = metrics.SURFACE
    """An opaque surface at the known depth."""
    EMPTY = 2
    """Image alpha is 0: the whole ray is free space."""


class MissingDepthError(DepthFileError):
    """A split that needs depth has an image without a depth map."""


def pixel_direction_norms(
    fx: float, fy: float, cx: float, cy: float, height: int, width: int
) -> Float[np.ndarray, "height width"]:
    """|((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1)|: ray distance = z-depth * norm (pixel centres, as nerfstudio)."""
    u = (np.arange(width, dtype=np.float64) + 0.5 - cx) / fx
    v = (np.arange(height, dtype=np.float64) + 0.5 - cy) / fy
    return np.sqrt(u[None, :] ** 2 + v[:, None] ** 2 + 1.0)


def depth_states(
    ray_depth: Float[np.ndarray, "h w"],
    decoded_valid: np.ndarray,
    alpha: Optional[np.ndarray],
    depth_range: Tuple[float, float],
) -> np.ndarray:
    """Per-pixel :class:`DepthState` from decoded depth (Blender units), its validity and the 8-bit alpha."""
    in_range = decoded_valid & np.isfinite(ray_depth) & (ray_depth >= depth_range[0]) & (ray_depth <= depth_range[1])
    state = np.full(ray_depth.shape, DepthState.UNKNOWN, dtype=np.uint8)
    if alpha is None:
        state[in_range] = DepthState.SURFACE
        return state
    state[in_range & (alpha >= OPAQUE)] = DepthState.SURFACE
    state[alpha == 0] = DepthState.EMPTY
    return state


def apply_confidence(
    state: np.ndarray, confidence: np.ndarray, minimum: int, sigma_per_level: Tuple[float, float, float]
) -> Tuple[np.ndarray, Float[np.ndarray, "h w"]]:
    """Surface pixels below ``minimum`` confidence become UNKNOWN (never EMPTY); the others get the sigma of their
    level (``sigma_per_level[level]``), 0 elsewhere."""
    low = (state == DepthState.SURFACE) & (confidence < minimum)
    state = np.where(low, DepthState.UNKNOWN, state).astype(np.uint8)
    sigma = np.asarray(sigma_per_level, dtype=np.float32)[np.clip(confidence, 0, 2)]
    return state, np.where(state == DepthState.SURFACE, sigma, 0.0).astype(np.float32)


def upsample_depth(
    depth: Float[np.ndarray, "h w"], valid: np.ndarray, height: int, width: int, relative_jump: float
) -> Tuple[Float[np.ndarray, "height width"], np.ndarray]:
    """A depth map measured at a lower resolution (same aspect ratio) brought to the image's: each image pixel
    picks the depth pixel under its centre (never an interpolation across an edge), and the image pixels under a
    depth-map edge are invalid: a valid depth pixel next to an invalid one or to a depth that differs by more than
    ``relative_jump`` times the nearer depth (:func:`depth_strategies.core.degradation.discontinuities`; the iPhone's
    256x192 depth covers 7.5x7.5 image pixels each)."""
    state = np.where(valid, DepthState.SURFACE, DepthState.UNKNOWN).astype(np.uint8)
    keep = valid & ~discontinuities(depth, state, relative_jump, relative=True)
    picked_keep = resize_nearest(keep.astype(np.uint8), height, width) > 0
    return resize_nearest(depth.astype(np.float32), height, width), picked_keep


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize (PIL's pixel-centre convention): values are picked, never blended."""
    if array.shape[:2] == (height, width):
        return array
    return np.asarray(Image.fromarray(array).resize((width, height), Image.Resampling.NEAREST))


@dataclass(frozen=True)
class DepthSource:
    """Where and how one split's depth is read."""

    split: str
    """Name of the split, for messages."""
    requirement: DepthRequirement
    """required: every image must have depth; optional: missing depth is allowed (warning); ignored: not read."""
    frames: Mapping[Path, Mapping] = field(default_factory=dict)
    """transforms json frame of each image (resolved path), for ``depth_file_path``."""
    meta: Mapping = field(default_factory=dict)
    """Top level of the transforms json (``depth_format``, ``depth_type``, ``depth_scale``)."""
    transforms_dir: Optional[Path] = None
    """Folder that ``depth_file_path`` entries are relative to."""
    override: Optional[depth_io.DepthEncodingOverride] = None
    """Encoding set in the config; beats the json keys and detection."""
    depth_range: Tuple[float, float] = (BLENDER_NEAR, BLENDER_FAR)
    """Ray distances outside this range (Blender units) are UNKNOWN."""
    listed_files: Optional[List[Optional[Path]]] = None
    """Depth files listed by the dataparser itself (``metadata['depth_filenames']``), if any."""
    degradations: Tuple[Degradation, ...] = ()
    """Sensor models applied to each decoded depth map, at full resolution and in Blender units, in order."""
    degradation_seed: int = 0
    """Seed of the degradations (with the image's index)."""
    confidence_min: int = 1
    """Surface pixels whose confidence map gives a lower level are UNKNOWN."""
    edge_jump: float = 0.1
    """Relative depth jump that marks an edge in a lower-resolution depth map (:func:`upsample_depth`)."""
    confidence_sigma: Tuple[float, float, float] = (0.1, 0.05, 0.01)
    """Reported depth sigma at confidence 0, 1, 2, Blender units (the depth's own unit)."""
    consistency: bool = False
    """Measure each image's multi-view inconsistency (:mod:`depth_strategies.core.consistency`) once loaded."""


class DepthDataset(InputDataset):
    """An ``InputDataset`` whose items carry ``depth_image`` and ``depth_state`` of every pixel.

    All depth maps are read and checked when the dataset is built, so a bad file stops training at start-up
    with a message that names it, instead of failing hours later.
    """

    def __init__(
        self, dataparser_outputs: DataparserOutputs, scale_factor: float = 1.0, source: Optional[DepthSource] = None
    ):
        super().__init__(dataparser_outputs, scale_factor)
        self.source = source or DepthSource(split="train", requirement="ignored")
        self.metadata = {**self.metadata, "dataparser_scale": float(dataparser_outputs.dataparser_scale)}
        self.depths: Optional[Tensor] = None
        self.states: Optional[Tensor] = None
        self.sigmas: Optional[Tensor] = None
        self.depth_files: List[Optional[Path]] = []
        if self.source.requirement != "ignored" and len(self) > 0:
            self._load_all()

    @property
    def has_depth(self) -> bool:
        """Whether items carry depth (at least one image of the split has a depth map)."""
        return self.depths is not None

    def _find(self, index: int) -> Optional[Path]:
        if self.source.listed_files is not None:
            listed = self.source.listed_files[index]
            return Path(listed) if listed is not None else None
        image = Path(self._dataparser_outputs.image_filenames[index])
        frame = self.source.frames.get(image.resolve())
        named = frame.get(depth_io.DEPTH_FILE_PATH_KEY) if frame is not None else None
        if isinstance(named, str) and named.strip() and self.source.transforms_dir is not None:
            # A "depth_file_path" whose file is gone is a missing depth map: required splits stop with the
            # split, image and search in the message (below), optional ones warn, like any other missing map.
            if not (Path(named) if Path(named).is_absolute() else self.source.transforms_dir / named).is_file():
                return None
        return depth_io.find_depth_file(image, frame, self.source.transforms_dir)

    def _load_all(self) -> None:
        images = [Path(p) for p in self._dataparser_outputs.image_filenames]
        self.depth_files = [self._find(i) for i in range(len(images))]
        missing = [i for i, f in enumerate(self.depth_files) if f is None]
        if missing and self.source.requirement == "required":
            first = images[missing[0]]
            frame = self.source.frames.get(first.resolve())
            raise MissingDepthError(
                f"The {self.source.split!r} split needs depth, but {len(missing)} of {len(images)} images have no "
                f"depth map, starting with {first}.\n"
                f"{depth_io.describe_search(first, frame, self.source.transforms_dir)}\n"
                "Put a depth map next to each image (or a 'depth_file_path' per frame in the transforms json), "
                "or train 'depth-baseline', which needs no depth."
            )
        if len(missing) == len(images):
            warnings.warn(
                f"No depth maps found for the {self.source.split!r} split ({images[0].parent}): depth metrics "
                "are skipped for it; RGB metrics are still reported.",
                stacklevel=2,
            )
            return
        if missing:
            warnings.warn(
                f"{len(missing)} of {len(images)} images of the {self.source.split!r} split have no depth map "
                f"(first: {images[missing[0]]}); depth metrics skip those images.",
                stacklevel=2,
            )
        self.confidence_files: List[Optional[Path]] = [None] * len(images)
        depths, states, sigmas = zip(*(self._load_one(i) for i in range(len(images))))
        self.depths = torch.from_numpy(np.stack(depths))[..., None]
        self.states = torch.from_numpy(np.stack(states))[..., None]
        if self.source.degradations or any(self.confidence_files):
            self.sigmas = torch.from_numpy(np.stack(sigmas))[..., None]
        if self.source.consistency:
            self.metadata[CONSISTENCY_KEY] = self._consistency(depths, states)

    def _consistency(self, depths: Sequence[np.ndarray], states: Sequence[np.ndarray]) -> Tensor:
        """Each image's multi-view inconsistency in model units (:func:`consistency.consistency_sigma`), from the
        loaded (degraded) depth at dataset size and the dataset's cameras."""
        cameras = self.cameras
        intrinsics = [
            (float(cameras.fx[i]), float(cameras.fy[i]), float(cameras.cx[i]), float(cameras.cy[i]))
            for i in range(len(depths))
        ]
        sigma = consistency.consistency_sigma(
            [d.astype(np.float64) for d in depths],
            [s == DepthState.SURFACE for s in states],
            cameras.camera_to_worlds.double().numpy(),
            intrinsics,
            seed=self.source.degradation_seed,
        )
        return torch.from_numpy(sigma).float()

    def _load_one(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth (model units, ray distance, 0 unless SURFACE), state and reported sigma (model units) of image
        ``index`` at dataset size, after the source's degradations."""
        cameras = self._dataparser_outputs.cameras
        height, width = int(cameras.height[index]), int(cameras.width[index])
        out_h, out_w = int(self.cameras.height[index]), int(self.cameras.width[index])
        path = self.depth_files[index]
        if path is None:
            zeros = np.zeros((out_h, out_w), np.float32)
            return zeros, np.zeros((out_h, out_w), np.uint8), zeros
        alpha_full = self._alpha(index, None)
        encoding = depth_io.resolve_encoding(
            path, self.source.meta, self.source.override, meta_source=f"transforms_{self.source.split}.json"
        )
        decoded, valid = depth_io.decode_depth(path, encoding, expected_hw=(height, width))
        if decoded.shape != (height, width):
            decoded, valid = upsample_depth(decoded, valid, height, width, self.source.edge_jump)
        if encoding.depth_type == "z":
            fx, fy = float(cameras.fx[index]), float(cameras.fy[index])
            cx, cy = float(cameras.cx[index]), float(cameras.cy[index])
            decoded = decoded * pixel_direction_norms(fx, fy, cx, cy, height, width)
        ray_depth = decoded.astype(np.float32)
        state = depth_states(ray_depth, valid, alpha_full, self.source.depth_range)
        sigma = np.zeros_like(ray_depth)
        frame = self.source.frames.get(Path(self._dataparser_outputs.image_filenames[index]).resolve())
        confidence_file = depth_io.find_confidence_file(path, frame, self.source.transforms_dir)
        if confidence_file is not None:
            self.confidence_files[index] = confidence_file
            confidence = resize_nearest(depth_io.decode_confidence(confidence_file, (height, width)), height, width)
            state, sigma = apply_confidence(state, confidence, self.source.confidence_min,
                                            self.source.confidence_sigma)
        if self.source.degradations:
            ray_depth, state, sigma = degrade(
                ray_depth, state, self.source.degradations, self.source.degradation_seed, index, sigma=sigma
            )
        ray_depth = resize_nearest(ray_depth, out_h, out_w)
        state = resize_nearest(state, out_h, out_w)
        sigma = resize_nearest(sigma, out_h, out_w)
        if (out_h, out_w) != (height, width):
            # The image was resized with a filter: its alpha at silhouettes is partial again.
            alpha_small = self._alpha(index, (out_h, out_w))
            if alpha_small is not None:
                # Partial alpha: the ray is neither a known surface nor free space (a picked EMPTY pixel next to
                # the silhouette would wrongly declare a partly covered ray empty).
                partial = (alpha_small > 0) & (alpha_small < OPAQUE)
                state = np.where(
                    partial | ((state == DepthState.SURFACE) & (alpha_small < OPAQUE)), DepthState.UNKNOWN, state
                )
                state = np.where(alpha_small == 0, DepthState.EMPTY, state).astype(np.uint8)
        scale = float(self._dataparser_outputs.dataparser_scale)
        surface = state == DepthState.SURFACE
        ray_depth = np.where(surface, ray_depth * scale, 0.0).astype(np.float32)
        sigma = np.where(surface, sigma * scale, 0.0).astype(np.float32)
        return ray_depth, state.astype(np.uint8), sigma

    def _alpha(self, index: int, size: Optional[Tuple[int, int]]) -> Optional[np.ndarray]:
        """8-bit alpha of image ``index`` at full size, or resized like nerfstudio resizes images (bilinear)."""
        with Image.open(self._dataparser_outputs.image_filenames[index]) as image:
            if "A" not in image.getbands():
                return None
            alpha = image.getchannel("A")
            if size is not None:
                alpha = alpha.resize((size[1], size[0]), resample=Image.Resampling.BILINEAR)
            return np.asarray(alpha)

    def get_metadata(self, data: Dict) -> Dict:
        if self.depths is None or self.states is None:
            return {}
        index = data["image_idx"]
        items = {DEPTH_KEY: self.depths[index], STATE_KEY: self.states[index]}
        if self.sigmas is not None:
            items[SIGMA_KEY] = self.sigmas[index]
        return items


@dataclass
class DepthDataManagerConfig(VanillaDataManagerConfig):
    """Datamanager of every ``depth-*`` method: batches carry the depth and state of their pixels."""

    _target: Type = field(default_factory=lambda: DepthDataManager)
    keep_alpha: bool = True
    """Keep the alpha channel of RGBA training images in the batches (nerfstudio's Blender parser would composite
    them on its ``alpha_color`` when loading; nerfstudio-data keeps it already), so that the model composites the
    render and the ground truth over the same background: its ``background_color``, or a random colour with
    ``random_training_background``. On by default, so that runs made before the field existed train on as the
    ``depth-*`` methods now do; off, as nerfstudio loads Blender data, for nerfstudio's references as shipped (whose
    "last_sample" background would composite an RGBA ground truth on black). Test views are composited on white for
    scoring either way."""
    train_depth: DepthRequirement = "required"
    """Depth of the training split: required (depth methods), or ignored (the baseline never reads it)."""
    eval_depth: DepthRequirement = "optional"
    """Depth of the evaluation split, read for depth metrics; images without it get RGB metrics only."""
    depth_format: Optional[depth_io.DepthFormat] = None
    """Force the depth file format instead of detecting it from the files and the transforms json."""
    depth_type: Optional[depth_io.DepthType] = None
    """Force what depth values measure: "z" (planar depth) or "ray" (distance from the camera centre)."""
    depth_scale: Optional[float] = None
    """Force the factor from stored values to Blender units (e.g. 0.001 for millimetre PNGs)."""
    depth_range: Optional[Tuple[float, float]] = None
    """Ray distances (data units: Blender units, or metres) outside this range are treated as unknown. None: the
    scene type's: [2, 6] for object scenes (images with alpha: NeRF-synthetic's near and far), [0, inf) otherwise."""
    depth_degradations: Tuple[str, ...] = ()
    """Sensor models applied to the *training* depth when it is loaded, in order, each written ``kind(key=value,
    ...)`` (:mod:`depth_strategies.core.degradation`: noise, holes, flying, sparse, lowres, quantise, monocular; depth
    parameters in Blender units), e.g. ``"noise(b=0.01)" "sparse(lines=16)"``. Evaluation depth stays exact.
    Empty: the depth as stored."""
    degradation_seed: int = 0
    """Seed of the degradations (with each image's index): every method of a comparison sees the same degraded
    depth."""
    confidence_min: int = 1
    """Where a depth map has a confidence map (``<depth stem>_confidence.png`` next to it, or the frame's
    ``confidence_file_path``; ARKit / Record3D levels 0 low, 1 medium, 2 high), surface pixels below this level are
    unknown, in training and evaluation; 0 keeps every pixel. Depth maps without one are used as they are."""
    depth_edge_jump: float = 0.1
    """A depth map at a lower resolution than its image (same aspect ratio, e.g. a phone's 256x192 for 1920x1440)
    is brought to the image's by picking, never interpolating; its pixels next to a depth jump larger than this
    fraction of the depth (or next to a hole or the background) are unknown, since they may straddle two surfaces.
    Chosen, not tuned: slanted surfaces change by a few per cent per depth pixel."""
    confidence_sigma: Tuple[float, float, float] = (0.1, 0.05, 0.01)
    """Standard deviation of the depth reported at confidence 0, 1, 2, in the depth's units (Blender units; metres
    for phone captures), read by the uncertainty-aware strategies (``sigma_window_mult``). Chosen, not measured:
    10, 5 and 1 cm."""
    depth_consistency: bool = True
    """Measure how far each training image's depth disagrees with its nearest views (reprojected surface points
    landing in front of what the neighbours see: :mod:`depth_strategies.core.consistency`; computed once, when the
    data is loaded; its cost: docs/decisions.md, "depth-hybrid-uncertain"),
    handed to the model, where the strategies with ``consistency_sigma`` read it as a lower bound on the depth's
    sigma (monocular scale and shift per image, a wrong unit). Off: not measured."""


SCENE_TYPE_KEY = "scene_type"
"""Dataset metadata key that tells the model the scene type of the data (``DepthStrategyModelConfig.scene_type``
"auto")."""
UNBOUNDED_DEPTH_RANGE: Tuple[float, float] = (0.0, float("inf"))
"""Ray distances kept in scenes without alpha (captures): every positive one."""


def scene_type_of(outputs: DataparserOutputs) -> str:
    """"object" when the first image has an alpha channel (a Blender-style object scene: alpha marks the empty rays),
    else "unbounded" (a capture: no pixel is known to be empty)."""
    if not outputs.image_filenames:
        return "object"
    with Image.open(outputs.image_filenames[0]) as image:
        return "object" if "A" in image.getbands() else "unbounded"


def float32_intrinsics(outputs: DataparserOutputs) -> DataparserOutputs:
    """Cast the cameras' intrinsics to float32 in place.

    nerfstudio's blender parser passes a numpy float64 focal length, so ``fx``/``fy`` are float64 while poses are
    float32, and ``ns-render spiral`` then fails in ``torch.cross`` ("expected scalar type Float but found Double").
    """
    cameras = outputs.cameras
    for name in ("fx", "fy", "cx", "cy"):
        setattr(cameras, name, getattr(cameras, name).float())
    return outputs


class DepthDataManager(VanillaDataManager[DepthDataset]):
    """``VanillaDataManager`` over :class:`DepthDataset`; training rays carry their ground truth in metadata."""

    config: DepthDataManagerConfig

    def _degradations(self) -> Tuple[Degradation, ...]:
        try:
            return tuple(parse_degradation(text) for text in self.config.depth_degradations)
        except ValueError as err:
            raise ValueError(f"--pipeline.datamanager.depth-degradations: {err}") from None

    def _source(
        self, split: str, outputs: DataparserOutputs, requirement: DepthRequirement, scene_type: str
    ) -> DepthSource:
        if self.test_mode == "inference":
            requirement = "ignored"  # rendering and the viewer never need ground truth
        override = depth_io.DepthEncodingOverride(
            format=self.config.depth_format, depth_type=self.config.depth_type, scale=self.config.depth_scale
        )
        listed = outputs.metadata.get("depth_filenames")
        data_dir = Path(self.config.dataparser.data)
        meta: Mapping = {}
        frames: Dict[Path, Mapping] = {}
        transforms = data_dir / f"transforms_{split}.json"
        if listed is None and transforms.is_file():
            meta = json.loads(transforms.read_text())
            for frame, image in zip(meta.get("frames", []), outputs.image_filenames):
                frames[Path(image).resolve()] = frame
        elif listed is not None:
            # nerfstudio-data lists its depth files and their unit (millimetres by default).
            meta = {depth_io.META_SCALE_KEY: float(outputs.metadata.get("depth_unit_scale_factor", 1e-3))}
        return DepthSource(
            split=split,
            requirement=requirement,
            frames=frames,
            meta=meta,
            transforms_dir=data_dir,
            override=override,
            depth_range=self._depth_range(scene_type),
            listed_files=list(listed) if listed is not None else None,
            degradations=self._degradations() if split == "train" else (),
            degradation_seed=self.config.degradation_seed,
            confidence_min=self.config.confidence_min,
            edge_jump=self.config.depth_edge_jump,
            confidence_sigma=tuple(self.config.confidence_sigma),
            consistency=self.config.depth_consistency and split == "train",
        )

    def _depth_range(self, scene_type: str) -> Tuple[float, float]:
        if self.config.depth_range is not None:
            return tuple(self.config.depth_range)  # type: ignore[return-value]
        return (BLENDER_NEAR, BLENDER_FAR) if scene_type == "object" else UNBOUNDED_DEPTH_RANGE

    def create_train_dataset(self) -> DepthDataset:
        outputs = float32_intrinsics(self.train_dataparser_outputs)
        if self.config.keep_alpha:
            outputs = dataclasses.replace(outputs, alpha_color=None)
        scene_type = scene_type_of(outputs)
        source = self._source("train", outputs, self.config.train_depth, scene_type)
        dataset = DepthDataset(outputs, scale_factor=self.config.camera_res_scale_factor, source=source)
        dataset.metadata[SCENE_TYPE_KEY] = scene_type
        return dataset

    def create_eval_dataset(self) -> DepthDataset:
        outputs = float32_intrinsics(self.dataparser.get_dataparser_outputs(split=self.test_split))
        source = self._source(self.test_split, outputs, self.config.eval_depth, scene_type_of(outputs))
        return DepthDataset(outputs, scale_factor=self.config.camera_res_scale_factor, source=source)

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        ray_bundle, batch = super().next_train(step)
        if DEPTH_KEY in batch:
            if ray_bundle.metadata is None:
                ray_bundle.metadata = {}
            ray_bundle.metadata[DEPTH_KEY] = batch[DEPTH_KEY].to(ray_bundle.origins.device)
            ray_bundle.metadata[STATE_KEY] = batch[STATE_KEY].to(ray_bundle.origins.device)
            if SIGMA_KEY in batch:
                ray_bundle.metadata[SIGMA_KEY] = batch[SIGMA_KEY].to(ray_bundle.origins.device)
        return ray_bundle, batch
