"""Find and decode per-image depth maps of Blender / NeRF-synthetic-format datasets.

This module is pure file I/O + numpy (no torch, no nerfstudio). For one image it

1. finds the depth file (:func:`find_depth_file`): a per-frame ``"depth_file_path"`` key of the
   ``transforms_{split}.json`` frame first, otherwise the glob patterns :data:`DEPTH_FILE_PATTERNS`
   next to the image;
2. decides how the file is encoded (:func:`resolve_encoding`): explicit override (config) > keys in the
   transforms json top level > detection by suffix/content (:func:`detect_format`) + :data:`DEFAULT_ENCODINGS`;
3. decodes it (:func:`decode_depth`) to float32 depth in scene units (``encoding.scale`` applied) with a
   boolean validity mask; invalid pixels hold ``0.0``.

It does *not* apply the image alpha, the dataparser's scene scale, or the z-depth <-> ray-distance
conversion; ``DepthEncoding.depth_type`` only records which of the two the file stores.

Every problem with a file raises :class:`DepthFileError` whose message names the file and says what to do.
"""

from __future__ import annotations

import glob
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Mapping, Optional, Union, get_args

import numpy as np

__all__ = [
    "DEFAULT_ENCODINGS",
    "DEPTH_FILE_PATTERNS",
    "DepthEncoding",
    "DepthEncodingOverride",
    "DepthFileError",
    "DepthFormat",
    "DepthFormatWarning",
    "DepthType",
    "decode_depth",
    "describe_search",
    "detect_format",
    "find_depth_file",
    "resolve_encoding",
]

DepthType = Literal["z", "ray"]
"""``"z"``: planar depth along the camera's optical axis; ``"ray"``: Euclidean distance from the camera centre
along the pixel's ray."""

DepthFormat = Literal["nerf-synthetic-png", "png16", "exr", "npy"]
"""Supported on-disk depth encodings, see :data:`DEFAULT_ENCODINGS`."""

DEPTH_TYPES: tuple[str, ...] = get_args(DepthType)
DEPTH_FORMATS: tuple[str, ...] = get_args(DepthFormat)

# --- constants, with their source ---------------------------------------------------------------------------

NERF_SYNTHETIC_DEPTH_MAX: float = 8.0
"""Far limit of the NeRF-synthetic depth PNGs: ``distance = 8 * (1 - v/255)``. Source: the original NeRF Blender
render script (Mildenhall et al. 2020, map range 0..8 inverted into 8 bits); confirmed on the lego test split by a
multi-view reprojection check (see ``shared/data/lego/README.md``)."""

NERF_SYNTHETIC_LEVELS: int = 255
"""Maximum 8-bit value of the NeRF-synthetic depth PNGs (``v / 255``)."""

NERF_SYNTHETIC_CHANNEL_TOLERANCE: int = 1
"""Colour channels of a NeRF-synthetic depth PNG that differ by more than this many levels trigger a
:class:`DepthFormatWarning` (channel 0 is still used). In the real data all channels are identical."""

NERF_SYNTHETIC_NAME_RE = re.compile(r"_depth_[0-9]{4}\.png$", re.IGNORECASE)
"""File-name rule for NeRF-synthetic depth PNGs: ``r_N_depth_NNNN.png`` (suffix ``_0000``/``_0001``/``_0186``...,
it is Blender's frame number and differs between scenes)."""

PNG16_DEFAULT_SCALE: float = 1e-3
"""16-bit depth PNGs hold millimetres by default: nerfstudio's ``depth_unit_scale_factor`` default is ``1e-3``
(``nerfstudio.data.dataparsers.nerfstudio_dataparser``), the usual RGB-D camera convention."""

EXR_BACKGROUND_THRESHOLD: float = 1e9
"""EXR values at or above this are background: Blender's Z pass writes ``1e10`` where no surface is hit."""

HALF_FLOAT_MAX: float = 65504.0
"""Largest finite IEEE-754 half float. Clamped background in half-float EXRs shows up as this value."""

PNG_SIGNATURE: bytes = b"\x89PNG\r\n\x1a\n"
"""The 8-byte PNG file signature (PNG spec, section 5.2)."""

EXR_MAGIC: bytes = b"\x76\x2f\x31\x01"
"""The 4-byte OpenEXR magic number (OpenEXR file layout documentation)."""

