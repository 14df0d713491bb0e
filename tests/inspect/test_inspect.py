"""ds-inspect on generated and real data: each degradation model of core/degradation.py at two levels is named and
measured, clean depth is clean and metric, monocular depth relative, the room capture metric with confidence maps,
the recommendation of each studied condition is the README's pick, and the console script as a user types it."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

from depth_strategies.core.degradation import MODELS
from depth_strategies.core.depth_io import DepthFileError
from depth_strategies.inspect import load as loading
from depth_strategies.inspect import mapping, verdict
from tests.conftest import REPO, run_cli

TOLERANCE = 0.3
"""A measured level must be within 30 % of the applied one (the issue's bar)."""

Check = Optional[Callable[[verdict.Measurements, List[verdict.Finding]], Tuple[float, float]]]


def _level(kind: str) -> Callable:
    def get(m: verdict.Measurements, findings: List[verdict.Finding]) -> float:
        return next(f.level for f in findings if f.kind == kind)
    return get


# (degradations, kind it must be named, applied level, how the measured level is read): every model of
# core.degradation at two levels. The levels are each model's own parameter: noise b (sigma / depth), the share
# of surface pixels dropped, the density of sparse points, the upsampling factor, the rounding step, the monocular
# scale range r (scales log-uniform in [1/r, r], with the robustness protocol's shifts and warps).
CASES: Dict[str, Tuple[List[str], str, Optional[float], Optional[Callable]]] = {
    "noise-1": (["noise(b=0.01)"], "noise", 0.01, _level("noise")),
    "noise-3": (["noise(b=0.03)"], "noise", 0.03, _level("noise")),
    "holes-10": (["holes(fraction=0.1)"], "holes", 0.1, _level("holes")),
    "holes-30": (["holes(fraction=0.3)"], "holes", 0.3, _level("holes")),
    "flying-1": (["flying(width=1)"], "flying", None, None),
    "flying-2": (["flying(width=2)"], "flying", None, None),
    "sparse-20": (["sparse(density=0.2)"], "sparse", 0.2, lambda m, f: m.coverage),
    "sparse-lines": (["sparse(lines=16)"], "sparse", None, None),
    "lowres-4": (["lowres(factor=4)"], "lowres", 4.0, _level("lowres")),
    "lowres-7.5": (["lowres(factor=7.5)"], "lowres", 7.5, _level("lowres")),
    "quantise-0.1": (["quantise(step=0.1)"], "quantise", 0.1, _level("quantise")),
    "quantise-0.2": (["quantise(step=0.2)"], "quantise", 0.2, _level("quantise")),
    "mono-1.1": (["monocular(scale_lo=0.909, scale_hi=1.1, shift_lo=-0.2, shift_hi=0.2, warp=0.02)"], "monocular",
                 1.1, _level("monocular")),
    "mono-1.5": (["monocular(scale_lo=0.667, scale_hi=1.5, shift_lo=-0.5, shift_hi=0.5, warp=0.05)"], "monocular",
                 1.5, _level("monocular")),
}
"""flying: the kind only. Its share is not measured within 30 %: exact depth already gives up to 0.08 (slopes
near edges) and bands of 2 px are undercounted (docs/inspect.md, Limits). sparse(lines=16): the kind only; its
level is a number of scan lines, which ds-inspect does not estimate (it reports coverage, checked on sparse-20)."""


def test_every_degradation_model_is_covered_at_two_levels():
    kinds = [spec[0][0].split("(")[0] for spec in CASES.values()]
    for model in MODELS:
        assert kinds.count(model) >= 2, f"core.degradation's {model} needs two levels in CASES"


def inspect_in_process(data: Path, degradations=()) -> Tuple[loading.LoadedData, verdict.Measurements,
                                                             List[verdict.Finding]]:
    loaded = loading.load(data, None, degradations)
    measured = verdict.measure_data(loaded)
    return loaded, measured, verdict.classify(measured, mapping.shipped_mapping())


def check_case(data: Path, name: str, seed: int = 0) -> None:
    degradations, kind, applied, read = CASES[name]
    loaded = loading.load(data, None, degradations, seed)
    measured = verdict.measure_data(loaded)
    findings = verdict.classify(measured, mapping.shipped_mapping())
    assert findings[0].kind == kind, f"{name}: named {[f.kind for f in findings]}, not {kind}"
    if applied is not None:
        level = read(measured, findings)
        assert abs(level - applied) <= TOLERANCE * applied, f"{name}: measured {level:.4g}, applied {applied}"
    metric = verdict.beyond_noise(measured.scale_range, measured.noise)
    if kind != "monocular" and math.isfinite(metric):
        assert not verdict.nearer_than_clean("monocular", metric, [1.1]), f"{name}: reported relative"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(CASES))
