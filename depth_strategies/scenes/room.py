"""A capture without download (``ds-make-room``): a furnished room filmed by a hand-held phone with a depth sensor,
written as nerfstudio-data, the format ``ns-process-data record3d|polycam`` produces.

The room (metres, world +z up, floor at z = 0) is 8 x 7 x 2.6 m: a checkered floor, striped walls, a plain ceiling,
a cabinet and a bench against the walls, and the built-in object scene (:mod:`depth_strategies.scenes.geometry`)
standing on the floor in the middle. Cameras walk around the middle at 1.6 to 2.8 m from it, at hand height
(0.9 to 1.6 m), looking at it with a jitter, as someone filming an object on the floor of a room: an unbounded scene
(every ray hits a wall; the walls are up to 5 m away), with no alpha and so no empty rays.

Files (``transforms.json`` and three folders):

* ``images/frame_NNNN.jpg``: RGB, Lambertian shading (:mod:`depth_strategies.scenes.render`);
* ``depth/frame_NNNN.png``: the phone's depth sensor: 16-bit z-depth in millimetres (nerfstudio-data's default
  ``depth_unit_scale_factor`` 1e-3) at ``1 / depth_factor`` of the image's resolution, each depth pixel the depth at
  its centre (an iPhone gives 256 x 192 for 1920 x 1440: 1 / 7.5);
* ``depth/frame_NNNN_confidence.png``: ARKit-like confidence per depth pixel: 2 (high), 1 (medium) beyond
  :data:`MEDIUM_CONFIDENCE_BEYOND` metres, 0 (low) next to a depth jump of more than :data:`LOW_CONFIDENCE_JUMP`
  (ARKit marks edges and far surfaces less confident);
* ``transforms.json``: one OPENCV-free pinhole camera (``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h``), every frame's
  OpenGL camera-to-world matrix, image and depth path, and ``train_filenames`` / ``test_filenames`` (every
  ``test_every``-th frame is a test view).

Same arguments, same files. Degradations of the depth (:mod:`depth_strategies.core.degradation`) apply at load
time, like for any data.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import tyro
from numpy.typing import NDArray
from PIL import Image

from depth_strategies.core.atomic import atomic_path, write_text_atomic
from depth_strategies.core.degradation import SURFACE, discontinuities
from depth_strategies.scenes.geometry import (
    BLUE,
    CREAM,
    GREY,
    ORANGE,
    SCENE,
    TEAL,
    WHITE,
    Array,
    BoxSheet,
    Sheet,
    checker_xy,
    diagonal_stripes,
    solid,
)
from depth_strategies.scenes.render import camera_rays, look_at, render_view, trace

ROOM_HALF: tuple[float, float, float] = (4.0, 3.5, 1.3)
"""Half extents of the room box (metres); its centre is at (0, 0, 1.3), so the floor is z = 0."""
OBJECTS_LIFT: float = 0.75
"""The built-in object scene is lifted by this much, so that the bottom of its platform stands on the floor."""
CAMERA_DISTANCE: tuple[float, float] = (1.6, 2.8)
"""Horizontal distance of the cameras from the middle of the room (metres), drawn uniformly."""
CAMERA_HEIGHT: tuple[float, float] = (0.9, 1.6)
"""Camera height above the floor (metres), drawn uniformly: hand height."""
LOOK_JITTER: float = 0.25
"""Standard deviation of where each camera looks around the middle of the objects (metres)."""
HORIZONTAL_FOV: float = math.radians(63.0)
"""Horizontal field of view of the phone's wide camera (about 63 degrees, a 26 mm equivalent lens)."""
MEDIUM_CONFIDENCE_BEYOND: float = 3.5
"""Depth (metres) beyond which the confidence drops to 1 (medium)."""
LOW_CONFIDENCE_JUMP: float = 0.1
"""Relative depth jump to a neighbouring depth pixel below which the confidence is not 0 (low)."""
MILLIMETRES = 1000.0
"""Depth PNG values per metre."""
GENERATOR_NAME = "ds-make-room"
"""Written into transforms.json."""


