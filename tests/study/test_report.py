"""Report tables: runs whose appearance collapsed are marked and never ranked; the budget read off the curves."""

from __future__ import annotations

import pytest

from depth_strategies.study.comparisons import COLLAPSED, collapsed_runs, run_appearance, summarize
from depth_strategies.study.tables import main_table

OK_VIEW = {"object_pixels": 500.0, "object_coverage": 0.95, "colour_spread_ratio": 0.8}
FLAT_VIEW = {"object_pixels": 500.0, "object_coverage": 0.99, "colour_spread_ratio": 0.0}
EMPTY_VIEW = {"object_pixels": 500.0, "object_coverage": 0.0, "colour_spread_ratio": 1.0}


def run(method, seed, psnr, views):
    return {"scene": "s", "method": method, "seed": seed, "status": "ok", "run_id": f"s/{method}/seed{seed}",
            "train": {}, "render": {},
            "views": [{"index": i, "metrics": {"psnr": psnr + 0.01 * i, **v}} for i, v in enumerate(views)]}


def test_a_run_is_collapsed_when_most_of_its_views_are():
    assert run_appearance(run("m", 0, 20, [FLAT_VIEW, FLAT_VIEW, OK_VIEW])) == "constant colour"
    assert run_appearance(run("m", 0, 20, [EMPTY_VIEW, EMPTY_VIEW, FLAT_VIEW])) == "empty"
    assert run_appearance(run("m", 0, 20, [FLAT_VIEW, OK_VIEW])) == "ok"  # half is not most
    assert run_appearance({"views": [{"metrics": {"psnr": 20.0}}]}) is None  # results older than version 0.4


def test_collapsed_runs_names_the_seeds():
    runs = [run("m", 0, 20, [OK_VIEW] * 3), run("m", 1, 13, [EMPTY_VIEW] * 3)]
    assert collapsed_runs(runs) == {1: "empty"}


def test_a_method_with_a_collapsed_run_is_marked_and_not_bold_even_with_the_best_mean():
    views = 12
    results = {
        "metrics": {"psnr": {"better": "higher", "unit": "dB"}},
        "runs": [r for seed, jitter in enumerate((0.0, 0.1, -0.1))  # three seeds: the run-level test can separate
                 for r in (run("depth-baseline", seed, 20.0, [OK_VIEW] * views),
                           run("collapsing", seed, 30.0 + jitter, [FLAT_VIEW] * views),
                           run("textured", seed, 25.0 + jitter, [OK_VIEW] * views))],
    }
    rows = summarize(results)
    table = main_table(results, "s", rows, [])
    line = {row.split("|")[1].strip().split(" ")[0]: row for row in table.splitlines()[2:]}
    assert f"collapsing {COLLAPSED} seed 0: constant colour" in line["collapsing"]
    assert "**" not in line["collapsing"]
    assert "**25.0" in line["textured"]  # the best of the methods that did not collapse, separated from the baseline


def test_the_step_a_curve_reaches_a_target_is_interpolated_between_the_evaluations_around_the_crossing():
    from depth_strategies.study.comparisons import first_reaching_step

    curve = [{"step": 1, "psnr": 8.0}, {"step": 250, "psnr": 20.0}, {"step": 500, "psnr": 22.0}]
    assert first_reaching_step(curve, "psnr", 21.0, "higher") == pytest.approx(375.0)  # halfway from 20 to 22
    assert first_reaching_step(curve, "psnr", 5.0, "higher") == 1.0  # reached at the first evaluation
    assert first_reaching_step(curve, "psnr", 23.0, "higher") is None
    depth = [{"step": 1, "depth_l1": 0.5}, {"step": 100, "depth_l1": 0.1}]
    assert first_reaching_step(depth, "depth_l1", 0.2, "lower") == pytest.approx(75.25)  # 1 + 99 * 0.3 / 0.4


