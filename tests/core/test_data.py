"""Depth in training batches (``depth_strategies.core.data``): every sampled pixel carries exactly the depth and state
of its depth map, as distance along the ray, resized without interpolation, scaled like the poses; bad inputs
stop at start-up with a message that names the file and a fix."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

from depth_strategies.core import depth_io
from depth_strategies.core.data import DEPTH_KEY, STATE_KEY, DepthDataset, DepthState, MissingDepthError
from depth_strategies.core.depth_io import DepthFileError, read_exr
from depth_strategies.core.training import TrainingLoop
from depth_strategies.scenes.builtin import make_scene, write_depth_exr
from depth_strategies.scenes.render import camera_rays, focal_from_width, trace
from depth_strategies.scenes.split import split_scene
from tests.conftest import run_cli, tiny_config, tiny_flags

UNKNOWN, SURFACE, EMPTY = int(DepthState.UNKNOWN), int(DepthState.SURFACE), int(DepthState.EMPTY)
NEAR, FAR = 2.0, 6.0  # the default depth_range (Blender units)


# ---------------------------------------------------------------------------------------------------- helpers
def quiet_setup(cfg, test_mode: str = "val"):
    """The datamanager of ``cfg`` (nerfstudio's set-up chatter and warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cfg.pipeline.datamanager.setup(device="cpu", test_mode=test_mode)


def exr_of(image: Path) -> Path:
    """Depth file that ds-make-scene writes next to an image."""
    return image.with_name(f"{image.stem}_depth.exr")


def generated_truth(image: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Independent ground truth of one generated view: (ray distance 0 unless SURFACE, state), [H, W]."""
    alpha = np.asarray(Image.open(image))[..., 3]
    height, width = alpha.shape
    z = read_exr(exr_of(image), "Z").astype(np.float64)
    _, _, norm = camera_rays(np.eye(4), width, height, focal_from_width(width))
    ray = z * norm.reshape(height, width)
    surface = (alpha == 255) & (z > 0) & (ray >= NEAR) & (ray <= FAR)
    state = np.full(alpha.shape, UNKNOWN)
    state[surface] = SURFACE
    state[alpha == 0] = EMPTY
    return np.where(surface, ray, 0.0), state


def lego_truth(image: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Independent ground truth of one lego test view from its raw depth PNG (docs/captures.md, "Depth formats")."""
    alpha = np.asarray(Image.open(image))[..., 3]
    v = np.asarray(Image.open(image.with_name(f"{image.stem}_depth_0001.png")))[..., 0].astype(np.float64)
    ray = 8.0 * (1.0 - v / 255.0)
    surface = (alpha == 255) & (v > 0) & (ray >= NEAR) & (ray <= FAR)
    state = np.full(alpha.shape, UNKNOWN)
    state[surface] = SURFACE
    state[alpha == 0] = EMPTY
    return np.where(surface, ray, 0.0), state


def check_batches_against_truth(dm, truth_of, steps: int = 4) -> Dict[int, int]:
    """For several training batches, every sampled pixel's depth/state equals the truth at (camera, y, x)."""
    truth: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    seen = {UNKNOWN: 0, SURFACE: 0, EMPTY: 0}
    for step in range(steps):
        ray_bundle, batch = dm.next_train(step)
        indices = batch["indices"].numpy()
        depth, state = batch[DEPTH_KEY].numpy()[:, 0], batch[STATE_KEY].numpy()[:, 0]
        assert batch[STATE_KEY].dtype == torch.uint8
        for n, (c, y, x) in enumerate(indices):
            if c not in truth:
                truth[c] = truth_of(Path(dm.train_dataset.image_filenames[c]))
            exp_depth, exp_state = truth[c][0][y, x], truth[c][1][y, x]
            assert state[n] == exp_state, f"step {step}, camera {c}, pixel ({y}, {x}): state {state[n]} != {exp_state}"
            assert abs(depth[n] - exp_depth) <= 1e-5, (
                f"step {step}, camera {c}, pixel ({y}, {x}): {depth[n]} != {exp_depth}"
            )
            seen[int(state[n])] += 1
        assert torch.equal(ray_bundle.metadata[DEPTH_KEY], batch[DEPTH_KEY])
        assert torch.equal(ray_bundle.metadata[STATE_KEY], batch[STATE_KEY])
    return seen


def reprojection_errors(
    dataset,
    depth_i: np.ndarray,
    ok_i: np.ndarray,
    i: int,
    depth_j: np.ndarray,
    ok_j: np.ndarray,
    j: int,
    visible=None,
) -> np.ndarray:
    """Distance from camera j to the back-projected points of view i minus view j's depth there (bilinear).

    ``depth_*`` are ray distances [H, W] (or what is used as such), ``ok_*`` the pixels to use. Points are
    back-projected with nerfstudio's own rays of camera i, projected with the OpenGL convention (camera looks down
    -z, +y up, pixel centres at +0.5) into camera j; only points whose 4 bilinear neighbours are ``ok_j`` and lie
    on one surface are kept, and ``visible(camera_centre, points, distances)`` (when given) filters occlusion.
    """
    cams = dataset.cameras
    rays = cams.generate_rays(camera_indices=i)
    origins = rays.origins.reshape(-1, 3).double().numpy()
    directions = rays.directions.reshape(-1, 3).double().numpy()
    sel = ok_i.reshape(-1)
    points = origins[sel] + directions[sel] * depth_i.reshape(-1)[sel, None]

    c2w = cams.camera_to_worlds[j].double().numpy()
    rot, centre = c2w[:3, :3], c2w[:3, 3]
    fx, fy, cx, cy = (float(getattr(cams, k)[j]) for k in ("fx", "fy", "cx", "cy"))
    local = (points - centre) @ rot
    zc = -local[:, 2]
    s = fx * local[:, 0] / np.maximum(zc, 1e-9) + cx - 0.5  # continuous pixel index (centre of pixel k at k)
    r = cy - fy * local[:, 1] / np.maximum(zc, 1e-9) - 0.5
    height, width = depth_j.shape
    x0, y0 = np.floor(s).astype(int), np.floor(r).astype(int)
    inside = (zc > 0) & (x0 >= 0) & (y0 >= 0) & (x0 + 1 < width) & (y0 + 1 < height)
    points, s, r, x0, y0 = points[inside], s[inside], r[inside], x0[inside], y0[inside]
    corners = [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)]
    values = np.stack([depth_j[c] for c in corners])
    good = np.stack([ok_j[c] for c in corners]).all(axis=0)
    footprint = values.mean(axis=0) / fx
    good &= values.max(axis=0) - values.min(axis=0) < 4 * footprint  # not across a depth edge
    wx, wy = s - x0, r - y0
    interp = (
        values[0] * (1 - wx) * (1 - wy) + values[1] * wx * (1 - wy) + values[2] * (1 - wx) * wy + values[3] * wx * wy
    )
    distance = np.linalg.norm(points - centre, axis=1)
    if visible is not None:
        good &= visible(centre, points, distance)
    return (distance - interp)[good]


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_dm(tiny_scene):
    """depth-soft's datamanager on the tiny scene (train + val)."""
    return quiet_setup(tiny_config("depth-soft", tiny_scene))


@pytest.fixture(scope="module")
def scene64(tmp_path_factory) -> Path:
    """A 64x64 generated scene with partial alpha at silhouettes (supersampled), 3 train views."""
    return make_scene(
        tmp_path_factory.mktemp("scene64") / "s",
        resolution=64,
        views_train=3,
        views_val=1,
        views_test=1,
        seed=3,
        supersample=2,
    )


@pytest.fixture(scope="module")
def lego10(lego_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lego") / "lego10"
    split_scene(lego_dir, out, n_train=4, n_val=1, n_test=2)
    return out


def remove_depth(scene: Path, split: str, indices=None) -> None:
    for f in sorted((scene / split).glob("r_*_depth.exr")):
        if indices is None or int(f.name.split("_")[1]) in indices:
            f.unlink()


# ---------------------------------------------------------------------------------------------------- 1, 2
def test_every_sampled_pixel_carries_the_depth_and_state_of_its_own_depth_map_pixel(tiny_dm):
    seen = check_batches_against_truth(tiny_dm, generated_truth, steps=5)
    assert seen[SURFACE] > 100 and seen[EMPTY] > 100, seen


def test_every_sampled_lego_pixel_carries_its_decoded_nerf_synthetic_depth_and_alpha_state(lego10):
    dm = quiet_setup(tiny_config("depth-soft", lego10))
    assert len(dm.train_dataset) == 4
    seen = check_batches_against_truth(dm, lego_truth, steps=6)
    assert min(seen.values()) > 0, seen  # all three states were checked


def test_evaluation_rays_carry_no_ground_truth(tiny_dm):
    ray_bundle, batch = tiny_dm.next_eval(0)
    assert DEPTH_KEY in batch  # for metrics
    assert DEPTH_KEY not in (ray_bundle.metadata or {}) and STATE_KEY not in (ray_bundle.metadata or {})


# ---------------------------------------------------------------------------------------------------- 3, 4
def test_ray_distance_from_z_depth_reprojects_between_generated_views(scene64):
    ds = quiet_setup(tiny_config("depth-soft", scene64)).train_dataset
    depths, states = ds.depths[..., 0].double().numpy(), ds.states[..., 0].numpy()
    raw_z = [read_exr(exr_of(Path(f)), "Z").astype(np.float64) for f in ds.image_filenames]

    def visible(centre, points, distance):  # occlusion from the analytic scene itself
        hit, _, _ = trace(centre[None], points - centre)
        return hit > distance - 1e-3

    converted, unconverted = [], []
    for i, j in [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)]:
        ok_i, ok_j = states[i] == SURFACE, states[j] == SURFACE
        converted.append(np.abs(reprojection_errors(ds, depths[i], ok_i, i, depths[j], ok_j, j, visible)))
        unconverted.append(np.abs(reprojection_errors(ds, raw_z[i], ok_i, i, raw_z[j], ok_j, j, visible)))
    conv, raw = np.concatenate(converted), np.concatenate(unconverted)
    footprint = float(np.median(depths[states == SURFACE])) / float(ds.cameras.fx[0])
    print(
        f"\ngenerated 64px: median reprojection error {np.median(conv):.2e} (ray distance), "
        f"{np.median(raw):.2e} (z read as ray distance), texel footprint {footprint:.2e}, {conv.size} points"
    )
    assert conv.size > 500
    assert np.median(conv) < 0.1 * footprint
    assert np.median(raw) > 0.5 * footprint and np.median(raw) > 5 * np.median(conv)


def test_decoded_lego_depth_reprojects_between_nearby_views_within_a_quantisation_step(lego_dir, tmp_path):
    out = tmp_path / "lego_all"
    split_scene(lego_dir, out, n_train=None, n_val=1, n_test=1)  # train = the 100 even test views, in order
    ds = quiet_setup(tiny_config("depth-soft", out)).train_dataset
    sources = [f["source_index"] for f in json.loads((out / "transforms_train.json").read_text())["frames"]]
    depths, states = ds.depths[..., 0].double().numpy(), ds.states[..., 0].numpy()

    def eroded(mask):  # alpha == 255 (and depth) with its 1-px border removed: no silhouette pixels
        padded = np.pad(mask, 1, constant_values=False)
        return np.all(
            [
                padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ],
            axis=0,
        )

    width = depths.shape[2]
    _, _, norms = camera_rays(np.eye(4), width, width, float(ds.cameras.fx[0]))
    norms = norms.reshape(width, width)
    medians, as_z_medians, wider = {}, {}, [(30, 35), (70, 75), (90, 95)]  # wider: 18 degrees apart
    for i, j in [(0, 1), (1, 0), (10, 12), (25, 27), (50, 53), *wider]:
        ok_i, ok_j = eroded(states[i] == SURFACE), eroded(states[j] == SURFACE)
        residual = reprojection_errors(ds, depths[i], ok_i, i, depths[j], ok_j, j)
        # Occlusion check: where view j sees a surface clearly nearer (> 3 quantisation steps) than the point,
        # the point is hidden in view j and says nothing about the encoding.
        err = np.abs(residual[residual < 0.1])
        assert err.size > 1000
        medians[(sources[i], sources[j])] = float(np.median(err))
        # The other reading of the PNG (z-depth, converted to ray distance) fits worse once views differ enough.
        as_z = [d * norms for d in (depths[i], depths[j])]
        residual = reprojection_errors(ds, as_z[0], ok_i, i, as_z[1], ok_j, j)
        as_z_medians[(i, j)] = float(np.median(np.abs(residual[residual < 0.1])))
    print(
        "\nlego median reprojection errors (units) per pair of test views:",
        ", ".join(f"r_{a}->r_{b}: {m:.4f}" for (a, b), m in medians.items()),
        f"; overall median {np.median(list(medians.values())):.4f}"
        f"; the 18-degree pairs read as z-depth instead: {', '.join(f'{as_z_medians[p]:.4f}' for p in wider)}",
    )
    assert all(m < 0.05 for m in medians.values()), medians
    ray_wide = np.median([medians[(sources[i], sources[j])] for i, j in wider])
    assert np.median([as_z_medians[p] for p in wider]) > 1.5 * ray_wide


# ---------------------------------------------------------------------------------------------------- 5, 6
def test_downscaled_depth_picks_one_full_resolution_value_and_partial_alpha_is_unknown(scene64):
    cfg = tiny_config("depth-soft", scene64, **{"pipeline.datamanager.camera_res_scale_factor": 0.5})
    ds = quiet_setup(cfg).train_dataset
    assert tuple(ds.depths.shape) == (3, 32, 32, 1) and tuple(ds.states.shape) == (3, 32, 32, 1)
    blended_blocks = 0
    for i, name in enumerate(ds.image_filenames):
        full, _ = generated_truth(Path(name))  # ray distance at 64x64 (0 unless SURFACE)
        z = read_exr(exr_of(Path(name)), "Z")
        _, _, norm = camera_rays(np.eye(4), 64, 64, focal_from_width(64))
        full = z.astype(np.float64) * norm.reshape(64, 64)  # every full-resolution ray distance
        blocks = full.reshape(32, 2, 32, 2).transpose(0, 2, 1, 3).reshape(32, 32, 4)
        small, state = ds.depths[i, ..., 0].double().numpy(), ds.states[i, ..., 0].numpy()
        surface = state == SURFACE
        assert surface.sum() > 100
        nearest = np.abs(blocks - small[..., None]).min(axis=-1)
        assert nearest[surface].max() < 1e-5, "a SURFACE depth is not one of its 2x2 block's values"
        spread = blocks.max(axis=-1) - blocks.min(axis=-1)
        blended_blocks += int((surface & (spread > 1e-3)).sum())  # blocks where a blend would show
        alpha_small = ds.get_numpy_image(i)[..., 3]  # the alpha nerfstudio trains on at this size
        partial = (alpha_small > 0) & (alpha_small < 255)
        assert partial.sum() > 20
        assert not (surface & (alpha_small < 255)).any(), "SURFACE where the downscaled alpha is not opaque"
        assert (state[partial] == UNKNOWN).all(), "a partly covered ray is neither a known surface nor empty"
        assert ((state == EMPTY) == (alpha_small == 0)).all()
        assert (small[~surface] == 0).all()
    assert blended_blocks > 100


def test_dataparser_scale_factor_scales_depth_like_the_poses(tiny_scene, tiny_dm):
    half = quiet_setup(tiny_config("depth-soft", tiny_scene, **{"pipeline.datamanager.dataparser.scale_factor": 0.5}))
    assert half.train_dataset.metadata["dataparser_scale"] == 0.5
    assert torch.equal(half.train_dataset.states, tiny_dm.train_dataset.states)
    torch.testing.assert_close(half.train_dataset.depths, 0.5 * tiny_dm.train_dataset.depths, rtol=1e-6, atol=0)
    # Camera centres are halved too, so a ray distance stays consistent with the poses.
    torch.testing.assert_close(
        half.train_dataset.cameras.camera_to_worlds[:, :, 3],
        0.5 * tiny_dm.train_dataset.cameras.camera_to_worlds[:, :, 3],
    )
    ray_bundle, batch = half.next_train(0)
    c, y, x = batch["indices"].T
    torch.testing.assert_close(
        batch[DEPTH_KEY][:, 0], 0.5 * tiny_dm.train_dataset.depths[c, y, x, 0], rtol=1e-6, atol=0
    )


# ---------------------------------------------------------------------------------------------------- 7
def test_missing_depth_file_for_a_depth_method_names_split_image_and_search(scene_copy):
    remove_depth(scene_copy, "train", {3})
    with pytest.raises(MissingDepthError) as info:
        quiet_setup(tiny_config("depth-soft", scene_copy))
    msg = str(info.value)
    assert "'train' split" in msg
    assert str(scene_copy / "train" / "r_3.png") in msg
    assert str(scene_copy / "train" / "r_3_depth.exr") in msg  # the depth_file_path looked for
    assert "r_3_depth_[0-9][0-9][0-9][0-9].png" in msg and "r_3_depth.npy" in msg  # the patterns looked for
    assert "depth-baseline" in msg  # a fix


def test_baseline_never_reads_training_depth(scene_copy, tmp_path):
    remove_depth(scene_copy, "train", {3})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timer = TrainingLoop(tiny_config("depth-baseline", scene_copy), "cpu")
        assert not timer.pipeline.datamanager.train_dataset.has_depth
        assert np.isfinite(timer.run(2))
    # All training depth maps deleted, or all corrupt: still builds (they are never opened).
    deleted = Path(shutil.copytree(scene_copy, tmp_path / "deleted"))
    remove_depth(deleted, "train")
    assert not quiet_setup(tiny_config("depth-baseline", deleted)).train_dataset.has_depth
    for i in range(6):  # every training depth map (the deleted one included) is garbage
        (scene_copy / "train" / f"r_{i}_depth.exr").write_bytes(b"not an exr")
    assert not quiet_setup(tiny_config("depth-baseline", scene_copy)).train_dataset.has_depth


def test_depth_map_of_another_aspect_ratio_is_an_error_naming_file_and_sizes(scene_copy):
    bad = scene_copy / "train" / "r_1_depth.exr"
    write_depth_exr(bad, np.full((16, 8), 4.0, np.float32))
    with pytest.raises(DepthFileError) as info:
        quiet_setup(tiny_config("depth-soft", scene_copy))
    msg = str(info.value)
    assert str(bad) in msg and "16x8" in msg and "32x32" in msg and "aspect ratios differ" in msg


def test_upsampling_low_resolution_depth_picks_values_and_marks_edges_and_hole_rims_unknown():
    from depth_strategies.core.data import upsample_depth

    depth = np.array([[2.0, 2.0, 4.0], [2.0, 2.02, 4.0]])
    valid = np.array([[True, True, True], [True, True, False]])
    up, keep = upsample_depth(depth, valid, 4, 6, relative_jump=0.05)
    np.testing.assert_allclose(up[::2, ::2], depth, rtol=1e-7)  # each image pixel picks, no blending
    assert np.isin(up, depth.astype(np.float32)).all()
    # kept: the 2.0 / 2.02 pixels not next to the 2 -> 4 jump (2 % < 5 %); column 1 touches it, column 2 too
    np.testing.assert_array_equal(keep[::2, ::2], [[True, False, False], [True, False, False]])
    assert keep.shape == (4, 6) and keep[:, :2].all() and not keep[:, 2:].any()


def test_a_lower_resolution_depth_map_reaches_the_batches_picked_with_its_edges_unknown(scene_copy):
    image = scene_copy / "train" / "r_1.png"
    exact, exact_state = generated_truth(image)
    z = read_exr(exr_of(image), "Z")
    write_depth_exr(exr_of(image), np.ascontiguousarray(z[::2, ::2]))  # 16x16: what a 2x coarser sensor measures
    ds = quiet_setup(tiny_config("depth-soft", scene_copy)).train_dataset
    index = [Path(f).name for f in ds.image_filenames].index("r_1.png")
    state = ds.states[index, ..., 0].numpy()
    depth = ds.depths[index, ..., 0].numpy() / ds.metadata["dataparser_scale"]
    surface = state == SURFACE
    assert surface.sum() >= 40  # of 375: at 16x16 most object pixels touch the silhouette or a depth jump
    assert not np.any(surface & (exact_state != SURFACE))  # never a surface where the image shows none
    # each kept pixel's z is the one of the depth pixel under it (ray distance uses the image pixel's direction)
    _, _, norm = camera_rays(np.eye(4), 32, 32, focal_from_width(32))
    picked = np.repeat(np.repeat(z[::2, ::2], 2, axis=0), 2, axis=1) * norm.reshape(32, 32)
    np.testing.assert_allclose(depth[surface], picked[surface], rtol=1e-5)
    relative = np.abs(depth[surface] - exact[surface]) / exact[surface]
    assert np.median(relative) < 0.01  # most picked values are within 1 % (the 2x coarser sensor misses thin steps)


def test_nan_inf_and_negative_depth_pixels_become_unknown_and_the_rest_is_unchanged(scene_copy, tiny_dm):
    target = scene_copy / "train" / "r_0_depth.exr"
    z = read_exr(target, "Z").copy()
    ys, xs = np.nonzero(tiny_dm.train_dataset.states[0, ..., 0].numpy() == SURFACE)
    bad = [(ys[k], xs[k]) for k in (0, 10, 20, 30)]
    for (y, x), value in zip(bad, [np.nan, np.inf, -1.0, -np.inf]):
        z[y, x] = value
    write_depth_exr(target, z)
    dm = quiet_setup(tiny_config("depth-soft", scene_copy))  # no error
    states, depths = dm.train_dataset.states.clone(), dm.train_dataset.depths.clone()
    for y, x in bad:
        assert states[0, y, x, 0] == UNKNOWN and depths[0, y, x, 0] == 0
        states[0, y, x, 0] = SURFACE
        depths[0, y, x, 0] = tiny_dm.train_dataset.depths[0, y, x, 0]
    assert torch.equal(states, tiny_dm.train_dataset.states)
    assert torch.equal(depths, tiny_dm.train_dataset.depths)


def test_truncated_depth_file_is_an_error_naming_it(scene_copy):
    bad = scene_copy / "train" / "r_2_depth.exr"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DepthFileError) as info:
        quiet_setup(tiny_config("depth-soft", scene_copy))
    msg = str(info.value)
    assert str(bad) in msg and "corrupt or truncated" in msg and "re-export" in msg


