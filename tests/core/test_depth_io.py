"""Tests of depth_strategies.core.depth_io: finding, format resolution and decoding of depth maps.

Every test builds tiny files in tmp_path; expected values are written as arithmetic. The lego test reads the real
NeRF-synthetic data under ../shared/data/lego and is skipped only when that folder is absent.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from depth_strategies.core.depth_io import (
    DEFAULT_ENCODINGS,
    DEPTH_FILE_PATTERNS,
    DepthEncoding,
    DepthEncodingOverride,
    DepthFileError,
    DepthFormatWarning,
    decode_depth,
    describe_search,
    detect_format,
    find_depth_file,
    resolve_encoding,
)
from tests.conftest import LEGO

LEGO_DIR = LEGO

NS = DEFAULT_ENCODINGS["nerf-synthetic-png"]
PNG16 = DEFAULT_ENCODINGS["png16"]
EXR = DEFAULT_ENCODINGS["exr"]
NPY = DEFAULT_ENCODINGS["npy"]


# --- helpers ----------------------------------------------------------------------------------------------


def write_rgba_depth(path: Path, values: np.ndarray) -> Path:
    """Write an 8-bit RGBA PNG with all four channels equal to ``values`` (as NeRF-synthetic does)."""
    v = np.asarray(values, dtype=np.uint8)
    Image.fromarray(np.stack([v, v, v, v], axis=-1), mode="RGBA").save(path)
    return path


def write_png16(path: Path, values: np.ndarray) -> Path:
    """Write a 16-bit grayscale PNG."""
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)
    return path


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> Path:
    """Write a scanline OpenEXR file with the given channels (float32 or float16 arrays)."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, channels).write(str(path))
    return path


