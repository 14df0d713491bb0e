"""What ``ds-blender-render`` renders and writes, as pure functions of its options: the options, the cameras on a
sphere or hemisphere about the scene, the mapping from Blender to dataset units and the ``transforms_SPLIT.json``
files with the keys the loader reads. Standard library only: ``render_scene.py`` imports it inside Blender (from
the package, or as the file beside it when a stock Blender runs ``render_scene.py``)."""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

Vec3 = Tuple[float, float, float]
Matrix4 = List[List[float]]

SPLITS: Tuple[str, ...] = ("train", "val", "test")

# --- what the loader reads (depth_strategies.core.depth_io, core.data; a test checks that they agree) ----------
DEPTH_FORMAT_KEY = "depth_format"
DEPTH_TYPE_KEY = "depth_type"
DEPTH_SCALE_KEY = "depth_scale"
DEPTH_EXR_CHANNEL_KEY = "depth_exr_channel"
DEPTH_FILE_PATH_KEY = "depth_file_path"
"""Keys of ``transforms_SPLIT.json`` (top level; ``depth_file_path`` per frame) that ``core.depth_io`` reads."""
DEPTH_FORMAT = "exr"
DEPTH_TYPE = "z"
"""Blender's Z pass is planar depth along the camera's optical axis (Cycles and EEVEE; measured by the tests)."""
DEPTH_EXR_CHANNEL = "V"
"""The channel Blender 5's File Output node writes for a one-channel float image."""
DEPTH_SUFFIX = "_depth.exr"
"""``r_I_depth.exr`` next to ``r_I.png``: one of the loader's patterns (``{stem}_depth.exr``)."""
LOADER_NEAR = 2.0
LOADER_FAR = 6.0
"""The loader's depth range of object scenes, dataset units (``core.data.BLENDER_NEAR``, ``BLENDER_FAR``)."""
SCENE_BOX_HALF = 1.5
"""Half the side of nerfstudio's ``blender-data`` scene box, dataset units."""


ENGINES = {"cycles": "CYCLES", "eevee": "BLENDER_EEVEE"}
"""``--engine`` values and Blender's engine identifiers (Blender 5.0)."""


PROG = "ds-blender-render"


class RenderError(Exception):
    """A problem the user can fix; the message says what to do."""


@dataclass(frozen=True)
class RenderOptions:
    """What is rendered (everything but where from and where to)."""

    views: Tuple[int, int, int] = (100, 100, 200)
    """Views of the train, val and test splits (NeRF-synthetic's counts)."""
    width: int = 800
    """Image width, pixels (NeRF-synthetic's 800)."""
    height: int = 800
    """Image height, pixels."""
    fov: float = 39.6
    """Horizontal field of view, degrees (NeRF-synthetic's camera_angle_x, 0.6911 rad)."""
    radius: float = 4.0
    """Distance of every camera from the scene's centre, dataset units (NeRF-synthetic's is 4.03)."""
    scene_radius: float = SCENE_BOX_HALF
    """Radius of the scene's bounding sphere in the dataset, dataset units: sets the Blender-to-dataset scale."""
    sphere: bool = False
    """Cameras on the whole sphere around the scene; False: on the upper hemisphere (z >= 0), as lego's. Either
    way all 360 degrees of azimuth."""
    seed: int = 0
    """Seed of the camera positions (each split draws from its own stream)."""
    engine: str = "cycles"
    """``cycles`` (on the CPU, works anywhere) or ``eevee`` (needs an OpenGL context: a GPU or Mesa's llvmpipe)."""
    samples: int = 64
    """Samples per pixel of the image (Cycles; EEVEE's anti-aliasing samples). The depth pass takes one."""

    def validate(self) -> None:
        """Raise RenderError for a value that cannot be rendered."""
        if len(self.views) != 3 or any(int(v) < 0 for v in self.views) or sum(self.views) == 0:
            raise RenderError(f"--views {self.views}: three counts >= 0 (train, val, test), not all 0")
        if self.width < 1 or self.height < 1:
            raise RenderError(f"--resolution {self.width} {self.height}: pixels must be >= 1")
        if not 0.0 < self.fov < 180.0:
            raise RenderError(f"--fov {self.fov}: the horizontal field of view must lie in (0, 180) degrees")
        if not 0.0 < self.scene_radius < self.radius:
            raise RenderError(
                f"--radius {self.radius} --scene-radius {self.scene_radius}: the cameras must stand outside the "
                "scene's bounding sphere (0 < scene radius < radius)")
        if self.engine not in ENGINES:
            raise RenderError(f"--engine {self.engine}: one of {', '.join(ENGINES)}")
        if self.samples < 1:
            raise RenderError(f"--samples {self.samples}: at least 1")

    def notes(self) -> List[str]:
        """What the loader will not use with these options, and the flag that changes it (none for the defaults):
        depth outside its [2, 6] for object scenes is unknown, and a scene larger than the scene box is cut."""
        notes = []
        low, high = depth_bounds(self.radius, self.scene_radius)
        if low < LOADER_NEAR or high > LOADER_FAR:
            notes.append(f"depth will lie in [{low:g}, {high:g}] dataset units, outside the loader's default [2, 6] "
                         f"for object scenes: train with --pipeline.datamanager.depth-range {max(low, 0.0):g} {high:g}")
        if self.scene_radius > SCENE_BOX_HALF:
            notes.append(f"a bounding sphere of radius {self.scene_radius:g} reaches beyond blender-data's scene box "
                         f"[-{SCENE_BOX_HALF:g}, {SCENE_BOX_HALF:g}]^3, outside which nothing is reconstructed")
        return notes