def test_unknown_depth_format_in_the_json_is_an_error_naming_json_and_allowed_values(scene_copy):
    transforms = scene_copy / "transforms_train.json"
    meta = json.loads(transforms.read_text())
    meta["depth_format"] = "foo"
    transforms.write_text(json.dumps(meta))
    with pytest.raises(DepthFileError) as info:
        quiet_setup(tiny_config("depth-soft", scene_copy))
    msg = str(info.value)
    assert "transforms_train.json" in msg and '"foo"' in msg
    assert all(f in msg for f in depth_io.DEPTH_FORMATS)


@pytest.mark.parametrize("keep_json_keys", [True, False], ids=["files-deleted", "files-and-json-keys-deleted"])
def test_eval_split_without_depth_reports_rgb_metrics_and_skips_depth_metrics(scene_copy, keep_json_keys):
    remove_depth(scene_copy, "test")
    if not keep_json_keys:
        transforms = scene_copy / "transforms_test.json"
        meta = json.loads(transforms.read_text())
        for frame in meta["frames"]:
            del frame["depth_file_path"]
        transforms.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="No depth maps found for the 'test' split"):
        pipeline = tiny_config("depth-soft", scene_copy).pipeline.setup(device="cpu", test_mode="test")
    assert not pipeline.datamanager.eval_dataset.has_depth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics, _ = pipeline.get_eval_image_metrics_and_images(step=0)
    assert "psnr" in metrics and np.isfinite(metrics["psnr"])
    assert not any(k.startswith("depth_") for k in metrics), metrics