EXR_AUTO_CHANNELS: tuple[str, ...] = ("Z", "V", "R", "Y")
"""EXR channel names tried in order when ``DepthEncoding.exr_channel`` is None. ``Z``: Blender's Z pass /
OpenEXR depth convention; ``V``: Blender's "Value" output of the compositor; ``R``/``Y``: depth written as a
colour or luminance image. For ``Z`` and ``V`` multilayer names such as ``ViewLayer.Depth.Z`` also match (last
dot-component). If none matches, a file with a single channel uses that channel."""

EXR_LAYERED_AUTO_CHANNELS: tuple[str, ...] = ("Z", "V")
"""Auto channel names that may also match as the last dot-component of a multilayer channel name."""

DEPTH_FILE_PATTERNS: tuple[str, ...] = (
    "{stem}_depth_[0-9][0-9][0-9][0-9].png",  # NeRF-synthetic (frame-number suffix differs per scene)
    "{stem}_depth.exr",
    "{stem}.depth.exr",
    "{stem}_depth.png",
    "{stem}_depth.npy",
    "{stem}.depth.npy",
)
"""Glob patterns, relative to the image's folder, tried in this order; ``{stem}`` is the image file stem."""

DEPTH_FILE_PATH_KEY: str = "depth_file_path"
"""Per-frame key of ``transforms_{split}.json`` naming the frame's depth file (relative to the data dir)."""

META_FORMAT_KEY: str = "depth_format"
META_TYPE_KEY: str = "depth_type"
META_SCALE_KEY: str = "depth_scale"
META_EXR_CHANNEL_KEY: str = "depth_exr_channel"
"""Top-level keys of ``transforms_{split}.json`` that set the depth encoding (see :func:`resolve_encoding`)."""

SUFFIX_FORMATS: Mapping[str, str] = MappingProxyType({".png": "png", ".exr": "exr", ".npy": "npy"})
"""Supported file suffixes (lower-case). ``.png`` is further split into NeRF-synthetic / 16-bit by content."""

_HINT_EXPLICIT = (
    f'set the encoding explicitly: "{META_FORMAT_KEY}" (one of {", ".join(DEPTH_FORMATS)}), '
    f'"{META_TYPE_KEY}" (z|ray) and "{META_SCALE_KEY}" at the top level of transforms_<split>.json, '
    "or the depth encoding override in the config"
)


class DepthFileError(ValueError):
    """A depth file is missing, unreadable, of the wrong size or of an unsupported/ambiguous encoding.

    The message always names the offending file (or transforms entry) and says what to do.
    """


class DepthFormatWarning(UserWarning):
    """A depth file is readable but looks suspicious (e.g. NeRF-synthetic PNG channels that differ)."""


# --- encodings --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthEncoding:
    """How a depth file stores depth.

    Attributes:
        format: on-disk encoding, one of :data:`DepthFormat`.
        depth_type: ``"z"`` (planar depth) or ``"ray"`` (distance along the ray) of the decoded values.
        scale: decoded value x ``scale`` = scene units (e.g. ``0.001`` for millimetre PNGs). Finite and > 0.
        exr_channel: EXR channel to read; None = automatic (see :data:`EXR_AUTO_CHANNELS`). Ignored for other
            formats.
    """

    format: DepthFormat
    depth_type: DepthType
    scale: float = 1.0
    exr_channel: Optional[str] = None

    def __post_init__(self) -> None:
        """Validate the fields (raises ValueError naming the allowed values)."""
        if self.format not in DEPTH_FORMATS:
            raise ValueError(f'depth format "{self.format}" is not one of: {", ".join(DEPTH_FORMATS)}')
        if self.depth_type not in DEPTH_TYPES:
            raise ValueError(f'depth type "{self.depth_type}" is not one of: {", ".join(DEPTH_TYPES)}')
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise ValueError(f"depth scale {self.scale!r} must be a number")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"depth scale {self.scale!r} must be finite and > 0")
        if self.exr_channel is not None and (not isinstance(self.exr_channel, str) or not self.exr_channel):
            raise ValueError(f"EXR channel {self.exr_channel!r} must be a non-empty string or None")