def test_the_budget_pairs_each_run_with_the_baselines_run_of_its_seed():
    from depth_strategies.study.comparisons import budget_summary, metric_specs
    from depth_strategies.study.tables import budget_table

    def curve_run(method, seed, values):
        return {"scene": "s", "method": method, "seed": seed, "status": "ok", "run_id": f"s/{method}/seed{seed}",
                "curve": [{"step": step, "psnr": v} for step, v in zip((0, 100, 200), values)], "views": []}

    results = {"protocol": {"name": "b", "baseline": "depth-baseline", "eval_every": 100, "curve_views": 1},
               "metrics": metric_specs(["psnr"], {"psnr": "higher"}),
               "runs": [curve_run("depth-baseline", 0, (10, 18, 20)), curve_run("depth-baseline", 1, (10, 20, 24)),
                        curve_run("depth-hard", 0, (10, 20, 22)), curve_run("depth-hard", 1, (10, 21, 23))]}
    (entry,) = budget_summary(results)
    # seed 0 reaches its baseline's 20 at step 100; seed 1 never reaches its baseline's 24 (not seed 0's 20)
    assert entry["steps"] == {0: 100.0, 1: None}
    assert "| s | depth-hard | 100 / never | 1 of 2 seeds reach it | 200 |" in budget_table(results)


def test_the_budget_leaves_out_seeds_whose_runs_were_trained_on_different_platforms():
    from depth_strategies.study.comparisons import budget_summary, metric_specs

    def curve_run(method, seed, values, platform):
        return {"scene": "s", "method": method, "seed": seed, "status": "ok", "run_id": f"s/{method}/seed{seed}",
                "curve": [{"step": step, "psnr": v} for step, v in zip((0, 100, 200), values)], "views": [],
                "platform": platform}

    results = {"protocol": {"name": "b", "baseline": "depth-baseline"},
               "metrics": metric_specs(["psnr"], {"psnr": "higher"}),
               "runs": [curve_run("depth-baseline", 0, (10, 18, 20), "A"),
                        curve_run("depth-baseline", 1, (10, 20, 24), "A"),
                        curve_run("depth-hard", 0, (10, 20, 22), "A"),
                        curve_run("depth-hard", 1, (10, 21, 23), "B")]}  # seed 1 is not a pair
    (entry,) = budget_summary(results)
    assert entry["steps"] == {0: 100.0}


def test_a_method_run_on_other_seeds_than_the_baseline_says_so_under_its_unpaired_mean():
    results = {
        "protocol": {"baseline": "depth-baseline"},
        "metrics": {"psnr": {"better": "higher", "unit": "dB"}},
        "runs": [run("depth-baseline", seed, 20.0, [OK_VIEW] * 3) for seed in range(5)]
        + [run("depth-hard", seed, 21.0, [OK_VIEW] * 3) for seed in range(5)]
        + [run("ablation", seed, 22.0, [OK_VIEW] * 3) for seed in range(3)],
    }
    table = main_table(results, "s", summarize(results), [])
    line = {row.split("|")[1].strip().split(" ")[0]: row for row in table.splitlines()[2:] if row.startswith("|")}
    assert "ablation (seeds 0, 1, 2) |" in line["ablation"]
    assert "seeds" not in line["depth-hard"] and "seeds" not in line["depth-baseline"]
    assert "ran other seeds than depth-baseline (0, 1, 2, 3, 4)" in table
    same = dict(results, runs=[r for r in results["runs"] if r["method"] != "ablation"])
    assert "other seeds" not in main_table(same, "s", summarize(same), [])


def test_the_evaluation_description_follows_the_scene_kind_and_names_both_kinds_in_a_mixed_protocol():
    import dataclasses

    from depth_strategies.core.metrics import EVALUATION_PROTOCOL
    from depth_strategies.study.protocol import load_protocol
    from depth_strategies.study.results import CAPTURE_EVALUATION, evaluation_protocol

    assert evaluation_protocol(load_protocol("lego")) == EVALUATION_PROTOCOL
    kitchen = load_protocol("redkitchen")
    assert evaluation_protocol(kitchen)["depth mask"] == CAPTURE_EVALUATION["depth mask"]
    assert "[2, 6]" not in " ".join(evaluation_protocol(kitchen).values())
    mixed = dataclasses.replace(kitchen, scenes=kitchen.scenes + load_protocol("quick").scenes)
    mask = evaluation_protocol(mixed)["depth mask"]
    assert mask.startswith("builtin: pixels with a known surface") and "redkitchen: pixels with a depth reading" in mask