def test_builtin_scene_names_each_degradation_and_measures_its_level(scene64, name, seed):
    check_case(scene64, name, seed)


@pytest.mark.parametrize("name", list(CASES))
def test_lego_names_each_degradation_and_measures_its_level(lego10, name):
    check_case(lego10, name)


@pytest.mark.parametrize("scene", ["scene64", "lego10"])
def test_clean_depth_is_reported_clean_and_metric(scene, request):
    _, measured, findings = inspect_in_process(request.getfixturevalue(scene))
    assert [f.kind for f in findings] == ["clean"]
    assert verdict.beyond_noise(measured.scale_range, measured.noise) < 1.05
    assert measured.coverage == pytest.approx(1.0, abs=0.01)
    assert measured.inside_box > 0.95, "exact depth of an object scene lands inside its scene box"


def test_monocular_depth_with_random_scale_and_shift_is_reported_relative(scene64):
    _, measured, findings = inspect_in_process(
        scene64, ["monocular(scale_lo=0.8, scale_hi=1.25, shift_lo=-0.3, shift_hi=0.3)"])
    assert findings[0].kind == "monocular"
    assert measured.scale_range > 1.1
    spread = np.std(np.log([f.scale for f in measured.frames]))
    assert spread > 0.05, "the per-image scales against the neighbours must spread"


def studied_conditions() -> List[Tuple[str, float, List[str]]]:
    rows = []
    for kind in ("clean", *verdict.CLEAN_LEVEL):
        for entry in mapping.shipped_mapping()["kinds"][kind]["levels"]:
            if entry["rows"]:
                rows.append((kind, entry["level"], entry["rows"][0]["degradations"]))
    return rows


@pytest.mark.parametrize("kind,level,degradations", studied_conditions(),
                         ids=[f"{k}-{lv:g}" for k, lv, _ in studied_conditions()])
def test_recommendation_for_each_studied_condition_is_the_readme_pick(scene64, kind, level, degradations):
    shipped = mapping.shipped_mapping()
    loaded, measured, findings = inspect_in_process(scene64, degradations)
    rec = verdict.recommend(findings, shipped, loaded.dataparser, str(scene64), degradations)
    assert rec.kind == kind and rec.studied_level == level
    entry = next(e for e in shipped["kinds"][kind]["levels"] if e["level"] == level)
    assert rec.images["method"] == entry["pick"]["psnr"]["method"]
    assert_readme_pick(kind, entry, rec)


def assert_readme_pick(kind: str, entry: Dict, rec: verdict.Recommendation) -> None:
    """The README's line for ``kind`` at ``entry``'s level is the mapping's and names the recommended method."""
    readme = (REPO / "README.md").read_text()
    line = next(row for row in mapping.readme_table(mapping.shipped_mapping()).splitlines()
                if f"(`{kind}`)" in row and (", ".join(entry["conditions"]) or "–") in row)
    assert line in readme, "the README's per-kind table is not the one the mapping gives"
    assert f"`{rec.images['method']}`" in line.split("|")[3]
    sizes = rec.images["row"]["regime"]["sizes"]
    assert rec.command.startswith(f"ns-train {rec.images['method']} $(ds-flags {sizes})")


def test_room_capture_reports_metric_depth_with_confidence_maps(tiny_capture):
    loaded, measured, findings = inspect_in_process(tiny_capture)
    assert loaded.dataparser == "nerfstudio-data" and loaded.scene_type == "unbounded"
    train = next(s for s in loaded.splits if s.split == "train")
    assert train.with_depth == train.frames == train.with_confidence > 0
    assert train.depth_hw == (12, 16) and train.image_hw == (48, 64)
    kinds = [f.kind for f in findings]
    assert kinds[0] == "phone" and "monocular" not in kinds and "lowres" in kinds
    assert measured.upsampling_factor == pytest.approx(4.0)
    assert verdict.beyond_noise(measured.scale_range, measured.noise) < 1.05
    rec = verdict.recommend(findings, mapping.shipped_mapping(), loaded.dataparser, str(tiny_capture))
    entry = mapping.shipped_mapping()["kinds"]["phone"]["levels"][0]
    assert rec.images["method"] == entry["pick"]["psnr"]["method"]
    assert_readme_pick("phone", entry, rec)