DEFAULT_ENCODINGS: Mapping[DepthFormat, DepthEncoding] = MappingProxyType(
    {
        # 8-bit, distance = 8 * (1 - v/255), v = 0 background. Measured on lego: distance along the ray.
        "nerf-synthetic-png": DepthEncoding("nerf-synthetic-png", "ray", 1.0),
        # uint16 in millimetres (nerfstudio depth_unit_scale_factor=1e-3), 0 = invalid; RGB-D cameras give z-depth.
        "png16": DepthEncoding("png16", "z", PNG16_DEFAULT_SCALE),
        # float32/float16 as Blender writes its Z pass (planar z-depth); >= 1e9 or 65504 = background.
        "exr": DepthEncoding("exr", "z", 1.0),
        # float array HxW or HxWx1 in scene units, planar z-depth.
        "npy": DepthEncoding("npy", "z", 1.0),
    }
)
"""Per-format defaults used when neither the config nor the transforms json says otherwise (read-only)."""


@dataclass(frozen=True)
class DepthEncodingOverride:
    """Explicit (config) choices that take precedence over the transforms json and detection.

    Each field left at None is not overridden. Values are validated by :func:`resolve_encoding`.

    Attributes:
        format: depth format, one of :data:`DepthFormat`.
        depth_type: ``"z"`` or ``"ray"``.
        scale: multiplier from decoded value to scene units.
        exr_channel: EXR channel name.
    """

    format: Optional[str] = None
    depth_type: Optional[str] = None
    scale: Optional[float] = None
    exr_channel: Optional[str] = None


# --- finding files ----------------------------------------------------------------------------------------


def _frame_depth_path(image_path: Path, frame: Optional[Mapping], data_dir: Optional[Path]) -> Optional[Path]:
    """Return the path named by the frame's ``depth_file_path`` key (not checked for existence), or None."""
    if frame is None or DEPTH_FILE_PATH_KEY not in frame:
        return None
    value = frame[DEPTH_FILE_PATH_KEY]
    if not isinstance(value, str) or not value.strip():
        raise DepthFileError(
            f'frame of image {image_path}: "{DEPTH_FILE_PATH_KEY}" is {value!r}; it must be a path (relative to the '
            "data folder, like file_path, or absolute); fix or remove the key"
        )
    rel = Path(value)
    if rel.is_absolute():
        return rel
    if data_dir is None:
        raise DepthFileError(
            f'frame of image {image_path}: "{DEPTH_FILE_PATH_KEY}" "{value}" is relative but no data_dir was given '
            "to resolve it; pass data_dir (the folder holding transforms_<split>.json) or use an absolute path"
        )
    return Path(data_dir) / rel  # Path drops a leading "./"


def _pattern_candidates(image_path: Path) -> list[str]:
    """Return the patterns of :data:`DEPTH_FILE_PATTERNS` filled in for ``image_path``, as glob strings."""
    image_path = Path(image_path)
    return [str(image_path.parent / p.format(stem=image_path.stem)) for p in DEPTH_FILE_PATTERNS]


def find_depth_file(
    image_path: Path, frame: Optional[Mapping] = None, data_dir: Optional[Path] = None
) -> Optional[Path]:
    """Find the depth file of one image.

    1. A per-frame ``"depth_file_path"`` in ``frame`` (a transforms json frame) is honoured first. It is resolved
       relative to ``data_dir`` like ``file_path`` (``./`` prefix allowed) or used as is when absolute.
    2. Otherwise :data:`DEPTH_FILE_PATTERNS` are globbed in order in the image's folder; the first pattern with a
       match wins.

    Args:
        image_path: the RGB image (its suffix may be missing, as in NeRF-synthetic ``file_path``).
        frame: the image's frame of ``transforms_{split}.json``, if any.
        data_dir: folder of the transforms json; needed for a relative ``depth_file_path``.

    Returns:
        The depth file, or None when nothing is found.

    Raises:
        DepthFileError: ``depth_file_path`` is given but the file does not exist (or is malformed), or a pattern
            matches several files (e.g. ``r_0_depth_0000.png`` and ``r_0_depth_0001.png``).
    """
    image_path = Path(image_path)
    explicit = _frame_depth_path(image_path, frame, data_dir)
    if explicit is not None:
        if not explicit.is_file():
            raise DepthFileError(
                f'frame of image {image_path}: "{DEPTH_FILE_PATH_KEY}" points to {explicit}, which does not exist; '
                "fix the path in the transforms json (relative to the data folder, like file_path) or remove the key"
            )
        return explicit
    folder = image_path.parent
    stem = glob.escape(image_path.stem)
    for pattern in DEPTH_FILE_PATTERNS:
        matches = sorted(p for p in folder.glob(pattern.format(stem=stem)) if p.is_file())
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(str(m) for m in matches)
            raise DepthFileError(
                f"several depth files match {folder / pattern.format(stem=image_path.stem)} for image {image_path}: "
                f'{names}; keep only one, or name it per frame with "{DEPTH_FILE_PATH_KEY}" in the transforms json'
            )
    return None


