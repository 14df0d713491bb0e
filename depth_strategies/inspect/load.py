"""A dataset read exactly as ``ns-train depth-* <dataparser> --data DATA`` reads it, without training.

The methods' own datamanager (``core.data.DepthDataManager``, as every ``depth-*`` method configures it) is set up
on nerfstudio's registered dataparser with its defaults: the same depth search, formats, units, alpha, confidence
maps, dataparser scale and, for the training split, the same multi-view inconsistency. A file it cannot read stops
``ds-inspect`` with the message that stops training. Nothing is written into the dataset.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Bool, Float
from PIL import Image

from depth_strategies.core import consistency, depth_io
from depth_strategies.core.data import (
    CONSISTENCY_KEY,
    OPAQUE,
    SCENE_TYPE_KEY,
    DepthDataManager,
    DepthDataset,
    DepthState,
)

Dataparser = Literal["blender-data", "nerfstudio-data"]
DATAPARSERS: Tuple[str, ...] = ("blender-data", "nerfstudio-data")
TRAINING_METHOD = "depth-hybrid"
"""The registered method whose datamanager reads the data: every ``depth-*`` method that reads depth shares it
(``methods.BASE_CONFIG`` with ``train_depth="required"``)."""
IMAGES_CACHED = 1
"""Images the datamanager's ray sampler keeps in memory (nerfstudio's ``*_num_images_to_sample_from``): no ray is
sampled, so one; a phone capture of 300 frames at 1920x1440 would otherwise hold 10 GB of float images."""
OTHER_SPLITS = {"blender-data": ("val", "test"), "nerfstudio-data": ("test",)}
"""Splits inventoried besides the training split: nerfstudio-data has one held-out split (its val and test are the
same frames)."""


@dataclass
class Frame:
    """One image of a split with what the datamanager made of its depth."""

    split: str
    """Split name."""
    index: int
    """Index in the split."""
    image: Path
    """Image file."""
    depth_file: Optional[Path]
    """Depth file found for it, None without one."""
    confidence_file: Optional[Path]
    """Confidence map found next to the depth file, None without one."""
    depth: Float[np.ndarray, "h w"]
    """Distance along each pixel's ray in scene units (the dataparser's scale applied), 0 unless SURFACE."""
    state: np.ndarray
    """``core.data.DepthState`` per pixel (uint8)."""
    expected: Bool[np.ndarray, "h w"]
    """Pixels where a surface is: opaque pixels of an object scene, every pixel of a capture."""
    c2w: Float[np.ndarray, "3 4"]
    """Camera to world (nerfstudio's convention), scene units."""
    intrinsics: consistency.Intrinsics
    """(fx, fy, cx, cy) in pixels at the dataset's size."""


@dataclass
class SplitInventory:
    """What one split holds."""

    split: str
    """Split name."""
    frames: int
    """Images."""
    with_depth: int
    """Images with a depth map."""
    with_confidence: int
    """Images whose depth map has a confidence map."""
    image_hw: Optional[Tuple[int, int]]
    """Size of the first image (pixels)."""
    depth_hw: Optional[Tuple[int, int]]
    """Size of the first depth map as stored (pixels)."""
    encoding: Optional[str]
    """How the loader decodes the first depth map: format, depth type (z or ray) and the factor from stored values
    to data units."""


@dataclass
class LoadedData:
    """A dataset as training reads it."""

    data: Path
    """The ``--data`` folder."""
    dataparser: str
    """Registered dataparser name."""
    scene_type: str
    """``object`` (images with alpha) or ``unbounded`` (captures), as ``scene_type: auto`` decides."""
    dataparser_scale: float
    """Factor from the data's units to scene units (1 for Blender data; nerfstudio-data scales poses and depth)."""
    depth_range: Tuple[float, float]
    """Ray distances kept (data units); outside it depth is unknown."""
    confidence_min: int
    """Confidence level below which surface pixels are unknown."""
    train: List[Frame]
    """The training split's frames (what the methods train on)."""
    scene_box: Float[np.ndarray, "2 3"]
    """The dataparser's scene box (min and max corner, scene units), where the model samples."""
    training_inconsistency: Optional[Float[np.ndarray, "n"]]  # noqa: F821
    """Each training image's multi-view inconsistency as training measures it (``core.consistency``), scene units."""
    splits: List[SplitInventory]
    """Inventory of every split."""
    warnings: List[str] = field(default_factory=list)
    """Warnings the loader raised (missing depth in a split, ...)."""

    def rgb(self, frame: Frame) -> Float[np.ndarray, "h w 3"]:
        """The frame's image in [0, 1], composited on white where it has alpha."""
        with Image.open(frame.image) as image:
            array = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
        h, w = frame.depth.shape
        if array.shape[:2] != (h, w):
            array = np.asarray(Image.fromarray((array * 255).astype(np.uint8)).resize((w, h)), np.float64) / 255.0
        return array[..., :3] * array[..., 3:] + (1.0 - array[..., 3:])


def detect_dataparser(data: Path) -> str:
    """``blender-data`` for a folder with ``transforms_train.json``, ``nerfstudio-data`` for one with
    ``transforms.json`` (what ``ns-train`` needs to be told)."""
    if (data / "transforms_train.json").is_file():
        return "blender-data"
    if (data / "transforms.json").is_file():
        return "nerfstudio-data"
    raise FileNotFoundError(
        f"{data}: neither transforms_train.json (blender-data) nor transforms.json (nerfstudio-data); "
        "give --dataparser or the folder that ns-train --data reads"
    )


def datamanager(data: Path, dataparser: str, degradations: Sequence[str] = (), seed: int = 0) -> DepthDataManager:
    """The datamanager of ``ns-train depth-hybrid <dataparser> --data data`` (with ``--pipeline.datamanager.
    depth-degradations`` and ``degradation-seed`` when given), set up on the CPU for its test split."""
    from nerfstudio.configs.dataparser_configs import dataparsers

    from depth_strategies.methods import method_config

    parser = dataclasses.replace(dataparsers[dataparser], data=data)
    config = dataclasses.replace(
        method_config(TRAINING_METHOD).pipeline.datamanager,
        dataparser=parser,
        data=data,
        depth_degradations=tuple(degradations),
        degradation_seed=seed,
        # the ray sampler's image cache: training keeps every image in memory, the inspection reads the images it
        # shows from their files, so it caches one (what is read and how is unchanged)
        train_num_images_to_sample_from=IMAGES_CACHED,
        eval_num_images_to_sample_from=IMAGES_CACHED,
    )
    return config.setup(device="cpu", test_mode="test", world_size=1, local_rank=0)


def expected_surface(image: Path, hw: Tuple[int, int], scene_type: str) -> Bool[np.ndarray, "h w"]:
    """Where a surface is: the fully opaque pixels of an object scene's image (its alpha resized bilinear like
    nerfstudio resizes images, as ``core.data`` does), every pixel of a capture."""
    if scene_type != "object":
        return np.ones(hw, dtype=bool)
    with Image.open(image) as opened:
        if "A" not in opened.getbands():
            return np.ones(hw, dtype=bool)
        alpha = opened.getchannel("A")
        if alpha.size != (hw[1], hw[0]):
            alpha = alpha.resize((hw[1], hw[0]), resample=Image.Resampling.BILINEAR)
        return np.asarray(alpha) >= OPAQUE


def frames_of(dataset: DepthDataset, split: str, scene_type: str) -> List[Frame]:
    """Every image of a loaded split with its depth, state, cameras and expected surface."""
    cameras = dataset.cameras
    confidence = getattr(dataset, "confidence_files", [None] * len(dataset))
    frames = []
    for i in range(len(dataset)):
        depth = dataset.depths[i, ..., 0].numpy().astype(np.float64)
        image = Path(dataset.image_filenames[i])
        frames.append(Frame(
            split=split,
            index=i,
            image=image,
            depth_file=dataset.depth_files[i],
            confidence_file=confidence[i],
            depth=depth,
            state=dataset.states[i, ..., 0].numpy(),
            expected=expected_surface(image, depth.shape, scene_type),
            c2w=cameras.camera_to_worlds[i].double().numpy(),
            intrinsics=(float(cameras.fx[i]), float(cameras.fy[i]), float(cameras.cx[i]), float(cameras.cy[i])),
        ))
    return frames


def inventory(dataset: DepthDataset, split: str) -> SplitInventory:
    """Counts and sizes of one split (the first depth map decoded once more, at its stored size)."""
    files = list(dataset.depth_files)
    confidence = getattr(dataset, "confidence_files", [])
    first = next((f for f in files if f is not None), None)
    image_hw = None
    if len(dataset):
        with Image.open(dataset.image_filenames[0]) as image:
            image_hw = (image.height, image.width)
    depth_hw, encoding_text = None, None
    if first is not None:
        encoding = depth_io.resolve_encoding(first, dataset.source.meta, dataset.source.override,
                                             meta_source=f"transforms_{split}.json")
        decoded, _ = depth_io.decode_depth(first, encoding)
        depth_hw = tuple(int(v) for v in decoded.shape[:2])
        encoding_text = f"{encoding.format}, {encoding.depth_type}, x{encoding.scale:g}"
    return SplitInventory(
        split=split,
        frames=len(dataset),
        with_depth=sum(f is not None for f in files),
        with_confidence=sum(f is not None for f in confidence),
        image_hw=image_hw,
        depth_hw=depth_hw,  # type: ignore[arg-type]
        encoding=encoding_text,
    )


def load(data: Path, dataparser: Optional[str] = None, degradations: Sequence[str] = (), seed: int = 0) -> LoadedData:
    """The dataset at ``data`` as training reads it: the training split's frames, each split's inventory and the
    loader's warnings. Raises what training raises (``core.depth_io.DepthFileError`` and its subclasses,
    ``ValueError`` for a bad degradation, nerfstudio's errors for a dataset it cannot parse)."""
    data = Path(data)
    dataparser = dataparser or detect_dataparser(data)
    caught: List[str] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        manager = datamanager(data, dataparser, degradations, seed)
        train = manager.train_dataset
        scene_type = str(train.metadata.get(SCENE_TYPE_KEY, "object"))
        splits: Dict[str, DepthDataset] = {"train": train}
        for split in OTHER_SPLITS[dataparser]:
            if split == manager.test_split:
                splits[split] = manager.eval_dataset
                continue
            try:
                outputs = manager.dataparser.get_dataparser_outputs(split=split)
            except (FileNotFoundError, AssertionError, ValueError) as err:
                caught.append(f"split {split!r} not read: {err}")
                continue
            source = manager._source(split, outputs, "optional", scene_type)
            splits[split] = DepthDataset(outputs, scale_factor=manager.config.camera_res_scale_factor, source=source)
    caught.extend(str(r.message) for r in records if issubclass(r.category, (UserWarning, depth_io.DepthFormatWarning))
                  and "depth" in str(r.message).lower())
    if not train.has_depth:
        raise depth_io.DepthFileError(f"{data}: the training split has no depth map; ds-inspect measures depth")
    sigma = train.metadata.get(CONSISTENCY_KEY)
    return LoadedData(
        data=data,
        dataparser=dataparser,
        scene_type=scene_type,
        dataparser_scale=float(train.metadata.get("dataparser_scale", 1.0)),
        depth_range=tuple(float(v) for v in train.source.depth_range),  # type: ignore[arg-type]
        confidence_min=int(train.source.confidence_min),
        train=frames_of(train, "train", scene_type),
        scene_box=train.scene_box.aabb.double().numpy(),
        training_inconsistency=None if sigma is None else sigma.numpy().astype(np.float64),
        splits=[inventory(dataset, split) for split, dataset in splits.items()],
        warnings=caught,
    )


def surfaces(frames: Sequence[Frame]) -> List[Bool[np.ndarray, "h w"]]:
    """Each frame's SURFACE pixels."""
    return [f.state == DepthState.SURFACE for f in frames]
