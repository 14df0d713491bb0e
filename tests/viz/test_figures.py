"""Charts (``viz/figures.py``) and panels (``viz/panels.py``) from a small synthetic ``results.json``: file
names, valid PNGs, failed runs, panel layout and colours."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from PIL import Image

from depth_strategies.core import colour
from depth_strategies.viz import drawing, figures, level_figures, panels

SCENE = "builtin"
BROKEN = "broken"  # a second scene where every run failed
BASELINE = "depth-baseline"
OK_METHODS = [BASELINE, "depth-soft", "depth-hard"]
FAILED = "depth-hybrid"
SWEEP_VALUES = [0.01, 0.1, 1.0]
SEEDS = [0, 1]
N_VIEWS = 4
PANEL_VIEWS = ["r_0", "r_1"]
H, W = 8, 10
STEPS = [100, 200, 300]

# hand-made depth: the surface is rows 2..5, cols 2..7, gt depth 2 + 0.25 * col (exact in binary floating point)
SURFACE_ROWS, SURFACE_COLS = slice(2, 6), slice(2, 8)
UNKNOWN_PIXEL = (0, 0)
LARGEST_ERROR_PIXEL = (3, 4)
BASELINE_ERROR, LARGEST_ERROR = 0.1, 0.4
HARD_SHIFT = 0.25


def _metrics(method: str, seed: int, view: int) -> Dict[str, float]:
    offset = OK_METHODS.index(method) if method in OK_METHODS else 1.5
    return {"psnr": 20.0 + offset + 0.3 * view + 0.1 * seed, "ssim": 0.7 + 0.02 * offset,
            "depth_l1": 0.3 - 0.05 * offset + 0.01 * view}


def _run(scene: str, method: str, seed: int, ok: bool = True, sweep: Any = None) -> Dict[str, Any]:
    run: Dict[str, Any] = {"scene": scene, "method": method, "seed": seed, "status": "ok" if ok else "failed",
                           "error": None if ok else "ValueError: diverged", "sweep": sweep,
                           "run_dir": f"runs/{scene}/{method}/seed{seed}", "views": [], "curve": [], "train": {}}
    if ok:
        run["views"] = [{"index": i, "name": f"r_{i}", "metrics": _metrics(method, seed, i)} for i in range(N_VIEWS)]
        run["views"][0]["metrics"].pop("ssim")  # a missing metric
        run["curve"] = [{"step": s, "psnr": 15.0 + k + 0.1 * seed, "depth_l1": 0.5 - 0.1 * k}
                        for k, s in enumerate(STEPS)]
        run["train"] = {"seconds_per_iteration": 0.3}
    return run


def _gt() -> Dict[str, np.ndarray]:
    state = np.full((H, W, 1), panels.GT_EMPTY, np.uint8)
    state[SURFACE_ROWS, SURFACE_COLS] = panels.GT_SURFACE
    state[UNKNOWN_PIXEL] = panels.GT_UNKNOWN
    depth = np.zeros((H, W, 1), np.float32)
    depth[..., 0] = 2.0 + 0.25 * np.arange(W)[None, :]
    depth[state[..., 0] != panels.GT_SURFACE] = 0.0
    rgb = np.random.default_rng(0).random((H, W, 3)).astype(np.float16)
    return {"gt_rgb": rgb, "gt_depth": depth, "gt_state": state}


def _rendered(method: str) -> Dict[str, np.ndarray]:
    gt = _gt()
    surface = gt["gt_state"] == panels.GT_SURFACE
    depth = gt["gt_depth"].copy()
    if method == BASELINE:
        depth[surface] += BASELINE_ERROR
        depth[LARGEST_ERROR_PIXEL] = gt["gt_depth"][LARGEST_ERROR_PIXEL] + LARGEST_ERROR
    elif method == "depth-hard":
        depth[surface] += HARD_SHIFT
    depth[~surface] = 10.0  # behind the background: transparent, must be drawn white
    return {"rgb": (gt["gt_rgb"] * 0.9).astype(np.float16), "depth": depth,
            "accumulation": surface.astype(np.float16), **gt}


def build(out: Path) -> Dict[str, Any]:
    """The synthetic results and, under ``out``, the panel arrays of the seed-0 ok runs."""
    runs: List[Dict[str, Any]] = []
    for seed in SEEDS:
        for method in OK_METHODS:
            runs.append(_run(SCENE, method, seed))
        runs.append(_run(SCENE, FAILED, seed, ok=False))
        for value in SWEEP_VALUES:
            runs.append(_run(SCENE, f"depth-soft@lambda_soft={value}", seed,
                             sweep=["lambda_soft", "pipeline.model.soft_depth_mult", value]))
    runs.append(_run(SCENE, "depth-soft@lambda_soft=10.0", 0, ok=False,
                     sweep=["lambda_soft", "pipeline.model.soft_depth_mult", 10.0]))
    runs += [_run(BROKEN, BASELINE, 0, ok=False), _run(BROKEN, "depth-soft", 0, ok=False)]
    for method in OK_METHODS:
        for name in PANEL_VIEWS:
            path = out / f"runs/{SCENE}/{method}/seed0/views/{name}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **_rendered(method))
    return {
        "protocol": {"name": "quick", "baseline": BASELINE},
        "metrics": {"psnr": {"better": "higher", "unit": "dB", "description": "PSNR"},
                    "ssim": {"better": "higher", "unit": "", "description": "SSIM"},
                    "depth_l1": {"better": "lower", "unit": "units", "description": "L1"},
                    "lpips": {"better": "lower", "unit": "", "description": "never measured here"}},
        "runs": runs,
        "comparisons": [],
    }


def _assert_pngs(paths: List[Path], expected: List[str]) -> None:
    assert sorted(p.name for p in paths) == sorted(expected)
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] > 0 and image.size[1] > 0
    assert not [p for p in paths[0].parent.iterdir() if ".tmp" in p.name] if paths else True


FAST_DPI = 40
"""Resolution for the tests that only check which files are written (drawing at full resolution is slow)."""


@pytest.fixture()
def fast(monkeypatch):
    monkeypatch.setattr(drawing, "DPI", FAST_DPI)


@pytest.fixture()
def setup(tmp_path):
    out = tmp_path / "out"
    return build(out), out


def test_plot_curves(fast, setup, tmp_path):
    results, _ = setup
    _assert_pngs(figures.plot_curves(results, tmp_path / "p"), [f"curves_{SCENE}.png"])


def test_plot_bars_with_failed_methods(fast, setup, tmp_path):
    results, _ = setup
    expected = [f"bars_{SCENE}.png", f"bars_{BROKEN}.png"]
    _assert_pngs(figures.plot_bars(results, tmp_path / "p"), expected)
    _assert_pngs(figures.plot_bars(results, tmp_path / "q", metrics=["psnr"]), expected)


def test_plot_scatter(fast, setup, tmp_path):
    results, _ = setup
    _assert_pngs(figures.plot_scatter(results, tmp_path / "p"), [f"scatter_{SCENE}.png"])


def test_plot_sweeps(fast, setup, tmp_path):
    results, _ = setup
    _assert_pngs(level_figures.plot_sweeps(results, tmp_path / "p"), [f"sweep_{SCENE}_lambda_soft.png"])


def test_make_panels(setup, tmp_path, monkeypatch):
    results, out = setup
    paths = panels.make_panels(results, out, tmp_path / "full", max_views=1)  # at full resolution
    with Image.open(paths[0]) as image:
        assert 0.8 * panels.MAX_PANEL_WIDTH_PX < image.size[0] <= panels.MAX_PANEL_WIDTH_PX
    monkeypatch.setattr(drawing, "DPI", FAST_DPI)
    paths = panels.make_panels(results, out, tmp_path / "p")
    _assert_pngs(paths, [f"panel_{SCENE}_{v}.png" for v in PANEL_VIEWS])
    assert [p.name for p in panels.make_panels(results, out, tmp_path / "q", max_views=1)] == [f"panel_{SCENE}_r_0.png"]
    named = panels.make_panels(results, out, tmp_path / "r", view_names=["r_1"])
    assert [p.name for p in named] == [f"panel_{SCENE}_r_1.png"]


def test_make_all_figures(fast, setup):
    results, out = setup
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing here should fail
        paths = figures.make_all_figures(results, out)
    expected = {f"plots/curves_{SCENE}.png", f"plots/bars_{SCENE}.png", f"plots/bars_{BROKEN}.png",
                f"plots/scatter_{SCENE}.png", f"plots/sweep_{SCENE}_lambda_soft.png",
                *(f"panels/panel_{SCENE}_{v}.png" for v in PANEL_VIEWS)}
    assert {p.relative_to(out).as_posix() for p in paths} == expected
    _assert_pngs(paths, [p.name for p in paths])


def test_make_all_figures_warns_instead_of_raising(fast, setup):
    results, out = setup
    (out / f"runs/{SCENE}/{BASELINE}/seed0/views/r_2.npz").write_bytes(b"not an npz")
    results["runs"].append({"scene": "odd", "method": BASELINE, "status": "ok", "seed": 0,
                            "views": [{"index": 0, "metrics": {"psnr": "nan?"}}], "curve": [{"step": "x"}]})
    with pytest.warns(UserWarning, match=f"panel_{SCENE}_r_2"):
        paths = figures.make_all_figures(results, out)
    names = {p.name for p in paths}
    assert f"panel_{SCENE}_r_0.png" in names and f"curves_{SCENE}.png" in names
    assert f"panel_{SCENE}_r_2.png" not in names


def test_panel_grid_layout_and_colours():
    views = [_rendered(m) for m in OK_METHODS]
    rows = panels.panel_grid(views)
    assert len(rows) == 3 and all(len(row) == 1 + len(OK_METHODS) for row in rows)
    assert all(cell.shape == (H, W, 3) for row in rows for cell in row)
    rgb, depth, error = rows
    base, soft, hard = 1, 2, 3
    np.testing.assert_allclose(rgb[0], _gt()["gt_rgb"].astype(np.float64))

    # one shared range: equal depths get equal colours in every column
    r = 3
    np.testing.assert_array_equal(depth[soft][r, 2:8], depth[0][r, 2:8])  # soft == ground truth
    np.testing.assert_array_equal(depth[hard][r, 2:7], depth[soft][r, 3:8])  # hard = gt + 0.25 = gt one col right
    assert not np.array_equal(depth[hard][r, 2:8], depth[soft][r, 2:8])
    low, high = panels.panel_depth_range(views)
    surface_depths = _gt()["gt_depth"][2:6, 2:8]
    assert (low, high) == pytest.approx(tuple(np.percentile(surface_depths, colour.DEPTH_PERCENTILES)))

    # background white: rendered (accumulation < 0.5) and GT empty; unknown GT grey
    assert np.all(depth[base][0, 1:] == 1.0) and np.all(depth[0][7] == 1.0)
    assert np.all(depth[0][UNKNOWN_PIXEL] == panels.UNKNOWN_GREY)

    # error: GT cell blank, black off the surface, brightest where the hand-made error is largest
    assert np.all(error[0] == 1.0)
    off_surface = _gt()["gt_state"][..., 0] != panels.GT_SURFACE
    for cell in error[1:]:
        assert np.all(cell[off_surface] == 0.0)
    brightness = error[base].sum(axis=-1)
    assert np.unravel_index(np.argmax(brightness), brightness.shape) == LARGEST_ERROR_PIXEL
    expected = colour.colourise_error(np.full((1, 1), LARGEST_ERROR), np.ones((1, 1), bool))[0, 0]
    np.testing.assert_allclose(error[base][LARGEST_ERROR_PIXEL], expected)
    on = ~off_surface
    on[LARGEST_ERROR_PIXEL] = False
    assert brightness[on].max() < brightness[LARGEST_ERROR_PIXEL]
    # error 0.1 of the baseline is brighter than the zero error of soft
    assert brightness[2, 2] > error[soft].sum(axis=-1)[2, 2]


def test_panel_grid_without_gt_and_missing_column():
    views = [_rendered(m) for m in OK_METHODS[:2]]
    for view in views:
        for key in ("gt_depth", "gt_state"):
            view.pop(key)
    rows = panels.panel_grid([views[0], None, views[1]])
    assert len(rows) == 3 and all(len(row) == 4 for row in rows)
    assert all(np.all(c == 1.0) for c in rows[2])  # no error without ground truth
    assert all(np.all(rows[r][2] == 1.0) for r in range(3))  # the missing column is blank
    low, high = panels.panel_depth_range(views)
    rendered = np.concatenate([v["depth"][v["accumulation"] > 0.5] for v in views])
    assert (low, high) == pytest.approx(tuple(np.percentile(rendered, colour.DEPTH_PERCENTILES)))


def _regime_results(conditions: List[Dict[str, Any]]) -> Dict[str, Any]:
    runs = []
    for condition in conditions:
        for method in OK_METHODS:
            for seed in SEEDS:
                run = _run(f"{SCENE}/{condition['name']}", method, seed)
                runs.append({**run, "base_scene": SCENE, "condition": condition["name"], "render": {}})
    return {"protocol": {"name": "regimes", "baseline": BASELINE, "conditions": conditions},
            "metrics": {"psnr": {"better": "higher", "unit": "dB"}, "depth_l1": {"better": "lower", "unit": "units"}},
            "runs": runs, "comparisons": []}


REGIMES = [{"name": "cpu", "kind": "clean", "level": 0, "degradations": [], "overrides": {}, "iterations": None},
           {"name": "rays-4096", "kind": "rays", "level": 4096, "degradations": [],
            "overrides": {"pipeline.datamanager.train_num_rays_per_batch": 4096}, "iterations": None},
           {"name": "iterations-2000", "kind": "iterations", "level": 2000, "degradations": [], "overrides": {},
            "iterations": 2000}]
DEPTH_LEVELS = [{"name": "clean", "kind": "clean", "level": 0, "degradations": [], "overrides": {},
                 "iterations": None},
                {"name": "noise-0.05", "kind": "noise", "level": 0.05, "degradations": [{"kind": "noise"}],
                 "overrides": {}, "iterations": None}]


def test_regime_curves_put_every_regime_side_by_side_and_skip_depth_degradations(fast, tmp_path):
    _assert_pngs(figures.plot_regime_curves(_regime_results(REGIMES), tmp_path / "p"),
                 [f"curves_by_regime_{SCENE}.png"])
    assert figures.plot_regime_curves(_regime_results(DEPTH_LEVELS), tmp_path / "q") == []
    assert figures.plot_regime_curves(build(tmp_path / "out"), tmp_path / "r") == []  # no conditions at all
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every family drawn, none skipped
        written = figures.make_all_figures(_regime_results(REGIMES), tmp_path / "all")
    assert f"curves_by_regime_{SCENE}.png" in {p.name for p in written}
    assert any(p.name.startswith("robustness_") for p in written)