def describe_search(image_path: Path, frame: Optional[Mapping] = None, data_dir: Optional[Path] = None) -> str:
    """Describe where :func:`find_depth_file` looks, for "no depth for image X; looked for: ..." messages.

    Lists the frame's ``depth_file_path`` (if present), then the concrete candidate patterns next to the image.
    Never raises for a malformed ``depth_file_path``; it is shown as given.
    """
    parts: list[str] = []
    if frame is not None and DEPTH_FILE_PATH_KEY in frame:
        try:
            parts.append(f"{DEPTH_FILE_PATH_KEY} {_frame_depth_path(Path(image_path), frame, data_dir)}")
        except DepthFileError:
            parts.append(f"{DEPTH_FILE_PATH_KEY} {frame[DEPTH_FILE_PATH_KEY]!r}")
    parts.extend(_pattern_candidates(Path(image_path)))
    return ", ".join(parts)


# --- format detection -------------------------------------------------------------------------------------


def _png_ihdr(path: Path) -> tuple[int, int, int, int]:
    """Return ``(width, height, bit_depth, color_type)`` from a PNG's IHDR chunk (read from the raw bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(33)
    except OSError as exc:
        raise DepthFileError(f"cannot read depth file {path}: {exc}; check the path and permissions") from exc
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DepthFileError(
            f"depth file {path} is not a valid PNG (bad signature/header or truncated); re-export it or remove it"
        )
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    return width, height, head[24], head[25]


_PNG_COLOR_TYPES = MappingProxyType({0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"})


def detect_format(path: Path) -> DepthFormat:
    """Detect a depth file's format from its suffix and (for PNG) its header.

    * ``.exr`` -> ``"exr"``; ``.npy`` -> ``"npy"``;
    * ``.png``: 8-bit grayscale/RGB/RGBA/LA named ``*_depth_NNNN.png`` -> ``"nerf-synthetic-png"``;
      16-bit grayscale -> ``"png16"``.

    Raises:
        DepthFileError: unknown suffix; an 8-bit PNG not named like NeRF-synthetic (ambiguous); a palette,
            16-bit colour or < 8-bit PNG; a file that is not a PNG at all.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    kind = SUFFIX_FORMATS.get(suffix)
    if kind is None:
        raise DepthFileError(
            f'depth file {path}: unsupported suffix "{path.suffix}"; supported formats: '
            "nerf-synthetic-png (8-bit *_depth_NNNN.png), png16 (16-bit .png), exr (.exr), npy (.npy); "
            "convert the depth map to one of them"
        )
    if kind != "png":
        return kind  # type: ignore[return-value]
    _, _, bit_depth, color_type = _png_ihdr(path)
    color_name = _PNG_COLOR_TYPES.get(color_type, f"color type {color_type}")
    if bit_depth == 16 and color_type == 0:
        return "png16"
    if bit_depth == 8 and color_type in (0, 2, 4, 6):
        if NERF_SYNTHETIC_NAME_RE.search(path.name):
            return "nerf-synthetic-png"
        raise DepthFileError(
            f"depth file {path}: 8-bit depth PNG but not NeRF-synthetic naming (*_depth_NNNN.png), so its "
            f"encoding is ambiguous; {_HINT_EXPLICIT}, or re-export as a 16-bit PNG, EXR or .npy"
        )
    raise DepthFileError(
        f"depth file {path}: unsupported PNG layout ({bit_depth}-bit {color_name}); depth PNGs must be 8-bit "
        "NeRF-synthetic (*_depth_NNNN.png) or 16-bit single-channel; re-export it as one of these, EXR or .npy"
    )


# --- encoding resolution ----------------------------------------------------------------------------------