def touch(path: Path) -> Path:
    """Create an empty file (enough for the file finder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# --- decoding: NeRF-synthetic 8-bit PNG --------------------------------------------------------------------


def test_nerf_synthetic_png_decodes_to_eight_times_one_minus_v_over_255(tmp_path: Path) -> None:
    path = write_rgba_depth(tmp_path / "r_0_depth_0001.png", np.array([[0, 128], [255, 200]]))
    depth, valid = decode_depth(path, NS)
    assert depth.dtype == np.float32 and valid.dtype == bool and depth.shape == (2, 2)
    assert depth[0, 1] == pytest.approx(8 * (1 - 128 / 255), rel=1e-6)
    assert depth[1, 1] == pytest.approx(8 * (1 - 200 / 255), rel=1e-6)
    # v = 0 is background, v = 255 would be distance 0: both invalid, stored as 0.0
    assert valid.tolist() == [[False, True], [False, True]]
    assert depth[0, 0] == 0.0 and depth[1, 1] > 0 and depth[1, 0] == 0.0


def test_nerf_synthetic_png_accepts_grayscale_and_applies_scale(tmp_path: Path) -> None:
    path = tmp_path / "r_0_depth_0000.png"
    Image.fromarray(np.array([[100, 50]], dtype=np.uint8), mode="L").save(path)
    depth, valid = decode_depth(path, DepthEncoding("nerf-synthetic-png", "ray", scale=0.5))
    assert depth[0].tolist() == pytest.approx([0.5 * 8 * (1 - 100 / 255), 0.5 * 8 * (1 - 50 / 255)], rel=1e-6)
    assert valid.all()


def test_nerf_synthetic_png_with_differing_channels_uses_channel_0_and_only_warns(tmp_path: Path) -> None:
    path = tmp_path / "r_0_depth_0001.png"
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[..., 0] = [100, 120]
    rgb[..., 1] = [110, 120]
    rgb[..., 2] = [100, 121]
    Image.fromarray(rgb, mode="RGB").save(path)
    with pytest.warns(DepthFormatWarning, match="r_0_depth_0001.png"):
        depth, valid = decode_depth(path, NS)
    assert depth[0].tolist() == pytest.approx([8 * (1 - 100 / 255), 8 * (1 - 120 / 255)], rel=1e-6)
    assert valid.all()


def test_nerf_synthetic_png_with_identical_channels_does_not_warn(tmp_path: Path) -> None:
    path = write_rgba_depth(tmp_path / "r_0_depth_0001.png", np.array([[10, 20]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DepthFormatWarning)
        decode_depth(path, NS)


# --- decoding: 16-bit PNG ---------------------------------------------------------------------------------


def test_png16_decodes_millimetres_to_metres_by_default(tmp_path: Path) -> None:
    path = write_png16(tmp_path / "r_0_depth.png", np.array([[1500, 0], [65535, 1]]))
    assert detect_format(path) == "png16"
    depth, valid = decode_depth(path, resolve_encoding(path))
    np.testing.assert_allclose(depth, [[1500 * 0.001, 0.0], [65535 * 0.001, 1 * 0.001]], rtol=1e-6)
    assert valid.tolist() == [[True, False], [True, True]]


def test_png16_applies_custom_scale(tmp_path: Path) -> None:
    path = write_png16(tmp_path / "r_0_depth.png", np.array([[1500, 4000]]))
    depth, valid = decode_depth(path, DepthEncoding("png16", "z", scale=1 / 5000))
    assert depth[0].tolist() == pytest.approx([1500 / 5000, 4000 / 5000], rel=1e-6)
    assert valid.all()


# --- decoding: EXR ----------------------------------------------------------------------------------------


def test_exr_float32_z_channel_decodes_and_blender_background_is_invalid(tmp_path: Path) -> None:
    z = np.array([[1.25, 1e10], [3.5, 1e9]], dtype=np.float32)
    path = write_exr(tmp_path / "r_0_depth.exr", {"Z": z, "R": np.full_like(z, 7.0)})
    depth, valid = decode_depth(path, resolve_encoding(path))
    assert depth.tolist() == [[1.25, 0.0], [3.5, 0.0]]
    assert valid.tolist() == [[True, False], [True, False]]


def test_exr_multilayer_depth_channel_is_found_automatically(tmp_path: Path) -> None:
    z = np.array([[2.0, 4.0]], dtype=np.float32)
    channels = {
        "ViewLayer.Combined.R": np.full_like(z, 0.5),
        "ViewLayer.Combined.G": np.full_like(z, 0.5),
        "ViewLayer.Depth.Z": z,
    }
    path = write_exr(tmp_path / "r_0.depth.exr", channels)
    depth, valid = decode_depth(path, EXR)
    assert depth[0].tolist() == [2.0, 4.0] and valid.all()


def test_exr_rgb_uses_r_channel_and_explicit_channel_is_honoured(tmp_path: Path) -> None:
    r = np.array([[1.0, 2.0]], dtype=np.float32)
    path = write_exr(tmp_path / "r_0_depth.exr", {"R": r, "G": r * 10, "B": r * 100})
    assert decode_depth(path, EXR)[0][0].tolist() == [1.0, 2.0]
    assert decode_depth(path, DepthEncoding("exr", "z", exr_channel="G"))[0][0].tolist() == [10.0, 20.0]


def test_exr_half_float_decodes_and_half_max_is_invalid(tmp_path: Path) -> None:
    z = np.array([[1.5, 65504.0, np.inf]], dtype=np.float16)
    path = write_exr(tmp_path / "r_0_depth.exr", {"Z": z})
    depth, valid = decode_depth(path, DepthEncoding("exr", "z", scale=2.0))
    assert depth[0].tolist() == [1.5 * 2.0, 0.0, 0.0]
    assert valid[0].tolist() == [True, False, False]


def test_exr_missing_explicit_channel_is_an_error_listing_channels(tmp_path: Path) -> None:
    path = write_exr(tmp_path / "r_0_depth.exr", {"Z": np.ones((1, 1), np.float32)})
    with pytest.raises(DepthFileError, match=r"r_0_depth\.exr.*\"depth\.Z\" not found; channels: Z"):
        decode_depth(path, DepthEncoding("exr", "z", exr_channel="depth.Z"))


# --- decoding: npy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 2), (2, 2, 1)])
def test_npy_hw_and_hw1_decode_with_nan_inf_negative_invalid(tmp_path: Path, shape: tuple[int, ...]) -> None:
    arr = np.array([[1.5, np.nan], [-2.0, np.inf]], dtype=np.float32).reshape(shape)
    path = tmp_path / "r_0_depth.npy"
    np.save(path, arr)
    depth, valid = decode_depth(path, DepthEncoding("npy", "z", scale=3.0))
    assert depth.shape == (2, 2)
    assert depth.tolist() == [[1.5 * 3.0, 0.0], [0.0, 0.0]]
    assert valid.tolist() == [[True, False], [False, False]]


# --- finding files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["0000", "0001", "0186"])
def test_nerf_synthetic_depth_with_any_four_digit_suffix_is_found(tmp_path: Path, suffix: str) -> None:
    depth = touch(tmp_path / "test" / f"r_3_depth_{suffix}.png")
    touch(tmp_path / "test" / "r_33_depth_0001.png")  # another image's depth must not match
    assert find_depth_file(tmp_path / "test" / "r_3.png") == depth
    assert find_depth_file(tmp_path / "test" / "r_3") == depth  # NeRF-synthetic file_path has no suffix


def test_two_glob_matches_are_an_error_naming_both(tmp_path: Path) -> None:
    touch(tmp_path / "r_0_depth_0000.png")
    touch(tmp_path / "r_0_depth_0001.png")
    with pytest.raises(DepthFileError, match=r"r_0_depth_0000\.png.*r_0_depth_0001\.png.*keep only one"):
        find_depth_file(tmp_path / "r_0.png")


def test_no_depth_file_returns_none(tmp_path: Path) -> None:
    touch(tmp_path / "r_0.png")
    touch(tmp_path / "r_1_depth.exr")
    assert find_depth_file(tmp_path / "r_0.png") is None


def test_patterns_are_tried_in_order(tmp_path: Path) -> None:
    touch(tmp_path / "r_0_depth.npy")
    exr = touch(tmp_path / "r_0_depth.exr")
    assert DEPTH_FILE_PATTERNS.index("{stem}_depth.exr") < DEPTH_FILE_PATTERNS.index("{stem}_depth.npy")
    assert find_depth_file(tmp_path / "r_0.png") == exr


def test_depth_file_path_is_honoured_before_the_glob(tmp_path: Path) -> None:
    touch(tmp_path / "train" / "r_0_depth_0001.png")  # decoy that the glob would find
    target = touch(tmp_path / "depths" / "r_0.npy")
    image = tmp_path / "train" / "r_0.png"
    frame = {"file_path": "./train/r_0", "depth_file_path": "./depths/r_0.npy"}
    assert find_depth_file(image, frame, tmp_path) == target
    assert find_depth_file(image, {"depth_file_path": str(target)}) == target  # absolute, no data_dir needed


def test_missing_depth_file_path_target_is_an_error_naming_it(tmp_path: Path) -> None:
    touch(tmp_path / "train" / "r_0_depth_0001.png")
    frame = {"file_path": "./train/r_0", "depth_file_path": "./depths/r_0.npy"}
    with pytest.raises(DepthFileError, match=r"train/r_0\.png.*depths/r_0\.npy.*does not exist"):
        find_depth_file(tmp_path / "train" / "r_0.png", frame, tmp_path)


def test_describe_search_lists_depth_file_path_then_patterns(tmp_path: Path) -> None:
    text = describe_search(tmp_path / "test" / "r_0.png", {"depth_file_path": "d/r_0.exr"}, tmp_path)
    assert text.index(str(tmp_path / "d" / "r_0.exr")) < text.index("r_0_depth_[0-9][0-9][0-9][0-9].png")
    for pattern in DEPTH_FILE_PATTERNS:
        assert str(tmp_path / "test" / pattern.format(stem="r_0")) in text


# --- encoding resolution ----------------------------------------------------------------------------------


def test_detection_gives_the_default_encoding_per_format(tmp_path: Path) -> None:
    ns = write_rgba_depth(tmp_path / "r_0_depth_0001.png", np.array([[1]]))
    exr = write_exr(tmp_path / "r_0_depth.exr", {"Z": np.ones((1, 1), np.float32)})
    npy = tmp_path / "r_0_depth.npy"
    np.save(npy, np.ones((1, 1), np.float32))
    assert resolve_encoding(ns) == DepthEncoding("nerf-synthetic-png", "ray", 1.0)
    assert resolve_encoding(exr) == DepthEncoding("exr", "z", 1.0)
    assert resolve_encoding(npy) == DepthEncoding("npy", "z", 1.0)


def test_json_keys_override_detection(tmp_path: Path) -> None:
    path = write_png16(tmp_path / "r_0_depth.png", np.array([[1000]]))
    meta = {"depth_type": "ray", "depth_scale": 1e-4}
    assert resolve_encoding(path, meta) == DepthEncoding("png16", "ray", 1e-4)
    exr = write_exr(tmp_path / "r_0_depth.exr", {"Z": np.ones((1, 1), np.float32)})
    assert resolve_encoding(exr, {"depth_exr_channel": "V"}).exr_channel == "V"


def test_json_depth_format_skips_detection_of_ambiguous_png(tmp_path: Path) -> None:
    path = write_rgba_depth(tmp_path / "r_0_depth.png", np.array([[128]]))  # 8-bit without NNNN suffix
    enc = resolve_encoding(path, {"depth_format": "nerf-synthetic-png"})
    assert enc == DEFAULT_ENCODINGS["nerf-synthetic-png"]
    assert decode_depth(path, enc)[0][0, 0] == pytest.approx(8 * (1 - 128 / 255), rel=1e-6)


def test_override_beats_json_keys_field_by_field(tmp_path: Path) -> None:
    path = write_png16(tmp_path / "r_0_depth.png", np.array([[1000]]))
    meta = {"depth_type": "ray", "depth_scale": 1e-4}
    enc = resolve_encoding(path, meta, DepthEncodingOverride(scale=0.01))
    assert enc == DepthEncoding("png16", "ray", 0.01)  # scale from override, type from json
    full = DepthEncoding("png16", "z", 0.5)
    assert resolve_encoding(path, meta, full) is full


def test_override_format_picks_that_formats_defaults(tmp_path: Path) -> None:
    path = write_rgba_depth(tmp_path / "r_0_depth_0001.png", np.array([[1]]))
    enc = resolve_encoding(path, {"depth_format": "npy"}, DepthEncodingOverride(format="png16"))
    assert enc == DEFAULT_ENCODINGS["png16"]


def test_bad_json_format_is_an_error_naming_source_and_allowed_values(tmp_path: Path) -> None:
    path = tmp_path / "r_0_depth.npy"
    with pytest.raises(DepthFileError) as info:
        resolve_encoding(path, {"depth_format": "foo"}, meta_source="transforms_train.json")
    msg = str(info.value)
    assert 'transforms_train.json: depth_format "foo"' in msg
    for allowed in ("nerf-synthetic-png", "png16", "exr", "npy"):
        assert allowed in msg


@pytest.mark.parametrize(
    ("meta", "override", "needle"),
    [
        ({"depth_type": "planar"}, None, r'depth_type "planar".*allowed values: z, ray'),
        ({"depth_scale": -1.0}, None, r"depth_scale -1\.0.*finite number > 0"),
        ({"depth_scale": "0.001"}, None, r'depth_scale "0\.001".*finite number > 0'),
        ({}, DepthEncodingOverride(depth_type="Z"), r'config override: depth type "Z".*allowed values: z, ray'),
        ({}, DepthEncodingOverride(format="png"), r'config override: depth format "png".*allowed values'),
    ],
)
def test_bad_encoding_values_are_errors_with_allowed_values(
    tmp_path: Path, meta: dict, override: DepthEncodingOverride | None, needle: str
) -> None:
    path = tmp_path / "r_0_depth.npy"
    with pytest.raises(DepthFileError, match=needle):
        resolve_encoding(path, meta, override)


def test_depth_encoding_rejects_invalid_fields() -> None:
    with pytest.raises(ValueError, match="z, ray"):
        DepthEncoding("npy", "Z")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="> 0"):
        DepthEncoding("npy", "z", scale=math.nan)


# --- bad inputs -------------------------------------------------------------------------------------------


def test_another_aspect_ratio_is_an_error_with_found_and_expected_size(tmp_path: Path) -> None:
    path = write_rgba_depth(tmp_path / "r_0_depth_0001.png", np.ones((2, 3)))
    with pytest.raises(DepthFileError, match=r"r_0_depth_0001\.png is 2x3 .* image is 4x4: the aspect ratios differ"):
        decode_depth(path, NS, expected_hw=(4, 4))
    assert decode_depth(path, NS, expected_hw=(2, 3))[0].shape == (2, 3)
    assert decode_depth(path, NS, expected_hw=(4, 6))[0].shape == (2, 3)  # same aspect: returned as it is


def test_truncated_png_is_an_error_suggesting_re_export(tmp_path: Path) -> None:
    good = write_png16(tmp_path / "good_depth.png", np.arange(64 * 64).reshape(64, 64) % 65536)
    data = good.read_bytes()
    bad = tmp_path / "r_0_depth.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DepthFileError, match=r"r_0_depth\.png.*re-export it, or remove it"):
        decode_depth(bad, PNG16)


def test_png_with_garbage_content_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "r_0_depth_0001.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(DepthFileError, match=r"r_0_depth_0001\.png is not a valid PNG.*re-export"):
        detect_format(bad)
    with pytest.raises(DepthFileError, match=r"r_0_depth_0001\.png is not a valid PNG"):
        decode_depth(bad, NS)


def test_garbage_exr_is_an_error_suggesting_re_export(tmp_path: Path) -> None:
    bad = tmp_path / "r_0_depth.exr"
    bad.write_bytes(b"garbage" * 20)
    with pytest.raises(DepthFileError, match=r"r_0_depth\.exr is not an OpenEXR file.*re-export"):
        decode_depth(bad, EXR)


def test_truncated_exr_is_an_error(tmp_path: Path) -> None:
    good = write_exr(tmp_path / "good.exr", {"Z": np.ones((32, 32), np.float32)})
    bad = tmp_path / "r_0_depth.exr"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(DepthFileError, match=r"r_0_depth\.exr.*re-export it, or remove it"):
        decode_depth(bad, EXR)


def test_unknown_suffix_is_an_error_listing_supported_formats(tmp_path: Path) -> None:
    path = touch(tmp_path / "r_0_depth.tiff")
    with pytest.raises(DepthFileError, match=r"r_0_depth\.tiff.*\.tiff.*nerf-synthetic-png.*png16.*exr.*npy"):
        detect_format(path)


def test_8bit_png_without_nerf_synthetic_naming_is_an_error(tmp_path: Path) -> None:
    path = write_rgba_depth(tmp_path / "r_0_depth.png", np.array([[100]]))
    with pytest.raises(
        DepthFileError,
        match=r"r_0_depth\.png: 8-bit depth PNG but not NeRF-synthetic naming.*"
        r"set the encoding explicitly",
    ):
        resolve_encoding(path)


def test_png16_read_as_nerf_synthetic_is_an_error(tmp_path: Path) -> None:
    path = write_png16(tmp_path / "r_0_depth_0001.png", np.array([[1000]]))
    assert detect_format(path) == "png16"  # content wins over the NeRF-synthetic name
    with pytest.raises(DepthFileError, match=r"r_0_depth_0001\.png.*16-bit.*png16"):
        decode_depth(path, NS)


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.ones((2, 2, 3), np.float32), r"shape \(2, 2, 3\)"),
        (np.ones((2, 2), np.int32), "int32"),
        (np.array([["1.0", "2.0"]]), "<U3"),
        (np.ones(4, np.float32), r"shape \(4,\)"),
    ],
)
def test_npy_with_wrong_shape_or_dtype_is_an_error(tmp_path: Path, array: np.ndarray, needle: str) -> None:
    path = tmp_path / "r_0_depth.npy"
    np.save(path, array)
    with pytest.raises(DepthFileError, match=rf"r_0_depth\.npy.*{needle}.*HxW or HxWx1"):
        decode_depth(path, NPY)


def test_corrupt_npy_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r_0_depth.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DepthFileError, match=r"r_0_depth\.npy.*re-export it, or remove it"):
        decode_depth(path, NPY)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DepthFileError, match=r"r_9_depth\.npy does not exist"):
        decode_depth(tmp_path / "r_9_depth.npy", NPY)


# --- real data --------------------------------------------------------------------------------------------


def test_real_lego_depth_is_found_detected_and_decodes_inside_the_object_range() -> None:
    if not LEGO_DIR.is_dir():
        pytest.skip(f"real lego scene not present at {LEGO_DIR}")
    image = LEGO_DIR / "test" / "r_0.png"
    path = find_depth_file(image, {"file_path": "./test/r_0"}, LEGO_DIR)
    assert path == LEGO_DIR / "test" / "r_0_depth_0001.png"
    assert detect_format(path) == "nerf-synthetic-png"
    encoding = resolve_encoding(path)
    assert encoding.depth_type == "ray" and encoding.scale == 1.0
    depth, valid = decode_depth(path, encoding, expected_hw=(200, 200))
    assert depth.shape == (200, 200)
    alpha = np.asarray(Image.open(image).convert("RGBA"))[..., 3]
    opaque = alpha == 255
    assert valid[opaque].mean() > 0.99
    inside = depth[opaque & valid]
    assert inside.min() >= 2.5 and inside.max() <= 5.5
    assert (depth[~valid] == 0).all()