def tree_digest(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ds_inspect_as_a_user_types_it_reads_and_never_writes_the_data(scene64, tmp_path):
    before = tree_digest(scene64)
    out = tmp_path / "out"
    proc = run_cli(["ds-inspect", str(scene64), "--output", str(out), "--depth-degradations", "noise(b=0.03)"],
                   cwd=tmp_path)
    assert tree_digest(scene64) == before, "ds-inspect changed the dataset"
    result = json.loads((out / "inspect.json").read_text())
    assert result["verdict"]["kind"] == "noise" and result["findings"][0]["level"] == pytest.approx(0.03, rel=0.3)
    assert result["inventory"][0]["with_depth"] == 12
    assert (out / "contact_sheet.png").stat().st_size > 0
    assert "Verdict:" in proc.stdout and "ns-train depth-" in proc.stdout


def test_unreadable_depth_stops_ds_inspect_with_the_training_message(scene64, tmp_path):
    data = Path(shutil.copytree(scene64, tmp_path / "broken"))
    depth = sorted((data / "train").glob("*depth*"))[0]
    depth.write_bytes(b"not a depth map")
    with pytest.raises(DepthFileError) as training:  # what ns-train's datamanager raises on this data
        loading.datamanager(data, "blender-data")
    proc = run_cli(["ds-inspect", str(data), "--output", str(tmp_path / "out")], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert str(training.value).splitlines()[0] in proc.stderr


def test_noise_of_low_resolution_phone_depth_is_measured_on_its_stored_pixels(tiny_capture):
    _, measured, findings = inspect_in_process(tiny_capture, ["noise(b=0.03)"])
    assert measured.noise == pytest.approx(0.03, rel=TOLERANCE)
    assert findings[0].kind == "phone" and "noise" in [f.kind for f in findings]


def test_summary_says_where_the_pick_for_exact_depth_was_an_established_loss(scene64, tmp_path):
    from rich.console import Console

    from depth_strategies.inspect import command

    console = Console(record=True, width=200)
    payload = command.inspect(scene64, None, tmp_path / "out", console=console)
    text = console.export_text()
    losses = payload["verdict"]["images"]["established_losses_elsewhere"]
    assert losses == mapping.shipped_mapping()["kinds"]["clean"]["levels"][0]["pick"]["psnr"][
        "established_losses_elsewhere"]
    for loss in losses:
        assert f"but on {loss['scene']}" in text and "an established loss" in text


def test_real_kinect_capture_reads_as_metric_depth_with_holes_and_gets_the_kitchen_studys_pick(kitchen_tiny):
    """Five real Kinect frames of 7-Scenes' red kitchen (ds-import-rgbd): one scale for every frame, the views
    agree to about a per cent, and the sensor's holes are found; the pick for depth with holes rests on the study of
    the whole capture (the redkitchen protocol), and its ns-train line reads the imported folder."""
    loaded, measured, findings = inspect_in_process(kitchen_tiny)
    assert [f.kind for f in findings] == ["holes"]
    assert verdict.beyond_noise(measured.scale_range, measured.noise) < 1.05
    assert measured.consistency_median < 0.02
    shipped = mapping.shipped_mapping()
    rec = verdict.recommend(findings, shipped, loaded.dataparser, str(kitchen_tiny))
    study = shipped["kinds"]["holes"]["levels"][0]["pick"]
    assert rec.images == study["psnr"] and rec.geometry == study["depth_l1"]
    assert rec.images["row"]["study"] == "docs/results/v0.6/redkitchen"
    assert rec.command.startswith(f"ns-train {rec.images['method']} $(ds-flags cpu)")
    assert rec.command.endswith(f"nerfstudio-data --data {kitchen_tiny}")
    # where the picks for images and for geometry differ, both ns-train lines are given; where they agree, one
    assert (rec.geometry_command is None) == (rec.geometry["method"] == rec.images["method"])
    if rec.geometry_command:
        assert rec.geometry_command.startswith(f"ns-train {rec.geometry['method']} $(ds-flags cpu)")


def test_nearest_studied_level_is_taken_on_a_log_scale():
    assert verdict.nearest_level("noise", 0.018, [0.01, 0.03, 0.1]) == 0.03  # log-midpoint of 1 and 3 % is 1.73 %
    assert verdict.nearest_level("noise", 0.016, [0.01, 0.03, 0.1]) == 0.01
    assert verdict.nearest_level("sparse", 0.92, [0.8, 0.95, 0.99]) == 0.95  # density 8 %: nearer 5 % than 20 %
    assert verdict.nearest_level("monocular", 1.3, [1.1, 1.5, 2.0]) == 1.5