# --- pure math (hand-checked by the tests) --------------------------------------------------------------------
def direction(azimuth: float, elevation: float) -> Vec3:
    """Unit vector at ``azimuth`` (radians, from +x towards +y) and ``elevation`` (radians, above the xy plane)."""
    return (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))


def sample_directions(count: int, seed: int, split: str, sphere: bool) -> List[Vec3]:
    """``count`` directions uniform on the unit sphere (``sphere``) or on its upper half (z >= 0), from the stream
    of (``seed``, ``split``): the same options give the same cameras (a rerun resumes), and splits differ.

    Uniform on the sphere: z uniform in [-1, 1] (in [0, 1] for the hemisphere; Archimedes), azimuth uniform."""
    rng = random.Random(f"{seed}/{split}")
    out = []
    for _ in range(count):
        z = rng.uniform(0.0 if not sphere else -1.0, 1.0)
        azimuth = rng.uniform(0.0, 2.0 * math.pi)
        out.append(direction(azimuth, math.asin(z)))
    return out


def _sub(a: Sequence[float], b: Sequence[float]) -> Vec3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _cross(a: Sequence[float], b: Sequence[float]) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(a: Sequence[float]) -> Vec3:
    n = math.sqrt(sum(x * x for x in a))
    return (a[0] / n, a[1] / n, a[2] / n)


def look_at(position: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0)) -> Matrix4:
    """Camera-to-world 4x4 (rows) of a camera at ``position`` looking at ``target``, in the OpenGL / Blender camera
    convention of NeRF-synthetic: the camera looks down its -z, its +y points up (towards world +z; towards world +y
    when it looks straight up or down), its +x to the right."""
    forward = _unit(_sub(target, position))
    up = (0.0, 0.0, 1.0)
    if abs(forward[2]) > 1.0 - 1e-9:
        up = (0.0, 1.0, 0.0)
    right = _unit(_cross(forward, up))
    true_up = _cross(right, forward)
    back = (-forward[0], -forward[1], -forward[2])
    return [[right[i], true_up[i], back[i], float(position[i])] for i in range(3)] + [[0.0, 0.0, 0.0, 1.0]]


def normalisation(bounds_min: Sequence[float], bounds_max: Sequence[float], scene_radius: float) -> Tuple[Vec3, float]:
    """``(centre, scale)`` mapping Blender to dataset units, ``(p - centre) * scale``: ``centre`` the centre of the
    bounding box, ``scale`` = ``scene_radius`` / half its diagonal (its bounding sphere then has radius
    ``scene_radius``). A box of one point (zero diagonal) is refused by the caller."""
    centre = tuple(0.5 * (lo + hi) for lo, hi in zip(bounds_min, bounds_max))
    half_diagonal = 0.5 * math.sqrt(sum((hi - lo) ** 2 for lo, hi in zip(bounds_min, bounds_max)))
    return centre, scene_radius / half_diagonal  # type: ignore[return-value]


def depth_bounds(radius: float, scene_radius: float) -> Tuple[float, float]:
    """The range every surface's depth lies in, dataset units: a camera ``radius`` from the centre of a sphere of
    ``scene_radius`` sees its surfaces between ``radius - scene_radius`` and ``radius + scene_radius`` away."""
    return radius - scene_radius, radius + scene_radius


def focal_length_px(width: int, fov_degrees: float) -> float:
    """Focal length in pixels of a horizontal field of view: ``0.5 * width / tan(fov / 2)`` (nerfstudio's
    ``blender-data`` from ``camera_angle_x``)."""
    return 0.5 * width / math.tan(0.5 * math.radians(fov_degrees))