def _check_choice(value: Any, allowed: tuple[str, ...], what: str, source: str, path: Path) -> str:
    """Return ``value`` if it is one of ``allowed``; else raise a DepthFileError naming the source."""
    if isinstance(value, str) and value in allowed:
        return value
    raise DepthFileError(
        f"{source}: {what} {_json_repr(value)} is not allowed (depth file {path}); allowed values: {', '.join(allowed)}"
    )


def _check_scale(value: Any, what: str, source: str, path: Path) -> float:
    """Return ``value`` as a float if it is a finite number > 0; else raise a DepthFileError naming the source."""
    if not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value)
    raise DepthFileError(
        f"{source}: {what} {_json_repr(value)} is not allowed (depth file {path}); it must be a finite number > 0 "
        "(decoded value x scale = scene units, e.g. 0.001 for millimetres)"
    )


def _check_channel(value: Any, what: str, source: str, path: Path) -> str:
    """Return ``value`` if it is a non-empty string; else raise a DepthFileError naming the source."""
    if isinstance(value, str) and value:
        return value
    raise DepthFileError(
        f"{source}: {what} {_json_repr(value)} is not allowed (depth file {path}); it must be an EXR channel name "
        'such as "Z" or "ViewLayer.Depth.Z"'
    )


def _json_repr(value: Any) -> str:
    """Render a config/json value for error messages: strings in double quotes, others with repr."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


def resolve_encoding(
    path: Path,
    meta: Optional[Mapping] = None,
    override: Optional[Union[DepthEncoding, DepthEncodingOverride]] = None,
    *,
    meta_source: str = "transforms json",
    override_source: str = "config override",
) -> DepthEncoding:
    """Decide how ``path`` is encoded.

    Precedence, field by field (format, depth_type, scale, exr_channel):

    1. ``override``: a full :class:`DepthEncoding` is returned as is; a :class:`DepthEncodingOverride` overrides
       each field that is not None;
    2. top-level keys of the transforms json ``meta``: ``"depth_format"``, ``"depth_type"`` (``"z"``/``"ray"``),
       ``"depth_scale"``, ``"depth_exr_channel"``;
    3. :func:`detect_format` (only run when the format is not set by 1 or 2) and the chosen format's entry of
       :data:`DEFAULT_ENCODINGS` for the fields not set by 1 or 2.

    Args:
        path: the depth file.
        meta: the parsed transforms json (top level), or None.
        override: explicit config choices, or None.
        meta_source: name of the json for error messages, e.g. ``"transforms_train.json"``.
        override_source: name of the override for error messages.

    Raises:
        DepthFileError: a bad format/type/scale/channel value (the message names where it came from and the
            allowed values), or detection failed.
    """
    path = Path(path)
    if isinstance(override, DepthEncoding):
        return override
    if override is not None and not isinstance(override, DepthEncodingOverride):
        raise TypeError(f"override must be a DepthEncoding, DepthEncodingOverride or None, got {type(override)}")
    meta = meta if meta is not None else {}
    ov = override if override is not None else DepthEncodingOverride()

    def pick(ov_value: Any, key: str, check: Any) -> Any:
        """Return the validated override value, else the validated meta value, else None."""
        if ov_value is not None:
            return check(ov_value, key.replace("depth_", "depth ").replace("_", " "), override_source)
        if key in meta and meta[key] is not None:
            return check(meta[key], key, meta_source)
        return None

    fmt = pick(ov.format, META_FORMAT_KEY, lambda v, w, s: _check_choice(v, DEPTH_FORMATS, w, s, path))
    depth_type = pick(ov.depth_type, META_TYPE_KEY, lambda v, w, s: _check_choice(v, DEPTH_TYPES, w, s, path))
    scale = pick(ov.scale, META_SCALE_KEY, lambda v, w, s: _check_scale(v, w, s, path))
    channel = pick(ov.exr_channel, META_EXR_CHANNEL_KEY, lambda v, w, s: _check_channel(v, w, s, path))

    if fmt is None:
        fmt = detect_format(path)
    default = DEFAULT_ENCODINGS[fmt]
    return DepthEncoding(
        format=fmt,
        depth_type=depth_type if depth_type is not None else default.depth_type,
        scale=scale if scale is not None else default.scale,
        exr_channel=channel if channel is not None else default.exr_channel,
    )


# --- decoding ---------------------------------------------------------------------------------------------


def _corrupt(path: Path, exc: BaseException, what: str) -> DepthFileError:
    """Build the error for an unreadable/corrupt depth file."""
    return DepthFileError(
        f"cannot read depth file {path} as {what}: {type(exc).__name__}: {exc}; "
        "the file is corrupt or truncated: re-export it, or remove it"
    )


def _read_png(path: Path, fmt: str) -> np.ndarray:
    """Read a PNG fully into an array (uint8 [H,W] / [H,W,C] or uint16/int32 [H,W])."""
    from PIL import Image  # local import: keep module import light

    _, _, bit_depth, color_type = _png_ihdr(path)
    if fmt == "nerf-synthetic-png" and not (bit_depth == 8 and color_type in (0, 2, 4, 6)):
        raise DepthFileError(
            f"depth file {path}: format nerf-synthetic-png needs an 8-bit grayscale/RGB/RGBA PNG, found "
            f"{bit_depth}-bit {_PNG_COLOR_TYPES.get(color_type, color_type)}; set the format to png16 for 16-bit "
            "single-channel PNGs, or re-export the depth"
        )
    if fmt == "png16" and not (bit_depth == 16 and color_type == 0):
        raise DepthFileError(
            f"depth file {path}: format png16 needs a 16-bit single-channel PNG, found {bit_depth}-bit "
            f"{_PNG_COLOR_TYPES.get(color_type, color_type)}; re-export it as 16-bit grayscale, or set the format "
            "to nerf-synthetic-png for 8-bit NeRF-synthetic maps"
        )
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(img)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error... for bad data
        raise _corrupt(path, exc, f"{bit_depth}-bit PNG") from exc


def _select_exr_channel(path: Path, names: list[str], requested: Optional[str]) -> str:
    """Pick the EXR channel to read (``requested`` exactly, or the automatic rule of :data:`EXR_AUTO_CHANNELS`)."""
    listed = ", ".join(sorted(names)) or "(none)"
    if requested is not None:
        if requested in names:
            return requested
        raise DepthFileError(
            f'depth file {path}: EXR channel "{requested}" not found; channels: {listed}; set '
            f'"{META_EXR_CHANNEL_KEY}" (or the config override) to one of them'
        )
    for want in EXR_AUTO_CHANNELS:
        if want in names:
            return want
        if want in EXR_LAYERED_AUTO_CHANNELS:
            layered = sorted(n for n in names if "." in n and n.rsplit(".", 1)[1] == want)
            if len(layered) == 1:
                return layered[0]
            if len(layered) > 1:
                raise DepthFileError(
                    f"depth file {path}: several EXR depth channels ({', '.join(layered)}); set "
                    f'"{META_EXR_CHANNEL_KEY}" (or the config override) to the one to use'
                )
    if len(names) == 1:
        return names[0]
    raise DepthFileError(
        f"depth file {path}: no depth channel found among EXR channels {listed} (tried "
        f'{", ".join(EXR_AUTO_CHANNELS)} and *.Z/*.V); set "{META_EXR_CHANNEL_KEY}" (or the config override)'
    )


def read_exr(path: Path, channel: Optional[str] = None) -> np.ndarray:
    """Read one channel of an OpenEXR file as a float array [H,W], raw (no sentinel handling, no scale).

    ``channel`` None picks the depth channel automatically (see :data:`EXR_AUTO_CHANNELS`).
    """
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(EXR_MAGIC))
    except OSError as exc:
        raise DepthFileError(f"cannot read depth file {path}: {exc}; check the path and permissions") from exc
    if magic != EXR_MAGIC:
        raise DepthFileError(
            f"depth file {path} is not an OpenEXR file (bad magic number); re-export it as EXR, or remove it"
        )
    import OpenEXR  # local import: only needed for EXR files

    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = exr.channels()
            name = _select_exr_channel(path, list(channels), channel)
            pixels = np.array(channels[name].pixels)
    except DepthFileError:
        raise
    except Exception as exc:  # OpenEXR raises RuntimeError/ValueError for corrupt data
        raise _corrupt(path, exc, "OpenEXR") from exc
    if pixels.ndim != 2 or pixels.dtype.kind != "f":
        raise DepthFileError(
            f'depth file {path}: EXR channel "{name}" holds {pixels.dtype} with shape {pixels.shape}; depth must be '
            "a float (half or float32) channel; re-export it, or choose another channel"
        )
    return pixels


def _read_npy(path: Path) -> np.ndarray:
    """Read a float .npy depth array, HxW or HxWx1, as [H,W]."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # ValueError/OSError/EOFError for bad or truncated files
        raise _corrupt(path, exc, "a .npy array") from exc
    if not isinstance(arr, np.ndarray):  # an .npz archive saved under a .npy name
        if hasattr(arr, "close"):
            arr.close()
        raise DepthFileError(
            f"depth file {path} is an .npz archive, not a single .npy array; save the depth with np.save as one "
            "float array HxW"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise DepthFileError(
            f"depth file {path}: .npy holds {arr.dtype} with shape {arr.shape}; expected a float array of shape "
            "HxW or HxWx1 (depth in scene units, or set a depth scale); re-save it with np.save"
        )
    return arr


# --- confidence maps ------------------------------------------------------------------------------------------
CONFIDENCE_FILE_PATH_KEY: str = "confidence_file_path"
"""Per-frame key of the transforms json naming the frame's confidence map (relative to the data dir)."""

CONFIDENCE_FILE_PATTERNS: tuple[str, ...] = ("{stem}_confidence.png", "{stem}.confidence.png", "{stem}_confidence.npy")
"""Glob patterns next to the *depth* file, ``{stem}`` being the depth file's stem (``r_0_depth_confidence.png``)."""

CONFIDENCE_LEVELS: int = 3
"""ARKit / Record3D confidence: 0 low, 1 medium, 2 high (``ARConfidenceLevel``)."""


def find_confidence_file(
    depth_path: Path, frame: Optional[Mapping] = None, data_dir: Optional[Path] = None
) -> Optional[Path]:
    """The confidence map of a depth file: the frame's ``confidence_file_path`` (relative to ``data_dir``, or
    absolute), else the first of :data:`CONFIDENCE_FILE_PATTERNS` next to the depth file; None when there is none.

    Raises:
        DepthFileError: ``confidence_file_path`` names a file that does not exist.
    """
    named = frame.get(CONFIDENCE_FILE_PATH_KEY) if frame is not None else None
    if isinstance(named, str) and named.strip():
        path = Path(named) if Path(named).is_absolute() or data_dir is None else Path(data_dir) / named
        if not path.is_file():
            raise DepthFileError(
                f'depth file {depth_path}: "{CONFIDENCE_FILE_PATH_KEY}" points to {path}, which does not exist; fix '
                "the path in the transforms json (relative to the data folder) or remove the key"
            )
        return path
    depth_path = Path(depth_path)
    for pattern in CONFIDENCE_FILE_PATTERNS:
        candidate = depth_path.parent / pattern.format(stem=depth_path.stem)
        if candidate.is_file():
            return candidate
    return None


def decode_confidence(path: Path, depth_hw: tuple[int, int]) -> np.ndarray:
    """Read a confidence map (8-bit PNG or integer .npy, values 0, 1, 2), uint8 [h, w] at its own size.

    Its resolution may differ from the depth map's (``depth_hw``; ARKit gives confidence at the depth's resolution,
    other tools at the image's), its aspect ratio may not: the caller picks values to the depth's size.

    Raises:
        DepthFileError: unreadable file, values outside 0..2, or an aspect ratio that differs from the depth's.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(path) as img:
                arr = np.array(img)
    except Exception as exc:  # Pillow / numpy errors for corrupt data
        raise _corrupt(path, exc, "confidence map") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.dtype.kind not in "iub" or arr.size == 0:
        raise DepthFileError(
            f"confidence map {path}: holds {arr.dtype} with shape {arr.shape}; expected integer levels 0 (low), 1 "
            "(medium), 2 (high) in one channel, as ARKit and Record3D write them; re-export it or remove it"
        )
    if int(arr.max()) >= CONFIDENCE_LEVELS or int(arr.min()) < 0:
        raise DepthFileError(
            f"confidence map {path}: values {int(arr.min())}..{int(arr.max())}; expected 0 (low), 1 (medium), "
            "2 (high); rescale it (e.g. 0/127/255 -> 0/1/2) or remove it"
        )
    h, w = arr.shape
    dh, dw = depth_hw
    if h * dw != w * dh:
        raise DepthFileError(
            f"confidence map {path} is {h}x{w} (HxW) but its depth map is {dh}x{dw}: the aspect ratios differ; "
            "export the confidence at the depth's (or the image's) resolution"
        )
    return arr.astype(np.uint8)


def decode_depth(
    path: Path, encoding: DepthEncoding, expected_hw: Optional[tuple[int, int]] = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a depth file to scene units.

    * ``nerf-synthetic-png``: channel 0 ``v`` (grayscale also accepted), ``8 * (1 - v/255)``;
      ``v == 0`` (background) and ``v == 255`` (distance 0) are invalid. Colour channels that differ by more than
      one level only trigger a :class:`DepthFormatWarning`.
    * ``png16``: the uint16 value, ``0`` invalid.
    * ``exr``: the selected float channel; values ``>= 1e9`` (Blender background) or ``== 65504`` (half max)
      invalid.
    * ``npy``: the float array.

    All values are then multiplied by ``encoding.scale``. A pixel is valid when it is finite, > 0 and not a
    background sentinel; NaN/inf/negative values are invalid, not errors. No resizing is done.

    Args:
        path: the depth file.
        encoding: how it is encoded (see :func:`resolve_encoding`).
        expected_hw: the image's (height, width); a depth with another aspect ratio is an error (one at another
            resolution with the same aspect ratio is returned at its own size, for the caller to upsample).

    Returns:
        ``(depth, valid)``: float32 [H,W] with 0.0 at invalid pixels, and bool [H,W].

    Raises:
        DepthFileError: unreadable/corrupt file, wrong layout/dtype for the format, or wrong size.
    """
    path = Path(path)
    if not path.is_file():
        raise DepthFileError(f"depth file {path} does not exist; check the path or remove the reference to it")
    fmt = encoding.format
    if fmt == "nerf-synthetic-png":
        arr = _read_png(path, fmt)
        if arr.ndim == 3:
            n_colour = 1 if arr.shape[2] <= 2 else 3  # LA / RGB(A): compare colour channels, not alpha
            colour = arr[:, :, :n_colour].astype(np.int16)
            spread = int((colour.max(axis=2) - colour.min(axis=2)).max()) if n_colour > 1 else 0
            if spread > NERF_SYNTHETIC_CHANNEL_TOLERANCE:
                warnings.warn(
                    f"depth file {path}: colour channels differ by up to {spread} levels; using channel 0",
                    DepthFormatWarning,
                    stacklevel=2,
                )
            arr = arr[:, :, 0]
        raw = arr.astype(np.float64)
        values = NERF_SYNTHETIC_DEPTH_MAX * (1.0 - raw / NERF_SYNTHETIC_LEVELS)
        sentinel = raw == 0
    elif fmt == "png16":
        arr = _read_png(path, fmt)
        if arr.ndim != 2:
            raise DepthFileError(
                f"depth file {path}: 16-bit PNG decoded to shape {arr.shape}; expected a single channel; re-export it"
            )
        values = arr.astype(np.float64)
        sentinel = values == 0
    elif fmt == "exr":
        arr = read_exr(path, encoding.exr_channel)
        values = arr.astype(np.float64)
        with np.errstate(invalid="ignore"):
            sentinel = (values >= EXR_BACKGROUND_THRESHOLD) | (values == HALF_FLOAT_MAX)
    elif fmt == "npy":
        arr = _read_npy(path)
        values = arr.astype(np.float64)
        sentinel = np.zeros(values.shape, dtype=bool)
    else:  # unreachable: DepthEncoding validates the format
        raise DepthFileError(f"depth file {path}: unknown format {fmt!r}; allowed: {', '.join(DEPTH_FORMATS)}")

    height, width = values.shape
    if expected_hw is not None and height * expected_hw[1] != width * expected_hw[0]:
        exp_h, exp_w = expected_hw
        raise DepthFileError(
            f"depth file {path} is {height}x{width} (HxW) but its image is {exp_h}x{exp_w}: the aspect ratios differ, "
            "so its pixels cannot be matched to the image's; re-export the depth at the image's aspect ratio (any "
            "resolution), or point the frame to the matching depth file"
        )

    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * float(encoding.scale)
        valid = np.isfinite(scaled) & (scaled > 0) & ~sentinel
    depth = np.where(valid, scaled, 0.0).astype(np.float32)
    valid &= depth > 0  # a tiny value that underflows in float32 is not a usable depth
    return depth, valid