def _room_texture(p: Array) -> Array:
    """Albedo on the inside of the room box (local frame): checkered floor, striped walls, plain ceiling."""
    hx, hy, hz = ROOM_HALF
    floor = checker_xy(0.5, CREAM, GREY)(p)
    ceiling = np.broadcast_to(np.asarray(WHITE), p.shape)
    x_wall = diagonal_stripes(0.6, TEAL, WHITE)(p)  # walls x = +-hx
    y_wall = diagonal_stripes(0.8, ORANGE, CREAM)(p)  # walls y = +-hy
    on = np.abs(np.abs(p) - np.asarray([hx, hy, hz])) < 1e-6
    out = np.where(on[:, 0:1], x_wall, y_wall)
    out = np.where((on[:, 2] & (p[:, 2] < 0))[:, None], floor, out)
    return np.where((on[:, 2] & (p[:, 2] > 0))[:, None], ceiling, out)


def build_room() -> tuple[Sheet, ...]:
    """The room's surface sheets: its walls, two pieces of furniture and the lifted object scene."""
    identity = np.eye(3)
    sheets: list[Sheet] = [
        BoxSheet("room", (0.0, 0.0, ROOM_HALF[2]), identity, _room_texture, half=ROOM_HALF),
        BoxSheet("cabinet", (-3.4, 1.5, 0.6), identity, diagonal_stripes(0.3, BLUE, WHITE), half=(0.5, 0.9, 0.6)),
        BoxSheet("bench", (1.5, -3.1, 0.25), identity, solid(ORANGE), half=(1.2, 0.3, 0.25)),
    ]
    for sheet in SCENE:
        x, y, z = sheet.center
        sheets.append(dataclasses.replace(sheet, center=(x, y, z + OBJECTS_LIFT)))
    return tuple(sheets)


ROOM: tuple[Sheet, ...] = build_room()
"""The sheets of the room scene."""
OBJECTS_CENTRE: tuple[float, float, float] = (0.0, 0.0, 0.55)
"""Where the cameras look (with a jitter): the middle of the lifted objects."""


def room_cameras(n: int, seed: int) -> Array:
    """``[n, 4, 4]`` camera-to-world matrices of a walk around the middle of the room: azimuths evenly spread with a
    jitter (in walking order), distance and height uniform in their ranges, looking at :data:`OBJECTS_CENTRE` with a
    jitter."""
    rng = np.random.default_rng([seed, 7])
    azimuth = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * math.pi / max(n, 1)
    distance = rng.uniform(*CAMERA_DISTANCE, n)
    height = rng.uniform(*CAMERA_HEIGHT, n)
    targets = np.asarray(OBJECTS_CENTRE) + rng.normal(0.0, LOOK_JITTER, (n, 3))
    eyes = np.stack([distance * np.cos(azimuth), distance * np.sin(azimuth), height], axis=-1)
    return np.stack([look_at(e, t) for e, t in zip(eyes, targets)]) if n else np.zeros((0, 4, 4))


def sensor_depth(c2w: Array, width: int, height: int, focal: float) -> NDArray[np.float64]:
    """z-depth (metres) of a depth sensor with the image's field of view at ``width x height``: the depth at each of
    its pixel centres."""
    origins, directions, norm = camera_rays(c2w, width, height, focal)
    t = trace(origins, directions, ROOM)[0]
    return np.where(np.isfinite(t), t / norm, 0.0).reshape(height, width)


def confidence_of(depth: NDArray[np.float64]) -> NDArray[np.uint8]:
    """ARKit-like confidence of a depth map: 2, 1 beyond :data:`MEDIUM_CONFIDENCE_BEYOND`, 0 next to a relative depth
    jump above :data:`LOW_CONFIDENCE_JUMP` (:func:`depth_strategies.core.degradation.discontinuities`)."""
    state = np.where(depth > 0, SURFACE, 0).astype(np.uint8)
    confidence = np.where(depth > MEDIUM_CONFIDENCE_BEYOND, 1, 2).astype(np.uint8)
    confidence[discontinuities(depth, state, LOW_CONFIDENCE_JUMP, relative=True) | (depth <= 0)] = 0
    return confidence