def blender_matrix(dataset_matrix: Matrix4, centre: Sequence[float], scale: float) -> Matrix4:
    """The camera's matrix in the Blender scene from its dataset pose: the same rotation, the position mapped back
    (``centre + t / scale``)."""
    out = [list(row) for row in dataset_matrix]
    for i in range(3):
        out[i][3] = centre[i] + dataset_matrix[i][3] / scale
    return out


def dataset_cameras(options: RenderOptions) -> Dict[str, List[Matrix4]]:
    """Each split's camera-to-world matrices in dataset units: on the sphere of ``radius`` about the origin,
    looking at it."""
    cameras = {}
    for split, count in zip(SPLITS, options.views):
        dirs = sample_directions(int(count), options.seed, split, options.sphere)
        cameras[split] = [look_at(tuple(options.radius * c for c in d)) for d in dirs]
    return cameras


def transforms(options: RenderOptions, split: str, matrices: List[Matrix4], centre: Sequence[float],
               scale: float) -> Dict:
    """The ``transforms_SPLIT.json`` of a split (the loader's keys, and the mapping back to Blender)."""
    return {
        "camera_angle_x": math.radians(options.fov),
        DEPTH_FORMAT_KEY: DEPTH_FORMAT,
        DEPTH_TYPE_KEY: DEPTH_TYPE,
        DEPTH_SCALE_KEY: scale,
        DEPTH_EXR_CHANNEL_KEY: DEPTH_EXR_CHANNEL,
        "depth_units": ("the EXR holds planar z-depth in Blender units (1e10 where nothing is hit); times depth_scale "
                        "it is in dataset units, the units of transform_matrix"),
        "blender_to_dataset": {"centre": list(centre), "scale": scale,
                               "rule": "dataset point = (Blender point - centre) * scale"},
        "frames": [{"file_path": f"./{split}/r_{i}", DEPTH_FILE_PATH_KEY: f"./{split}/r_{i}{DEPTH_SUFFIX}",
                    "transform_matrix": m} for i, m in enumerate(matrices)],
    }


# --- command line ---------------------------------------------------------------------------------------------
def add_options(parser: argparse.ArgumentParser) -> None:
    """The render options (``RenderOptions``), shared by this script and ``ds-blender-render``."""
    d = RenderOptions()
    parser.add_argument("--views", type=int, nargs=3, default=list(d.views), metavar=("TRAIN", "VAL", "TEST"),
                        help=f"views per split (default: {' '.join(map(str, d.views))})")
    parser.add_argument("--resolution", type=int, nargs="+", default=[d.width], metavar="PX",
                        help=f"image width [and height] in pixels (default: {d.width}, square)")
    parser.add_argument("--fov", type=float, default=d.fov,
                        help=f"horizontal field of view, degrees (default: {d.fov})")
    parser.add_argument("--radius", type=float, default=d.radius,
                        help=f"camera distance from the scene's centre, dataset units (default: {d.radius})")
    parser.add_argument("--scene-radius", type=float, default=d.scene_radius,
                        help="radius of the scene's bounding sphere in the dataset, dataset units "
                             f"(default: {d.scene_radius})")
    parser.add_argument("--sphere", action="store_true",
                        help="cameras on the whole sphere (default: the upper hemisphere, z >= 0)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of the camera positions (default: {d.seed})")
    parser.add_argument("--engine", choices=sorted(ENGINES), default=d.engine,
                        help="cycles (CPU, default) or eevee (needs an OpenGL context)")
    parser.add_argument("--samples", type=int, default=d.samples,
                        help=f"samples per pixel of the images (default: {d.samples}); the depth pass takes one")


def options_from(args: argparse.Namespace) -> RenderOptions:
    """``RenderOptions`` from parsed arguments (validated)."""
    if len(args.resolution) not in (1, 2):
        raise RenderError(f"--resolution {' '.join(map(str, args.resolution))}: a width, or a width and a height")
    width = args.resolution[0]
    height = args.resolution[1] if len(args.resolution) == 2 else width
    options = RenderOptions(views=tuple(args.views), width=width, height=height, fov=args.fov, radius=args.radius,
                            scene_radius=args.scene_radius, sphere=args.sphere, seed=args.seed, engine=args.engine,
                            samples=args.samples)
    options.validate()
    return options


def options_argv(options: RenderOptions) -> List[str]:
    """The command-line arguments that give ``options`` back (``ds-blender-render`` hands them to this script)."""
    argv = ["--views", *map(str, options.views), "--resolution", str(options.width), str(options.height),
            "--fov", repr(options.fov), "--radius", repr(options.radius), "--scene-radius", repr(options.scene_radius),
            "--seed", str(options.seed), "--engine", options.engine, "--samples", str(options.samples)]
    return argv + (["--sphere"] if options.sphere else [])
