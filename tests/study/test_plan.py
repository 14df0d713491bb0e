"""``ds-compare --plan``: every run of a protocol, what is done, and an estimate whose source is named."""

from __future__ import annotations

import json
import re

import pytest

from depth_strategies.study import provenance
from depth_strategies.study.plan import plan_rows, render_plan
from depth_strategies.study.protocol import load_protocol, shipped_protocols
from depth_strategies.study.runs import expand_runs
from tests.conftest import run_cli


@pytest.mark.parametrize("name", shipped_protocols())
def test_plan_of_every_shipped_protocol_lists_its_runs(name, tmp_path):
    protocol = load_protocol(name)
    runs = expand_runs(protocol)
    text = render_plan(protocol, plan_rows(protocol, runs, tmp_path / "out", "cpu"))
    assert f"{len(runs)} runs" in text and f"To run: {len(runs)} of {len(runs)} runs" in text
    assert all(run.run_id in text for run in runs)


def test_ds_compare_plan_as_a_user_types_it_trains_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run_cli(["ds-compare", "lego-fewview", "--plan", "--output", str(out)], cwd=tmp_path, timeout=300)
    runs = 5 * 5 + 3 * 6  # 5 seeds of the baseline and the declared family of 4, 3 of the 6 exploratory methods
    assert f"{runs} runs" in proc.stdout and f"To run: {runs} of {runs} runs" in proc.stdout and "hours" in proc.stdout
    assert not out.exists()  # nothing made, nothing trained


def test_plan_uses_measured_runs_then_the_profile_then_a_given_rate_and_marks_finished_runs(tmp_path):
    protocol = load_protocol("quick")  # tiny sizes: 0.034 s per iteration in configs/sizes.yaml
    runs = expand_runs(protocol)
    finished = tmp_path / "runs" / runs[0].run_id
    finished.mkdir(parents=True)
    (finished / "result.json").write_text(json.dumps({
        "status": "ok", "fingerprint": provenance.expected(runs[0])["fingerprint"], "run": {"method": runs[0].method},
        "train": {"wall_time_s": 100.0}, "render": {"wall_time_s": 20.0}}))
    stale = tmp_path / "runs" / runs[2].run_id  # the same run spec, made before runs recorded their provenance
    stale.mkdir(parents=True)
    (stale / "result.json").write_text(json.dumps({"status": "ok", "fingerprint": runs[2].fingerprint(),
                                                   "run": {"method": runs[2].method}, "train": {}, "render": {}}))
    rows = {r["run_id"]: r for r in plan_rows(protocol, runs, tmp_path, "cpu")}
    assert rows[runs[0].run_id]["done"] is True and rows[runs[0].run_id]["seconds"] == 120.0
    assert rows[runs[2].run_id]["done"] == "stale"
    assert "| stale: to run again |" in render_plan(protocol, list(rows.values()))
    assert rows[runs[0].run_id]["source"] == "measured"
    other = rows[runs[1].run_id]
    assert not other["done"] and other["seconds"] == pytest.approx(400 * 0.034)
    assert other["source"] == "profile (training only)"
    on_gpu = plan_rows(protocol, runs, tmp_path, "cuda")
    assert on_gpu[1]["source"] == "unknown" and on_gpu[1]["seconds"] is None
    given = plan_rows(protocol, runs, tmp_path, "cuda", seconds_per_iteration=0.5)
    assert given[1]["seconds"] == 200.0
    text = render_plan(protocol, on_gpu)
    assert "To run: 3 of 4 runs" in text and "without an estimate" in text and "GPU-hours" in text


def test_the_gpu_protocol_fits_one_ten_minute_call_on_an_h200_with_four_runs_at_a_time(tmp_path):
    # the cost comes from configs/speeds.yaml (ds-compare's own wall times on an H200, 2026-12-04)
    protocol = load_protocol("lego-fewview-gpu")
    runs = expand_runs(protocol)
    rows = plan_rows(protocol, runs, tmp_path, "cuda")
    assert len(runs) == 20 and all(r["source"] == "GPU measurement (NVIDIA H200)" for r in rows)
    baseline = next(r for r in rows if "depth-baseline" in r["run_id"])
    assert baseline["seconds"] == pytest.approx(2000 * 0.027 + 20)
    text = render_plan(protocol, rows, jobs=4)
    minutes = float(re.search(r"With --jobs 4 on one GPU: about ([0-9.]+) minutes", text).group(1))
    assert minutes <= 10 and "an assumption, not measured" in text
    assert "With --jobs" not in render_plan(protocol, rows, jobs=1)


def test_a_regime_condition_sets_its_fields_and_iterations_for_every_method_and_the_plan_says_what_it_cannot_cost(
        tmp_path):
    protocol = load_protocol("regime-factors")
    runs = expand_runs(protocol)
    by_condition = {}
    for spec in runs:
        by_condition.setdefault(spec.condition, []).append(spec)
    assert len(by_condition) == 6 and all(len(specs) == 9 for specs in by_condition.values())  # 3 methods x 3 seeds
    for spec in by_condition["nerf-samples-48"]:
        assert dict(spec.overrides)["pipeline.model.num_nerf_samples_per_ray"] == 48  # after the cpu profile's 32
        assert spec.iterations == 1000
    assert {spec.iterations for spec in by_condition["iterations-2000"]} == {2000}
    assert all(dict(spec.overrides)["pipeline.model.num_nerf_samples_per_ray"] == 32 for spec in by_condition["cpu"])
    rows = {r["run_id"]: r for r in plan_rows(protocol, runs, tmp_path, "cpu")}
    assert "not costed" in rows[by_condition["rays-4096"][0].run_id]["source"]
    assert rows[by_condition["cpu"][0].run_id]["source"] == "profile (training only)"