def test_a_regenerated_report_keeps_the_stored_evaluation_and_corrects_only_a_capture_protocols_scene_entries():
    from depth_strategies.study.protocol import load_protocol
    from depth_strategies.study.results import CAPTURE_EVALUATION, stored_evaluation

    stored = {"depth mask": "old RGBA text", "psnr": "as trained"}
    assert stored_evaluation(stored, load_protocol("lego")) == stored
    kitchen = stored_evaluation(stored, load_protocol("redkitchen"))
    assert kitchen["psnr"] == "as trained" and kitchen["depth mask"] == CAPTURE_EVALUATION["depth mask"]
    assert stored_evaluation(kitchen, load_protocol("redkitchen")) == kitchen


def _scene_folder(root, layout, mode):
    """A one-frame scene folder: Blender format (``transforms_train.json``, ``file_path`` without extension) or
    nerfstudio-data (``transforms.json``), its image in PIL ``mode``."""
    import json

    from PIL import Image

    root.mkdir(parents=True)
    name = "r_0" if layout == "blender" else "frame_0.png"
    Image.new(mode, (4, 4)).save(root / (name + (".png" if layout == "blender" else "")))
    transforms = "transforms_train.json" if layout == "blender" else "transforms.json"
    (root / transforms).write_text(json.dumps({"frames": [{"file_path": name}]}))
    return root


def test_a_path_scene_is_described_as_a_capture_exactly_when_its_first_training_image_has_no_alpha(tmp_path):
    import dataclasses

    from depth_strategies.core.metrics import EVALUATION_PROTOCOL
    from depth_strategies.study.protocol import SceneSpec, load_protocol
    from depth_strategies.study.results import CAPTURE_EVALUATION, evaluation_protocol
    from depth_strategies.study.scene_folders import images_have_alpha

    rgba = _scene_folder(tmp_path / "object", "blender", "RGBA")
    rgb_blender = _scene_folder(tmp_path / "opaque", "blender", "RGB")
    capture = _scene_folder(tmp_path / "capture", "nerfstudio", "RGB")
    assert (images_have_alpha(rgba), images_have_alpha(rgb_blender), images_have_alpha(capture)) == (True, False, False)
    assert images_have_alpha(tmp_path / "absent") is None
    protocol = dataclasses.replace(load_protocol("quick"), scenes=(SceneSpec(name="mine", path="mine"),))
    assert evaluation_protocol(protocol, {"mine": capture})["depth mask"] == CAPTURE_EVALUATION["depth mask"]
    assert evaluation_protocol(protocol, {"mine": rgb_blender})["depth mask"] == CAPTURE_EVALUATION["depth mask"]
    assert evaluation_protocol(protocol, {"mine": rgba}) == EVALUATION_PROTOCOL
    assert evaluation_protocol(protocol, {"mine": tmp_path / "absent"}) == EVALUATION_PROTOCOL  # unread: as stored
    assert evaluation_protocol(protocol) == EVALUATION_PROTOCOL


def test_report_only_reads_the_path_scenes_that_are_on_this_machine_and_skips_the_others(tmp_path):
    import dataclasses

    from depth_strategies.study.compare import path_scene_folders
    from depth_strategies.study.protocol import SceneSpec, load_protocol

    (tmp_path / "here").mkdir()
    protocol = dataclasses.replace(load_protocol("quick"), scenes=(
        SceneSpec(name="a", path="here"), SceneSpec(name="b", path="elsewhere"), *load_protocol("quick").scenes))
    assert path_scene_folders(protocol, tmp_path) == {"a": (tmp_path / "here").resolve()}
