"""``ds-import-rgbd``: a real RGB-D capture (Kinect, RealSense, ...) as nerfstudio-data with depth.

Two layouts that users have are read (detected from the files, or forced with ``--layout``):

* ``7scenes`` (Microsoft 7-Scenes, and the redistributions of it): per frame ``<name>.color.jpg|png``,
  ``<name>.depth.png`` (16-bit z-depth, 1000 units per metre) and ``<name>.pose.txt`` (4 x 4 camera-to-world,
  OpenCV camera axes: x right, y down, z forward; metres), and one ``camera-intrinsics.txt`` (3 x 3 K);
* ``tum`` (TUM RGB-D): ``rgb.txt`` and ``depth.txt`` (``timestamp path`` lines) and ``groundtruth.txt``
  (``timestamp tx ty tz qx qy qz qw``: the colour camera's optical centre to world, OpenCV axes; metres), depth
  PNGs at 5000 units per metre. Colour and depth frames are paired by nearest timestamp, one to one, within
  ``--max-time-difference`` (greedily, smallest difference first, as TUM's ``associate.py``); each colour frame's
  pose is *interpolated* at its timestamp (linear in position, spherical in rotation) between the two ground-truth
  samples around it, when both are within ``--max-time-difference`` of it. Frames left without a depth or a pose
  (the sensors are not synchronised, motion capture starts late or loses track) are dropped and counted.

What is written into OUT (through a temporary folder beside it, renamed into place when complete, so that an
error leaves nothing half-written):

* ``depth/<name>.png``: 16-bit z-depth in millimetres (nerfstudio-data's default ``depth_unit_scale_factor``, 1e-3)
  in the colour image's pixels, 0 ("no depth") wherever the sensor gave no reading (0 or 65535) or a depth beyond
  ``--max-depth``; registered into the colour camera by reprojection when a depth camera of its own is given
  (:func:`register_depth`), downscaled without mixing surfaces (:func:`downscale_depth`);
* the colour images: referenced by absolute path when they are used as they are, else written to
  ``images/<name>.jpg|png`` (downscaled; alpha dropped: an image with alpha would make the scene an object scene);
* ``transforms.json``: one pinhole camera, every frame's camera-to-world in nerfstudio's (OpenGL) axes
  (:func:`opencv_to_nerfstudio`), its image and depth, ``train_filenames`` / ``val_filenames`` /
  ``test_filenames`` (every ``--test-every``-th frame along the trajectory is a test view, never trained on;
  validation = test, as ``ds-make-room`` writes them and nerfstudio's ``interval`` split picks them), and a
  ``generator`` block with the options and the valid depth's range.

The scene box and near/far need nothing written: like the room capture (``ds-make-room``), the folder is
nerfstudio-data without alpha, so nerfstudio's parser centres and scales the poses and every ``depth-*`` method
takes the unbounded scene type (nerfacto's near 0.05, far 1000, scene contraction; docs/captures.md).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Dict, List, Literal, Optional, Tuple

import numpy as np
import tyro
from jaxtyping import Bool, Float, Int
from PIL import Image

from depth_strategies.core import depth_io
from depth_strategies.core.atomic import atomic_path, write_text_atomic

Layout = Literal["7scenes", "tum"]
Intrinsics = Tuple[float, float, float, float]
"""(fx, fy, cx, cy) in pixels; pixel centres at +0.5 (nerfstudio's convention; intrinsics are taken as given)."""

GENERATOR_NAME = "ds-import-rgbd"
"""Written into transforms.json: a folder holding it is an import that may be replaced."""
DEPTH_SCALE: Dict[str, float] = {"7scenes": 1000.0, "tum": 5000.0}
"""Depth PNG units per metre of each layout (7-Scenes: millimetres; TUM RGB-D: 5000)."""
NO_READING = (0, 2**16 - 1)
"""16-bit depth values that are no measurement (Kinect: 0 for no return, 65535 for saturated)."""
MILLIMETRES = 1000.0
"""Output depth PNG values per metre: nerfstudio-data's default depth_unit_scale_factor is 1e-3."""
MAX_PNG = 2**16 - 1
"""Largest 16-bit value: output depth beyond 65.534 m does not fit and is unknown."""
DOWNSCALE_EDGE_JUMP = 0.1
"""A downscaled depth pixel whose valid source depths span more than this fraction of the nearest one straddles two
surfaces and is unknown (the datamanager's ``depth_edge_jump`` default for low-resolution depth, same reasoning)."""
INTRINSICS_PRESETS: Dict[str, Intrinsics] = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
    "7scenes": (585.0, 585.0, 320.0, 240.0),
}
"""Colour intrinsics at 640 x 480 by name: TUM RGB-D's calibrated Kinects (its "File Formats" page; lens distortion,
given there for freiburg1 and freiburg2, is not modelled: freiburg3's images are undistorted already) and 7-Scenes'
published values."""
MAX_NERFSTUDIO_SIDE = 1600
"""nerfstudio-data downscales larger images itself and then looks for ``images_N/`` folders: use ``--downscale``."""
RIGID_TOLERANCE = 1e-3
"""Largest |R^T R - I| entry and |det R - 1| accepted for a rotation read from a file."""
QUATERNION_TOLERANCE = 1e-2
"""Largest | |q| - 1 | accepted for a ground-truth quaternion (it is then normalised)."""
SEVEN_SCENES_COLOUR = re.compile(r"^(?P<name>.+)\.color\.(jpg|jpeg|png)$", re.IGNORECASE)
"""A 7-Scenes colour file; the name is what precedes ``.color``."""


