"""The built-in scene as a Blender/NeRF-synthetic dataset (``ds-make-scene``): files, folders and the CLI.

The scene (:mod:`depth_strategies.scenes.geometry`) is rendered by :mod:`depth_strategies.scenes.render`; same
arguments give byte-identical files. Depth maps are z-depth (planar depth along the camera's viewing axis, like
Blender's Z pass), float32 OpenEXR.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from numpy.typing import NDArray

from depth_strategies.core.atomic import atomic_path, write_text_atomic
from depth_strategies.scenes.geometry import SCENES
from depth_strategies.scenes.render import (
    CAMERA_ANGLE_X,
    _split_seed,
    focal_from_width,
    render_view,
    sample_cameras,
    subpixel_offsets,
)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Dataset splits written by :func:`make_scene`."""

GENERATOR_NAME: str = "ds-make-scene"
"""Value of ``generator.name`` in the transforms files; used to recognise a previous output folder."""

GENERATOR_VERSION: int = 1
"""Bumped whenever the scene or the file layout changes."""

MARKER_NAME: str = ".ds-make-scene"
"""Marker file written first into an output folder, so an interrupted run can be overwritten by a rerun."""


@dataclass(frozen=True)
class SceneOptions:
    """The settings of a generated scene (``ds-make-scene``'s options), and their defaults in one place:
    :data:`DEFAULTS` for :func:`make_scene` and ``ds-make-scene``, :data:`PROTOCOL_DEFAULTS` for a protocol's
    ``generate`` block."""

    resolution: int = 128
    """Image width and height in pixels."""
    views_train: int = 50
    """Number of training views."""
    views_val: int = 10
    """Number of validation views (nerfstudio's periodic evaluation)."""
    views_test: int = 20
    """Number of held-out test views."""
    seed: int = 0
    """Seed of the camera poses (same seed, same files)."""
    supersample: int = 2
    """Sub-pixel rays per pixel side for colour and alpha (supersample^2 rays per pixel)."""
    scene: str = "builtin"
    """Which object: "builtin" (the test scene) or "thin" (dark, a few % of a view: docs/appearance-collapse.md)."""


DEFAULTS = SceneOptions()
"""The canonical defaults: :func:`make_scene` and ``ds-make-scene``."""
PROTOCOL_DEFAULTS = dataclasses.replace(DEFAULTS, resolution=64, views_train=30, views_val=1, views_test=4)
"""The defaults of a protocol's ``generate`` block (:class:`depth_strategies.study.protocol.GenerateSpec`): a scene
small enough for a CPU study. They apply only to the keys a protocol leaves out (every shipped protocol states its
resolution, views and seed), and stay what they were so that a protocol generates the same scene as before."""


# ----------------------------------------------------------------------------------------------------------------
# File I/O
# ----------------------------------------------------------------------------------------------------------------


def write_rgba_png(path: Path, rgba: NDArray[np.uint8]) -> None:
    """Write an RGBA uint8 image as PNG, atomically and deterministically (no metadata, fixed compression)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA").save(
            tmp, format="PNG", compress_level=6, optimize=False
        )


def write_depth_exr(path: Path, depth: NDArray[np.float32]) -> None:
    """Write a float32 depth map as a single-channel ("Z") ZIP-compressed scanline OpenEXR, atomically."""
    import OpenEXR

    header = {"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION}
    with atomic_path(path) as tmp:
        OpenEXR.File(header, {"Z": np.ascontiguousarray(depth, dtype=np.float32)}).write(str(tmp))


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
    resolution: int = DEFAULTS.resolution,
    views_train: int = DEFAULTS.views_train,
    views_val: int = DEFAULTS.views_val,
    views_test: int = DEFAULTS.views_test,
    seed: int = DEFAULTS.seed,
    supersample: int = DEFAULTS.supersample,
    scene: str = DEFAULTS.scene,
) -> Path:
    """Write the built-in scene (or another of :data:`~depth_strategies.scenes.geometry.SCENES`) as a
    Blender/NeRF-synthetic dataset with z-depth EXRs into ``out``.

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
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}: use one of {', '.join(SCENES)}")
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
    if scene != "builtin":
        generator["scene"] = scene
    write_text_atomic(out / MARKER_NAME, json.dumps(generator, indent=2) + "\n")
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
            rgba, depth = render_view(c2w, resolution, resolution, focal, supersample, SCENES[scene])
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
        write_text_atomic(out / f"transforms_{split}.json", json.dumps(meta, indent=2) + "\n")
    return out


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------


def make_scene_cli(
    out: tyro.conf.Positional[Path],
    options: tyro.conf.OmitArgPrefixes[SceneOptions] = DEFAULTS,
) -> None:
    """Write the built-in analytic test scene as a Blender/NeRF-synthetic dataset with z-depth EXR maps.

    Args:
        out: Output folder (created; must be empty, new, or a previous ds-make-scene output).
        options: The scene.
    """
    try:
        make_scene(out, **dataclasses.asdict(options))
    except (FileExistsError, ValueError) as e:
        raise SystemExit(f"ds-make-scene: error: {e}") from None
    o = options
    print(
        f"ds-make-scene: wrote {out} (train {o.views_train} / val {o.views_val} / test {o.views_test} views, "
        f"{o.resolution}x{o.resolution}, supersample {o.supersample}, seed {o.seed})"
    )


def entrypoint() -> None:
    """Console script ``ds-make-scene``."""
    tyro.cli(make_scene_cli)