@dataclasses.dataclass(frozen=True)
class Room:
    """What the capture is like: its size, its walk and its depth sensor (the ``room`` of a protocol scene too)."""

    width: int = 96
    """Image width in pixels."""
    height: int = 72
    """Image height in pixels."""
    views: int = 40
    """Frames of the walk."""
    test_every: int = 8
    """Every this many frames, one is a held-out test view (not trained on)."""
    depth_factor: int = 4
    """The depth maps are this many times smaller than the images in each direction."""
    seed: int = 0
    """Seed of the camera walk."""


def make_room(out: Path, room: Room = Room(), supersample: int = 2) -> Path:
    """Write the room capture into ``out`` (created; refuses a non-empty folder that holds no ``ds-make-room``
    capture); returns ``out``. See the module docstring for the files."""
    width, height, views, test_every = room.width, room.height, room.views, room.test_every
    depth_factor, seed = room.depth_factor, room.seed
    out = Path(out)
    if width % depth_factor or height % depth_factor or depth_factor < 1:
        raise ValueError(f"width and height ({width}x{height}) must be multiples of depth_factor ({depth_factor})")
    if views < 2 or not 1 < test_every <= views:
        raise ValueError(f"need at least 2 views and 1 < test_every <= views; got {views} views, test_every "
                         f"{test_every}")
    transforms = out / "transforms.json"
    if out.is_dir() and any(out.iterdir()):
        previous = json.loads(transforms.read_text()).get("generator", {}) if transforms.is_file() else {}
        if previous.get("name") != GENERATOR_NAME:
            raise FileExistsError(f"{out} is not empty and holds no {GENERATOR_NAME} capture; choose a new folder")
    for folder in ("images", "depth"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    focal = 0.5 * width / math.tan(0.5 * HORIZONTAL_FOV)
    frames, train, test = [], [], []
    for i, c2w in enumerate(room_cameras(views, seed)):
        rgba, _ = render_view(c2w, width, height, focal, supersample, sheets=ROOM)
        image = f"images/frame_{i:04d}.jpg"
        with atomic_path(out / image) as tmp:
            Image.fromarray(rgba[..., :3]).save(tmp, format="JPEG", quality=95)
        depth = sensor_depth(c2w, width // depth_factor, height // depth_factor, focal / depth_factor)
        depth_path = f"depth/frame_{i:04d}.png"
        millimetres = np.clip(np.round(depth * MILLIMETRES), 0, 2**16 - 1).astype(np.uint16)
        with atomic_path(out / depth_path) as tmp:
            Image.fromarray(millimetres).save(tmp, format="PNG")
        with atomic_path(out / f"depth/frame_{i:04d}_confidence.png") as tmp:
            Image.fromarray(confidence_of(depth)).save(tmp, format="PNG")
        frames.append({"file_path": image, "depth_file_path": depth_path, "transform_matrix": c2w.tolist()})
        (test if i % test_every == 0 else train).append(image)
    meta = {
        "fl_x": focal, "fl_y": focal, "cx": width / 2, "cy": height / 2, "w": width, "h": height,
        "camera_model": "OPENCV", "frames": frames, "train_filenames": train, "val_filenames": test,
        "test_filenames": test,
        "generator": {"name": GENERATOR_NAME, "seed": seed, "depth_factor": depth_factor},
    }
    write_text_atomic(transforms, json.dumps(meta, indent=1))
    return out


def make_room_cli(out: tyro.conf.Positional[Path], room: tyro.conf.OmitArgPrefixes[Room] = Room()) -> None:
    """Write a furnished room filmed by a phone with a depth sensor, as nerfstudio-data (images, 16-bit millimetre
    depth at a lower resolution, ARKit-like confidence maps): ns-train depth-hybrid nerfstudio-data --data OUT.

    Args:
        out: Output folder.
    """
    try:
        make_room(out, room)
    except (FileExistsError, ValueError) as err:
        raise SystemExit(f"ds-make-room: error: {err}") from None
    print(f"ds-make-room: wrote {out} ({room.views} frames, {room.width}x{room.height}, depth "
          f"{room.width // room.depth_factor}x{room.height // room.depth_factor})")


def entrypoint() -> None:
    """``ds-make-room``."""
    tyro.cli(make_room_cli)