class RgbdImportError(ValueError):
    """A problem with the input or the output folder: the message names the file and the fix."""


# ---------------------------------------------------------------------------------------------------- the math
def opencv_to_nerfstudio(c2w: Float[np.ndarray, "*batch 4 4"]) -> Float[np.ndarray, "*batch 4 4"]:
    """Camera-to-world matrices with OpenCV camera axes (x right, y down, z forward) in nerfstudio's (OpenGL: x right,
    y up, z back): the y and z columns of the rotation are negated; the position and the world frame are kept."""
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[..., :3, 1:3] *= -1.0
    return out


def check_rigid(matrix: Float[np.ndarray, "4 4"], source: str) -> Float[np.ndarray, "4 4"]:
    """``matrix`` as float64 when it is a rigid transform (finite, rotation orthonormal with determinant +1 within
    :data:`RIGID_TOLERANCE`, last row 0 0 0 1); otherwise :class:`RgbdImportError` naming ``source``."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise RgbdImportError(f"{source}: expected a 4x4 matrix, found shape {m.shape}; write 4 rows of 4 numbers")
    if not np.all(np.isfinite(m)):
        raise RgbdImportError(f"{source}: the pose holds non-finite values (tracking lost?); remove this frame's "
                              "files or give it a valid pose")
    rot = m[:3, :3]
    orthonormal = float(np.abs(rot.T @ rot - np.eye(3)).max())
    det = float(np.linalg.det(rot))
    if orthonormal > RIGID_TOLERANCE or abs(det - 1.0) > RIGID_TOLERANCE or np.abs(m[3] - [0, 0, 0, 1]).max() > 1e-9:
        raise RgbdImportError(
            f"{source}: not a rigid transform (|R^T R - I| = {orthonormal:.2g}, det R = {det:.4g}, last row "
            f"{m[3].tolist()}); a camera-to-world pose must be a rotation and a translation in metres: fix or "
            "remove this frame")
    return m


def quaternion_to_matrix(q: Float[np.ndarray, "*batch 4"]) -> Float[np.ndarray, "*batch 3 3"]:
    """Rotation matrices of unit quaternions in TUM's order (qx, qy, qz, qw), Hamilton convention (normalised
    first)."""
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=-2)


def slerp(q0: Float[np.ndarray, "4"], q1: Float[np.ndarray, "4"], t: float) -> Float[np.ndarray, "4"]:
    """Spherical linear interpolation between unit quaternions (either order of components), the short way round."""
    q0, q1 = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    dot = float(q0 @ q1)
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear, then normalised
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(dot)
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


def associate(
    first: Float[np.ndarray, "n"], second: Float[np.ndarray, "m"], max_difference: float  # noqa: F821
) -> Int[np.ndarray, "k 2"]:
    """Pairs ``(i, j)`` of timestamps ``first[i]`` and ``second[j]`` at most ``max_difference`` seconds apart, one to
    one: the closest pairs are taken first (TUM RGB-D's ``associate.py``). Sorted by ``i``."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    diff = np.abs(first[:, None] - second[None, :])
    i, j = np.nonzero(diff <= max_difference)
    order = np.lexsort((j, i, diff[i, j]))
    used_i, used_j, pairs = set(), set(), []
    for k in order:
        if i[k] not in used_i and j[k] not in used_j:
            used_i.add(i[k])
            used_j.add(j[k])
            pairs.append((int(i[k]), int(j[k])))
    return np.asarray(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def interpolate_poses(
    times: Float[np.ndarray, "n"],  # noqa: F821
    sample_times: Float[np.ndarray, "m"],  # noqa: F821
    translations: Float[np.ndarray, "m 3"],
    quaternions: Float[np.ndarray, "m 4"],
    max_difference: float,
) -> Tuple[Float[np.ndarray, "n 4 4"], Bool[np.ndarray, "n"]]:  # noqa: F821
    """Camera-to-world matrices at ``times`` from pose samples (sorted by time; quaternions qx qy qz qw): linear in
    position and spherical in rotation between the two samples around each time, when both lie within
    ``max_difference`` seconds of it (a sample at exactly the time is used as it is). Returns the matrices and
    which times got one (the others hold the identity)."""
    times, sample_times = np.asarray(times, np.float64), np.asarray(sample_times, np.float64)
    out = np.tile(np.eye(4), (len(times), 1, 1))
    found = np.zeros(len(times), dtype=bool)
    for k, t in enumerate(times):
        hi = int(np.searchsorted(sample_times, t, side="left"))
        if hi < len(sample_times) and sample_times[hi] == t:
            lo = hi
        else:
            lo = hi - 1
        if lo < 0 or hi >= len(sample_times) or t - sample_times[lo] > max_difference or \
                sample_times[hi] - t > max_difference:
            continue
        w = 0.0 if hi == lo else (t - sample_times[lo]) / (sample_times[hi] - sample_times[lo])
        out[k, :3, :3] = quaternion_to_matrix(slerp(quaternions[lo], quaternions[hi], w))
        out[k, :3, 3] = (1 - w) * translations[lo] + w * translations[hi]
        found[k] = True
    return out, found


def register_depth(
    depth: Float[np.ndarray, "hd wd"],
    depth_intrinsics: Intrinsics,
    colour_intrinsics: Intrinsics,
    depth_to_colour: Float[np.ndarray, "4 4"],
    colour_hw: Tuple[int, int],
) -> Float[np.ndarray, "hc wc"]:
    """z-depth of a depth camera's map (0 = unknown) seen from the colour camera, by reprojection.

    Each valid depth pixel is back-projected through its centre with the depth intrinsics (OpenCV axes), moved by
    ``depth_to_colour`` (depth-camera to colour-camera coordinates, metres) and projected with the colour
    intrinsics into the colour pixel that contains it; where several land in one pixel, the nearest is kept (a
    z-buffer: the surface the colour camera sees). Colour pixels that nothing lands in (disocclusions, and the
    gaps where the colour camera samples more finely than the depth camera) stay 0 (unknown).
    """
    dfx, dfy, dcx, dcy = depth_intrinsics
    cfx, cfy, ccx, ccy = colour_intrinsics
    height, width = colour_hw
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float64)
    points = np.stack([(cols + 0.5 - dcx) / dfx * z, (rows + 0.5 - dcy) / dfy * z, z], axis=-1)
    transform = np.asarray(depth_to_colour, np.float64)
    points = points @ transform[:3, :3].T + transform[:3, 3]
    zc = points[:, 2]
    front = zc > 0
    points, zc = points[front], zc[front]
    u = np.floor(cfx * points[:, 0] / zc + ccx).astype(np.int64)
    v = np.floor(cfy * points[:, 1] / zc + ccy).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    buffer = np.full(height * width, np.inf)
    np.minimum.at(buffer, v[inside] * width + u[inside], zc[inside])
    return np.where(np.isfinite(buffer), buffer, 0.0).reshape(height, width)


def downscale_depth(depth: Float[np.ndarray, "h w"], factor: int) -> Float[np.ndarray, "hs ws"]:
    """A depth map (0 = unknown) ``factor`` times smaller, without mixing surfaces: each output pixel is the nearest
    valid depth of its ``factor x factor`` block (a depth that was measured, never an average of two surfaces), and
    unknown when the block has no valid pixel or its valid depths span more than :data:`DOWNSCALE_EDGE_JUMP` of the
    nearest (the block straddles a depth edge). Rows and columns beyond a multiple of ``factor`` are dropped."""
    if factor == 1:
        return np.asarray(depth, np.float64)
    h, w = depth.shape[0] // factor, depth.shape[1] // factor
    blocks = np.asarray(depth, np.float64)[: h * factor, : w * factor].reshape(h, factor, w, factor)
    valid = blocks > 0
    nearest = np.where(valid, blocks, np.inf).min(axis=(1, 3))
    farthest = np.where(valid, blocks, -np.inf).max(axis=(1, 3))
    keep = np.isfinite(nearest) & (farthest - nearest <= DOWNSCALE_EDGE_JUMP * nearest)
    return np.where(keep, nearest, 0.0)


def downscale_intrinsics(intrinsics: Intrinsics, factor: int) -> Intrinsics:
    """Intrinsics of an image ``factor`` times smaller (pixel centres at +0.5: every term divides by ``factor``)."""
    return tuple(float(x) / factor for x in intrinsics)  # type: ignore[return-value]


def sensor_depth_metres(
    raw: Float[np.ndarray, "h w"], depth_scale: float, max_depth: Optional[float]
) -> Float[np.ndarray, "h w"]:
    """Metres of raw 16-bit depth values (``depth_scale`` units per metre); 0 (unknown) for no reading (0, 65535:
    :data:`NO_READING`) and beyond ``max_depth`` metres."""
    raw = np.asarray(raw, np.float64)
    metres = raw / depth_scale
    valid = ~np.isin(raw, NO_READING)
    if max_depth is not None:
        valid &= metres <= max_depth
    return np.where(valid, metres, 0.0)


def millimetre_png(depth: Float[np.ndarray, "h w"]) -> Int[np.ndarray, "h w"]:
    """uint16 millimetres of a z-depth map in metres; 0 where unknown or beyond what 16 bits hold."""
    mm = np.rint(np.asarray(depth, np.float64) * MILLIMETRES)
    return np.where((mm > 0) & (mm <= MAX_PNG), mm, 0).astype(np.uint16)


# ------------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Frame:
    """One frame of the source: its name (used for the output files), colour and depth files and camera-to-world
    (OpenCV axes, metres)."""

    name: str
    colour: Path
    depth: Path
    c2w: Float[np.ndarray, "4 4"]


def read_numbers(path: Path, what: str) -> Float[np.ndarray, "..."]:
    """The whitespace- or comma-separated numbers of a text file (lines starting with # ignored)."""
    if not path.is_file():
        raise RgbdImportError(f"{path} is missing: {what} is needed; restore it or pass it as an option")
    try:
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        return np.asarray([float(x) for x in text.replace(",", " ").split()], dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as err:
        raise RgbdImportError(f"{path}: cannot read {what} as numbers ({err}); fix the file") from None


def parse_intrinsics(spec: str) -> Intrinsics:
    """Intrinsics from a preset name (:data:`INTRINSICS_PRESETS`), ``fx,fy,cx,cy``, or a file holding a 3 x 3 K or
    the four numbers."""
    if spec in INTRINSICS_PRESETS:
        return INTRINSICS_PRESETS[spec]
    path = Path(spec)
    if path.is_file():
        numbers = read_numbers(path, "the camera intrinsics")
    else:
        try:
            numbers = np.asarray([float(x) for x in spec.split(",")])
        except ValueError:
            raise RgbdImportError(
                f"intrinsics {spec!r}: neither a file, nor fx,fy,cx,cy, nor one of {', '.join(INTRINSICS_PRESETS)}"
            ) from None
    if numbers.size == 9:
        k = numbers.reshape(3, 3)
        if abs(k[0, 1]) > 1e-9 or np.abs(k[2] - [0, 0, 1]).max() > 1e-9:
            raise RgbdImportError(f"intrinsics {spec}: a 3x3 K must be [[fx 0 cx] [0 fy cy] [0 0 1]]")
        numbers = np.asarray([k[0, 0], k[1, 1], k[0, 2], k[1, 2]])
    if numbers.size != 4 or not np.all(np.isfinite(numbers)) or numbers[0] <= 0 or numbers[1] <= 0:
        raise RgbdImportError(f"intrinsics {spec}: expected fx,fy,cx,cy (fx, fy > 0) or a 3x3 K, found "
                              f"{numbers.size} numbers {numbers.tolist()}")
    return tuple(float(x) for x in numbers)  # type: ignore[return-value]


def parse_extrinsic(spec: str) -> Float[np.ndarray, "4 4"]:
    """A depth-to-colour rigid transform from a file or 16 (or 12: 3 x 4) comma-separated numbers, row by row."""
    path = Path(spec)
    if path.is_file():
        numbers = read_numbers(path, "the depth-to-colour extrinsic")
    else:
        try:
            numbers = np.asarray([float(x) for x in spec.split(",")])
        except ValueError:
            raise RgbdImportError(f"depth-to-colour {spec!r}: neither a file nor 16 comma-separated numbers") from None
    if numbers.size == 12:
        numbers = np.concatenate([numbers, [0.0, 0.0, 0.0, 1.0]])
    if numbers.size != 16:
        raise RgbdImportError(f"depth-to-colour {spec}: expected a 4x4 (or 3x4) matrix, found {numbers.size} numbers")
    return check_rigid(numbers.reshape(4, 4), f"depth-to-colour {spec}")


def read_pose(path: Path) -> Float[np.ndarray, "4 4"]:
    """A 4 x 4 camera-to-world matrix from a text file, checked to be rigid."""
    numbers = read_numbers(path, "the frame's pose")
    if numbers.size != 16:
        raise RgbdImportError(f"{path}: expected 16 numbers (a 4x4 camera-to-world matrix), found {numbers.size}")
    return check_rigid(numbers.reshape(4, 4), str(path))


def detect_layout(src: Path) -> Layout:
    """``tum`` when SRC holds rgb.txt and depth.txt, ``7scenes`` when it holds ``*.color.jpg|png`` files; otherwise
    :class:`RgbdImportError`."""
    if (src / "rgb.txt").is_file() and (src / "depth.txt").is_file():
        return "tum"
    if src.is_dir() and any(SEVEN_SCENES_COLOUR.match(p.name) for p in src.iterdir()):
        return "7scenes"
    raise RgbdImportError(
        f"{src}: no recognised RGB-D layout: expected 7-Scenes files (<name>.color.jpg|png, <name>.depth.png, "
        "<name>.pose.txt, camera-intrinsics.txt) or TUM RGB-D lists (rgb.txt, depth.txt, groundtruth.txt); point "
        "SRC at such a folder (for 7-Scenes, one seq-NN folder), or force one with --layout")


def seven_scenes_frames(src: Path) -> List[Frame]:
    """The frames of a 7-Scenes folder in name order; a missing depth or pose file is an error naming it."""
    frames = []
    for colour in sorted(p for p in src.iterdir() if SEVEN_SCENES_COLOUR.match(p.name)):
        name = SEVEN_SCENES_COLOUR.match(colour.name)["name"]  # type: ignore[index]
        depth, pose = src / f"{name}.depth.png", src / f"{name}.pose.txt"
        for needed, what in ((depth, "depth"), (pose, "pose")):
            if not needed.is_file():
                raise RgbdImportError(f"{needed} is missing: frame {name} has a colour image but no {what}; restore "
                                      f"it, or remove {colour.name} to leave the frame out")
        frames.append(Frame(name, colour, depth, read_pose(pose)))
    if not frames:
        raise RgbdImportError(f"{src}: no <name>.color.jpg|png files; is this a 7-Scenes folder?")
    return frames


def read_timestamped(path: Path, columns: int) -> Tuple[Float[np.ndarray, "n"], List[List[str]]]:  # noqa: F821
    """Timestamps and the other fields of a TUM list (``timestamp field...`` per line, # comments), sorted by time."""
    if not path.is_file():
        raise RgbdImportError(f"{path} is missing: a TUM RGB-D folder needs rgb.txt, depth.txt and groundtruth.txt")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if len(fields) != columns + 1:
                raise ValueError(f"{len(fields)} fields, expected {columns + 1}")
            rows.append((float(fields[0]), fields[1:]))
        except ValueError as err:
            raise RgbdImportError(f"{path}, line {number}: {err}: {line.strip()!r}; fix or remove the line") from None
    rows.sort(key=lambda row: row[0])
    return np.asarray([t for t, _ in rows], np.float64), [fields for _, fields in rows]


def tum_frames(src: Path, max_difference: float) -> Tuple[List[Frame], Dict[str, int]]:
    """The frames of a TUM RGB-D folder: colour frames paired with a depth frame (:func:`associate`) and given an
    interpolated pose (:func:`interpolate_poses`); those without are dropped. Also returns the counts."""
    rgb_t, rgb = read_timestamped(src / "rgb.txt", 1)
    depth_t, depth = read_timestamped(src / "depth.txt", 1)
    gt_t, gt = read_timestamped(src / "groundtruth.txt", 7)
    if len(gt_t) == 0:
        raise RgbdImportError(f"{src / 'groundtruth.txt'} lists no pose; every frame needs one")
    values = np.asarray([[float(x) for x in fields] for fields in gt])
    if not np.all(np.isfinite(values)):
        bad = int(np.nonzero(~np.all(np.isfinite(values), axis=1))[0][0])
        raise RgbdImportError(f"{src / 'groundtruth.txt'}: the pose at t = {gt_t[bad]} is not finite; remove it")
    norms = np.linalg.norm(values[:, 3:], axis=1)
    if np.any(np.abs(norms - 1) > QUATERNION_TOLERANCE):
        bad = int(np.argmax(np.abs(norms - 1)))
        raise RgbdImportError(f"{src / 'groundtruth.txt'}: the quaternion at t = {gt_t[bad]} has norm "
                              f"{norms[bad]:.4f}, not a rotation; fix or remove the line")
    pairs = associate(rgb_t, depth_t, max_difference)
    c2w, found = interpolate_poses(rgb_t[pairs[:, 0]], gt_t, values[:, :3], values[:, 3:] / norms[:, None],
                                   max_difference)
    frames = []
    for (i, j), pose, ok in zip(pairs, c2w, found):
        if not ok:
            continue
        colour, depth_file = src / rgb[i][0], src / depth[j][0]
        for needed, listed in ((colour, "rgb.txt"), (depth_file, "depth.txt")):
            if not needed.is_file():
                raise RgbdImportError(f"{needed} is missing (listed in {src / listed}); restore it, or remove its "
                                      "line from the list")
        frames.append(Frame(f"{rgb_t[i]:.6f}", colour, depth_file, check_rigid(pose, f"{src / 'groundtruth.txt'}")))
    counts = {"colour": len(rgb_t), "depth": len(depth_t), "paired": len(pairs), "posed": len(frames)}
    return frames, counts


# ------------------------------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class ImportOptions:
    """How an RGB-D folder is imported (the CLI's options; see :class:`ImportArgs`)."""

    layout: Optional[Layout] = None
    stride: int = 1
    depth_scale: Optional[float] = None
    max_depth: Optional[float] = None
    intrinsics: Optional[str] = None
    depth_intrinsics: Optional[str] = None
    depth_to_colour: Optional[str] = None
    downscale: int = 1
    test_every: int = 8
    max_time_difference: float = 0.02


def colour_intrinsics(src: Path, layout: Layout, spec: Optional[str]) -> Tuple[Intrinsics, str]:
    """The colour camera's intrinsics and where they came from: ``--intrinsics``, else the folder's
    ``camera-intrinsics.txt`` (7-Scenes), else a TUM preset named in the folder's name (``freiburg1`` ...)."""
    if spec is not None:
        return parse_intrinsics(spec), f"--intrinsics {spec}"
    if layout == "7scenes" and (src / "camera-intrinsics.txt").is_file():
        return parse_intrinsics(str(src / "camera-intrinsics.txt")), str(src / "camera-intrinsics.txt")
    if layout == "tum":
        for name in ("freiburg1", "freiburg2", "freiburg3"):
            if name in src.resolve().name:
                return INTRINSICS_PRESETS[name], f"{name} (from the folder's name)"
    raise RgbdImportError(
        f"{src}: no camera intrinsics found (7-Scenes: camera-intrinsics.txt); give --intrinsics FILE (a 3x3 K), "
        f"fx,fy,cx,cy, or one of {', '.join(INTRINSICS_PRESETS)}")


def prepare_output(out: Path) -> Path:
    """Check that ``out`` may be written (absent, empty, or a previous import) and return a fresh temporary folder
    beside it to write into."""
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise RgbdImportError(f"{out} is a file; choose a folder for the import")
    if out.is_dir() and any(out.iterdir()):
        transforms = out / "transforms.json"
        try:
            previous = json.loads(transforms.read_text()).get("generator", {}) if transforms.is_file() else {}
        except ValueError:
            previous = {}
        if previous.get("name") != GENERATOR_NAME:
            raise RgbdImportError(f"{out} is not empty and holds no {GENERATOR_NAME} import; choose a new folder")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "depth").mkdir(parents=True)
    except OSError as err:
        raise RgbdImportError(f"cannot write into {out.parent} ({err.strerror or err}); choose an OUT folder you can "
                              "write") from None
    return tmp


def replace_folder(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing a previous import (renames: never half of one)."""
    out = Path(out).absolute()
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def import_rgbd(src: Path, out: Path, options: ImportOptions = ImportOptions()) -> Dict[str, object]:
    """Import the RGB-D folder ``src`` into ``out`` as nerfstudio-data with depth (module docstring); returns what was
    written into transforms.json's ``generator`` block (counts, options, the valid depth's range)."""
    src, out = Path(src).absolute(), Path(out).absolute()
    if not src.is_dir():
        raise RgbdImportError(f"{src} is not a folder; give the folder of the RGB-D capture")
    if options.stride < 1 or options.downscale < 1:
        raise RgbdImportError(f"--stride ({options.stride}) and --downscale ({options.downscale}) must be >= 1")
    layout = options.layout or detect_layout(src)
    intrinsics, intrinsics_source = colour_intrinsics(src, layout, options.intrinsics)
    depth_intrinsics = parse_intrinsics(options.depth_intrinsics) if options.depth_intrinsics else None
    extrinsic = parse_extrinsic(options.depth_to_colour) if options.depth_to_colour else None
    registering = depth_intrinsics is not None or extrinsic is not None
    depth_scale = options.depth_scale or DEPTH_SCALE[layout]
    if layout == "tum":
        frames, counts = tum_frames(src, options.max_time_difference)
    else:
        frames = seven_scenes_frames(src)
        counts = {"colour": len(frames)}
    frames = frames[:: options.stride]
    if len(frames) < 2 or options.test_every < 2:
        raise RgbdImportError(f"{len(frames)} frames after --stride {options.stride}, --test-every "
                              f"{options.test_every}: need at least 2 frames and --test-every >= 2 (frame 0 is a test "
                              "view: one frame in K)")
    factor = options.downscale
    fx, fy, cx, cy = downscale_intrinsics(intrinsics, factor)
    tmp = prepare_output(out)
    try:
        entries, names, samples, unknown, size = [], {"train": [], "test": []}, [], [], None
        for index, frame in enumerate(frames):
            with Image.open(frame.colour) as image:
                colour_size = image.size
                if size is not None and colour_size != size:
                    raise RgbdImportError(f"{frame.colour}: {colour_size[0]}x{colour_size[1]}, but the first colour "
                                          f"image is {size[0]}x{size[1]}; nerfstudio-data needs one camera")
                size = colour_size
                if factor == 1 and image.mode == "RGB":
                    file_path = str(frame.colour)
                else:
                    small = image.convert("RGB")
                    if factor > 1:
                        w, h = colour_size[0] // factor, colour_size[1] // factor
                        small = small.crop((0, 0, w * factor, h * factor)).resize((w, h), Image.Resampling.BOX)
                    jpeg = frame.colour.suffix.lower() in (".jpg", ".jpeg")
                    file_path = f"images/{frame.name}.{'jpg' if jpeg else 'png'}"
                    (tmp / "images").mkdir(exist_ok=True)
                    with atomic_path(tmp / file_path) as target:
                        small.save(target, **({"format": "JPEG", "quality": 95} if jpeg else {"format": "PNG"}))
            raw, _ = depth_io.decode_depth(frame.depth, depth_io.DepthEncoding("png16", "z", 1.0))
            metres = sensor_depth_metres(raw, depth_scale, options.max_depth)
            width, height = colour_size
            if registering:
                metres = register_depth(metres, depth_intrinsics or intrinsics, intrinsics,
                                        extrinsic if extrinsic is not None else np.eye(4), (height, width))
            elif metres.shape != (height, width):
                raise RgbdImportError(
                    f"{frame.depth}: depth is {metres.shape[1]}x{metres.shape[0]} but the colour image is "
                    f"{width}x{height}; give --depth-intrinsics (and --depth-to-colour) to register it into the "
                    "colour image")
            metres = downscale_depth(metres, factor)
            depth_path = f"depth/{frame.name}.png"
            with atomic_path(tmp / depth_path) as target:
                Image.fromarray(millimetre_png(metres)).save(target, format="PNG")
            valid = metres[metres > 0]
            samples.append(valid[:: max(1, valid.size // 2000)])
            unknown.append(1.0 - valid.size / metres.size)
            entries.append({"file_path": file_path, "depth_file_path": depth_path,
                            "transform_matrix": opencv_to_nerfstudio(frame.c2w).tolist()})
            names["test" if index % options.test_every == 0 else "train"].append(file_path)
        assert size is not None
        valid = np.concatenate(samples)
        if valid.size == 0:
            raise RgbdImportError(f"{src}: no frame has a valid depth pixel (scale {depth_scale} per metre, max depth "
                                  f"{options.max_depth}); check --depth-scale and --max-depth")
        w, h = size[0] // factor, size[1] // factor
        if max(w, h) > MAX_NERFSTUDIO_SIDE:
            print(f"{GENERATOR_NAME}: note: images are {w}x{h}; nerfstudio-data downscales images above "
                  f"{MAX_NERFSTUDIO_SIDE} px and then looks for images_N/ folders: use --downscale 2")
        positions = np.asarray([frame.c2w[:3, 3] for frame in frames])
        generator = {
            "name": GENERATOR_NAME, "source": str(src), "layout": layout, "frames": len(frames), "counts": counts,
            "stride": options.stride, "downscale": factor, "depth_scale": depth_scale, "max_depth": options.max_depth,
            "intrinsics": intrinsics_source, "registered": registering,
            "depth_range_m": [round(float(np.percentile(valid, 1)), 3), round(float(np.percentile(valid, 99)), 3)],
            "unknown_fraction": round(float(np.mean(unknown)), 4),
            "camera_extent_m": np.round(np.ptp(positions, axis=0), 3).tolist(),
        }
        if layout == "tum":
            generator["max_time_difference"] = options.max_time_difference
            generator["poses"] = "interpolated at the colour timestamps"
        meta = {"fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": w, "h": h, "camera_model": "OPENCV",
                "frames": entries, "train_filenames": names["train"], "val_filenames": names["test"],
                "test_filenames": names["test"], "generator": generator}
        write_text_atomic(tmp / "transforms.json", json.dumps(meta, indent=1))
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return generator


# ----------------------------------------------------------------------------------------------------- CLI
@dataclass(frozen=True)
class ImportArgs:
    """Import a real RGB-D capture (7-Scenes or TUM RGB-D layout) as nerfstudio-data with 16-bit millimetre depth:
    ns-train depth-hybrid nerfstudio-data --data OUT reads it with no extra flag."""

    src: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")]
    """The capture's folder (7-Scenes: *.color.jpg, *.depth.png, *.pose.txt; TUM: rgb.txt, depth.txt,
    groundtruth.txt)."""
    out: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="OUT")]
    """Output folder (created; a previous import there is replaced; images are referenced unless downscaled)."""
    layout: Optional[Layout] = None
    """Force the layout instead of detecting it."""
    stride: int = 1
    """Import every Nth frame (after the TUM association)."""
    depth_scale: Optional[float] = None
    """Depth PNG units per metre (default: 1000 for 7-Scenes, 5000 for TUM)."""
    max_depth: Optional[float] = None
    """Depth beyond this many metres is unknown (default: keep every reading)."""
    intrinsics: Optional[str] = None
    """Colour intrinsics when the folder has none: a file (3x3 K), fx,fy,cx,cy, or freiburg1|freiburg2|freiburg3|
    7scenes (default: camera-intrinsics.txt; for TUM, the freiburgN named in the folder's name)."""
    depth_intrinsics: Optional[str] = None
    """The depth camera's own intrinsics (same forms), when it differs from the colour camera: depth is then
    registered into the colour image by reprojection (z-buffer)."""
    depth_to_colour: Optional[str] = None
    """4x4 depth-camera-to-colour-camera transform (file, or 16 comma-separated numbers row by row; metres, OpenCV
    axes) for the registration (default: identity)."""
    downscale: int = 1
    """Integer factor for images, depth and intrinsics (images: area average; depth: nearest valid depth of each
    block, unknown across a depth edge)."""
    test_every: int = 8
    """Every Kth frame along the trajectory is a test (and validation) view, never trained on."""
    max_time_difference: float = 0.02
    """TUM: seconds within which colour, depth and pose timestamps are associated."""


def entrypoint() -> None:
    """Console script ``ds-import-rgbd``."""
    args = tyro.cli(ImportArgs)
    options = ImportOptions(
        layout=args.layout, stride=args.stride, depth_scale=args.depth_scale, max_depth=args.max_depth,
        intrinsics=args.intrinsics, depth_intrinsics=args.depth_intrinsics, depth_to_colour=args.depth_to_colour,
        downscale=args.downscale, test_every=args.test_every, max_time_difference=args.max_time_difference)
    try:
        info = import_rgbd(args.src, args.out, options)
    except (RgbdImportError, depth_io.DepthFileError, OSError) as err:
        raise SystemExit(f"{GENERATOR_NAME}: error: {err}") from None
    low, high = info["depth_range_m"]  # type: ignore[misc]
    repository = next((p for p in Path(args.out).absolute().parents if (p / ".git").exists()), None)
    if repository is not None:
        print(f"{GENERATOR_NAME}: note: {args.out} lies inside the git repository {repository}: do not commit the "
              "imported frames (captures such as 7-Scenes are licensed for use in place, not redistribution)")
    print(f"{GENERATOR_NAME}: wrote {args.out} ({info['frames']} {info['layout']} frames; valid depth {low}-{high} m "
          f"(1st-99th percentile), {100 * float(info['unknown_fraction']):.1f} % of depth pixels unknown); train "
          f"with: ns-train depth-hybrid nerfstudio-data --data {args.out}")