def test_eval_split_with_depth_reports_depth_metrics(tiny_scene):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = tiny_config("depth-soft", tiny_scene).pipeline.setup(device="cpu", test_mode="test")
        metrics, _ = pipeline.get_eval_image_metrics_and_images(step=0)
    assert "psnr" in metrics and "depth_l1" in metrics and np.isfinite(metrics["depth_l1"])


def test_missing_eval_depth_never_falls_back_to_zoedepth(scene_copy, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("torch.hub.load was called: nerfstudio's ZoeDepth fallback was reached")

    monkeypatch.setattr(torch.hub, "load", no_hub)
    remove_depth(scene_copy, "test")
    dm = quiet_setup(tiny_config("depth-soft", scene_copy), test_mode="test")
    assert isinstance(dm.train_dataset, DepthDataset) and isinstance(dm.eval_dataset, DepthDataset)
    assert dm.train_dataset.has_depth and not dm.eval_dataset.has_depth
    camera, batch = dm.next_eval_image(0)
    assert DEPTH_KEY not in batch


# ---------------------------------------------------------------------------------------------------- 8
def test_ns_train_with_a_missing_training_depth_map_exits_with_a_message_naming_it(scene_copy, tmp_path):
    remove_depth(scene_copy, "train", {3})
    proc = run_cli(
        [
            "ns-train",
            "depth-soft",
            "--max-num-iterations",
            "2",
            "--vis",
            "tensorboard",
            "--output-dir",
            str(tmp_path / "out"),
            *tiny_flags(),
            "blender-data",
            "--data",
            str(scene_copy),
        ],
        cwd=tmp_path,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "r_3.png" in output and "depth" in output, output[-3000:]


# ---------------------------------------------------------------------------------------------------- degradations
def test_degradations_change_the_training_depth_only_exactly_as_the_pure_function_does(tiny_scene):
    from depth_strategies.core.data import SIGMA_KEY
    from depth_strategies.core.degradation import degrade, parse_degradation

    specs = ("noise(b=0.02)", "sparse(lines=8)")
    exact = quiet_setup(tiny_config("depth-soft", tiny_scene))
    dm = quiet_setup(tiny_config("depth-soft", tiny_scene, **{
        "pipeline.datamanager.depth_degradations": specs, "pipeline.datamanager.degradation_seed": 7}))
    scale = float(dm.train_dataset.metadata["dataparser_scale"])
    for i in range(len(dm.train_dataset)):
        depth = exact.train_dataset.depths[i, ..., 0].double().numpy() / scale
        state = exact.train_dataset.states[i, ..., 0].numpy()
        want_depth, want_state, want_sigma = degrade(depth, state, [parse_degradation(s) for s in specs], 7, i)
        np.testing.assert_array_equal(dm.train_dataset.states[i, ..., 0].numpy(), want_state)
        np.testing.assert_allclose(dm.train_dataset.depths[i, ..., 0].numpy() / scale, want_depth, rtol=1e-5)
        np.testing.assert_allclose(dm.train_dataset.sigmas[i, ..., 0].numpy() / scale, want_sigma, rtol=1e-5)
        rows = np.flatnonzero((want_state == SURFACE).any(axis=1))
        assert 0 < len(rows) <= 8  # scanlines that cross the object
    # the evaluation split keeps the exact depth and reports no sigma
    assert dm.eval_dataset.sigmas is None
    np.testing.assert_array_equal(dm.eval_dataset.depths.numpy(), exact.eval_dataset.depths.numpy())
    # training batches and rays carry the sigma of their pixels
    ray_bundle, batch = dm.next_train(0)
    c, y, x = batch["indices"][0].tolist()
    assert batch[SIGMA_KEY][0, 0] == dm.train_dataset.sigmas[c, y, x, 0]
    assert torch.equal(ray_bundle.metadata[SIGMA_KEY], batch[SIGMA_KEY])


def test_the_training_split_measures_each_images_multi_view_consistency_from_its_loaded_depth(tiny_scene):
    from depth_strategies.core.consistency import consistency_sigma
    from depth_strategies.core.data import CONSISTENCY_KEY

    mono = ("monocular(scale_lo=0.5, scale_hi=2.0, shift_lo=-1.0, shift_hi=1.0)",)
    dm = quiet_setup(tiny_config("depth-soft", tiny_scene, **{"pipeline.datamanager.depth_degradations": mono}))
    ds = dm.train_dataset
    cameras = ds.cameras
    want = consistency_sigma(
        [d[..., 0].double().numpy() for d in ds.depths],
        [s[..., 0].numpy() == SURFACE for s in ds.states],
        cameras.camera_to_worlds.double().numpy(),
        [(float(cameras.fx[i]), float(cameras.fy[i]), float(cameras.cx[i]), float(cameras.cy[i]))
         for i in range(len(ds))],
    )
    np.testing.assert_allclose(ds.metadata[CONSISTENCY_KEY].numpy(), want, rtol=1e-6)
    exact = quiet_setup(tiny_config("depth-soft", tiny_scene))
    scale = float(ds.metadata["dataparser_scale"])
    assert float(exact.train_dataset.metadata[CONSISTENCY_KEY].max()) < 0.05 * scale < float(np.median(want))
    assert CONSISTENCY_KEY not in dm.eval_dataset.metadata  # evaluation depth is exact and not judged
    off = quiet_setup(tiny_config("depth-soft", tiny_scene, **{"pipeline.datamanager.depth_consistency": False}))
    assert CONSISTENCY_KEY not in off.train_dataset.metadata


def test_a_bad_degradation_stops_start_up_naming_the_option_and_the_kinds(tiny_scene):
    with pytest.raises(ValueError, match=r"depth-degradations: depth degradation 'nois\(b=.1\)'.*noise, holes"):
        bad = {"pipeline.datamanager.depth_degradations": ("nois(b=.1)",)}
        quiet_setup(tiny_config("depth-soft", tiny_scene, **bad))


# ---------------------------------------------------------------------------------------------------- confidence
def test_confidence_levels_drop_low_confidence_surface_pixels_and_set_sigma():
    from depth_strategies.core.data import apply_confidence

    state = np.array([[SURFACE, SURFACE, SURFACE], [EMPTY, UNKNOWN, SURFACE]], np.uint8)
    confidence = np.array([[0, 1, 2], [0, 2, 1]], np.uint8)
    new_state, sigma = apply_confidence(state, confidence, minimum=1, sigma_per_level=(0.3, 0.2, 0.1))
    np.testing.assert_array_equal(new_state, [[UNKNOWN, SURFACE, SURFACE], [EMPTY, UNKNOWN, SURFACE]])
    np.testing.assert_allclose(sigma, [[0.0, 0.2, 0.1], [0.0, 0.0, 0.2]])


def test_a_confidence_map_next_to_a_depth_map_reaches_states_and_sigmas_at_any_same_aspect_resolution(scene_copy):
    from depth_strategies.core.data import SIGMA_KEY

    images = sorted((scene_copy / "train").glob("r_*.png"))
    images = [i for i in images if "_depth" not in i.name]
    low = np.zeros((16, 16), np.uint8)  # half the resolution of the 32 px scene: confidence 0 left, 2 right
    low[:, 8:] = 2
    Image.fromarray(low).save(exr_of(images[0]).with_name(f"{exr_of(images[0]).stem}_confidence.png"))
    dm = quiet_setup(tiny_config("depth-soft", scene_copy))
    ds = dm.train_dataset
    index = [Path(f).name for f in ds.image_filenames].index(images[0].name)
    exact_state = generated_truth(images[0])[1]
    state, sigma = ds.states[index, ..., 0].numpy(), ds.sigmas[index, ..., 0].numpy() / ds.metadata["dataparser_scale"]
    left, right = (slice(None), slice(0, 16)), (slice(None), slice(16, 32))
    assert not np.any(state[left] == SURFACE) and np.any(exact_state[left] == SURFACE)
    np.testing.assert_array_equal(state[right], exact_state[right])
    np.testing.assert_allclose(sigma[right][state[right] == SURFACE], 0.01, rtol=1e-5)
    assert np.all(state[exact_state == EMPTY] == EMPTY)  # low confidence never makes a pixel empty
    others = [i for i in range(len(ds)) if i != index]
    assert float(ds.sigmas[others].abs().max()) == 0.0  # maps without confidence: no sigma
    ray_bundle, batch = dm.next_train(0)
    assert SIGMA_KEY in batch


@pytest.mark.parametrize(
    "array,words",
    [(np.full((32, 32), 5, np.uint8), "values 5..5; expected 0 (low)"), (np.zeros((16, 32), np.uint8), "aspect")],
)
def test_a_bad_confidence_map_is_an_error_naming_it_and_the_fix(scene_copy, array, words):
    image = sorted(p for p in (scene_copy / "train").glob("r_*.png") if "_depth" not in p.name)[0]
    target = exr_of(image).with_name(f"{exr_of(image).stem}_confidence.png")
    Image.fromarray(array).save(target)
    with pytest.raises(DepthFileError, match="confidence map") as err:
        quiet_setup(tiny_config("depth-soft", scene_copy))
    assert str(target) in str(err.value) and words in str(err.value)
