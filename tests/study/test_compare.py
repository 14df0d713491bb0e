"""ds-compare: protocol validation, statistics, tables from known results, and the command end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sp_stats

from depth_strategies.methods import OBJECT_SETTINGS
from depth_strategies.study import comparisons, report, robustness, stats, tables
from depth_strategies.study.compare import panel_indices
from depth_strategies.study.executors import parse_progress, run_in_subprocess
from depth_strategies.study.protocol import (
    ProtocolError,
    load_protocol,
    parse_protocol,
    protocol_from_results,
    resolve_path,
)
from depth_strategies.study.runs import RunSpec, expand_runs
from depth_strategies.study.scene_folders import prepare_scene
from tests.conftest import TEST_DATA, console_script

TINY_PROTOCOL = TEST_DATA / "tiny_protocol.yaml"
MINIMAL = {"name": "t", "scenes": [{"name": "s", "generate": {"resolution": 16}}], "methods": ["depth-baseline"]}


# ------------------------------------------------------------------------------------------- protocols
@pytest.mark.parametrize(
    "name",
    ["quick", "lego", "lego-fewview", "ablation", "robustness-quick", "robustness", "room-quick", "nerf-synthetic-gpu",
     "lego-fewview-gpu", "regime-factors", "redkitchen"],
)
def test_shipped_protocols_validate_and_are_found_by_name_from_any_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    protocol = load_protocol(name)
    assert protocol.name == name
    assert expand_runs(protocol)


@pytest.mark.parametrize(
    "change, path, words",
    [
        ({"iteratons": 5}, "iteratons", "unknown key"),
        ({"scenes": [{"name": "s", "generate": {"resolutoin": 16}}]}, "scenes[0].generate.resolutoin", "unknown key"),
        ({"scenes": [{"generate": {}}]}, "scenes[0].name", "required"),
        ({"scenes": [{"name": "s", "generate": {}, "path": "x"}]}, "scenes[0]", "exactly one"),
        ({"scenes": [{"name": "s", "rgbd": {"source": "k", "test_every": 1}}]}, "scenes[0].rgbd.test_every", ">= 2"),
        ({"scenes": [{"name": "s", "rgbd": {"source": "k", "max_depth": 0}}]}, "scenes[0].rgbd.max_depth", "> 0"),
        ({"scenes": [{"name": "s", "rgbd": {"source": "k", "strid": 2}}]}, "scenes[0].rgbd.strid", "unknown key"),
        ({"scenes": [{"name": "s", "rgbd": {"stride": 2}}]}, "scenes[0].rgbd.source", "required"),
        ({"panel_views": [1, -2]}, "panel_views[1]", ">= 0"),
        ({"panel_views": [1, 1]}, "panel_views", "unique"),
        ({"panel_views": [1, "a"]}, "panel_views[1]", "test-view index"),
        ({"methods": ["depth-magic"]}, "methods[0].name", "unknown method"),
        ({"methods": [{"name": "v", "base": "nope"}]}, "methods[0].base", "unknown method"),
        ({"methods": [{"name": "r", "external": "instant-ngp"}]}, "methods[0].external", "unknown external"),
        ({"baseline": "depth-soft"}, "baseline", "not one of the methods"),
        ({"metrics": {"psnr": "lower"}}, "metrics.psnr", "higher-is-better"),
        ({"metrics": {"fid": "lower"}}, "metrics.fid", "unknown metric"),
        ({"seeds": 0}, "seeds", "at least one"),
        ({"iterations": 0}, "iterations", ">= 1"),
        ({"device": "tpu"}, "device", "auto, cpu or cuda"),
        ({"sizes": "huge"}, "sizes", "unknown size profile"),
        (
            {"sweeps": [{"name": "x", "method": "depth-soft", "field": "a.b", "values": [1]}]},
            "sweeps[0].method",
            "not one of the methods",
        ),
        (
            {"sweeps": [{"name": "x", "method": "depth-baseline", "field": "a.b", "values": []}]},
            "sweeps[0].values",
            "must not be empty",
        ),
        (
            {"conditions": [{"name": "n", "kind": "noise", "level": 1, "degradations": ["noise(sigma=1)"]}]},
            "conditions[0].degradations[0]",
            "noise has no parameter 'sigma'",
        ),
        ({"conditions": [{"name": "n", "level": 1}]}, "conditions[0].kind", "required"),
        (
            {"conditions": [{"name": "n", "kind": "clean", "level": 0}], "condition_free": ["depth-soft"]},
            "condition_free[0]",
            "not one of the methods",
        ),
        ({"condition_free": ["depth-baseline"]}, "condition_free", "only meaningful with conditions"),
        (
            {"conditions": [{"name": "r", "kind": "rays", "level": 1, "overrides": ["a.b"]}]},
            "conditions[0].overrides",
            "a mapping of dotted config paths",
        ),
        ({"conditions": [{"name": "i", "kind": "iterations", "level": 1, "iterations": 0}]}, "conditions[0].iterations",
         ">= 1"),
        ({"resources": {"ram": 4}}, "resources.ram", "allowed: cpus, gpus, memory_gb"),
        ({"resources": {"gpus": -1}}, "resources.gpus", ">= 0"),
        (
            {"conditions": [{"name": "n", "kind": "clean", "level": 0}, {"name": "n", "kind": "x", "level": 1}]},
            "conditions",
            "unique",
        ),
    ],
)
def test_protocol_errors_name_the_file_and_key(change, path, words):
    with pytest.raises(ProtocolError) as err:
        parse_protocol({**MINIMAL, **change}, "configs/bad.yaml")
    message = str(err.value)
    assert message.startswith(f"configs/bad.yaml: {path}:"), message
    assert words in message


def test_protocol_that_is_not_yaml_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProtocolError, match="not valid YAML"):
        load_protocol(str(bad))
    with pytest.raises(ProtocolError, match="no protocol 'nonexistent'.*quick"):
        load_protocol("nonexistent")


def test_relative_scene_paths_resolve_from_the_data_root_and_a_missing_one_says_how_to_fix_it(tmp_path):
    (tmp_path / "data" / "lego").mkdir(parents=True)
    assert resolve_path("data/lego", tmp_path) == tmp_path / "data" / "lego"
    assert resolve_path(str(tmp_path / "data" / "lego"), tmp_path / "elsewhere") == tmp_path / "data" / "lego"
    with pytest.raises(ProtocolError, match=r"\.\./shared/data/lego: no such folder.*--data-root"):
        resolve_path("../shared/data/lego", tmp_path / "data")


def test_expand_runs_crosses_scenes_seeds_methods_and_sweep_values():
    protocol = parse_protocol(
        {
            **MINIMAL,
            "methods": ["depth-baseline", "depth-soft"],
            "seeds": 2,
            "sweeps": [
                {"name": "lam", "method": "depth-soft", "field": "pipeline.model.soft_depth_mult", "values": [0.1, 1.0]}
            ],
        },
        "x",
    )
    runs = expand_runs(protocol)
    assert len(runs) == 1 * 2 * (2 + 2)
    assert len({r.run_id for r in runs}) == len(runs)
    assert len({r.fingerprint() for r in runs}) == len(runs)
    sweep_run = next(r for r in runs if r.sweep)
    assert sweep_run.overrides[-1] == ("pipeline.model.soft_depth_mult", 0.1)
    assert {r.method for r in expand_runs(protocol, ["depth-soft"])} >= {"depth-baseline", "depth-soft"}
    with pytest.raises(ProtocolError, match="depth-hard"):
        expand_runs(protocol, ["depth-hard"])


FAMILY_AND_AN_ABLATION = {
    **MINIMAL, "seeds": 5, "compared": ["depth-hard"],
    "methods": ["depth-baseline", "depth-hard",
                {"name": "depth-hard-nomask", "base": "depth-hard", "seeds": 3,
                 "overrides": {"pipeline.model.empty_space_mult": 0.0}}],
}


def test_a_method_outside_the_declared_family_may_run_fewer_seeds():
    protocol = parse_protocol(FAMILY_AND_AN_ABLATION, "x")
    assert protocol.methods[2].seeds == (0, 1, 2)
    runs = expand_runs(protocol)
    seeds = {m: sorted(r.seed for r in runs if r.method == m) for m in ("depth-baseline", "depth-hard",
                                                                        "depth-hard-nomask")}
    assert seeds == {"depth-baseline": [0, 1, 2, 3, 4], "depth-hard": [0, 1, 2, 3, 4], "depth-hard-nomask": [0, 1, 2]}
    fewer = dataclasses.replace(protocol, seeds=(0, 1))  # ds-compare --seeds 2 narrows every method
    assert sorted(r.seed for r in expand_runs(fewer) if r.method == "depth-hard-nomask") == [0, 1]
    # the protocol's asdict (results.json) reads back the same runs (--report-only)
    again = protocol_from_results(json.loads(json.dumps(dataclasses.asdict(protocol))), "results.json")
    assert [r.run_id for r in expand_runs(again)] == [r.run_id for r in runs]


@pytest.mark.parametrize("change, words", [
    ({"seeds": 3, "compared": []}, "declared family runs every seed"),  # no `compared`: every method is the family
    ({"seeds": 3, "compared": ["depth-hard-nomask"]}, "declared family runs every seed"),
    ({"seeds": [3, 7]}, "not among the protocol's seeds"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"seeds": 0}, "at least one seed"),
])
def test_a_method_s_own_seeds_are_refused_where_pairing_or_the_family_would_lose_runs(change, words):
    methods = list(FAMILY_AND_AN_ABLATION["methods"])
    compared = change.pop("compared", FAMILY_AND_AN_ABLATION["compared"])
    methods[2] = {**methods[2], **change}
    with pytest.raises(ProtocolError) as err:
        parse_protocol({**FAMILY_AND_AN_ABLATION, "methods": methods, "compared": compared}, "p.yaml")
    assert str(err.value).startswith("p.yaml: methods[2].seeds:") and words in str(err.value), str(err.value)
    with pytest.raises(ProtocolError, match="baseline runs every seed"):
        parse_protocol({**FAMILY_AND_AN_ABLATION, "methods": [{"name": "depth-baseline", "seeds": 2}, "depth-hard"]},
                       "p.yaml")


CONDITIONS = [
    {"name": "clean", "kind": "clean", "level": 0},
    {"name": "noisy", "kind": "noise", "level": 0.1, "degradations": ["noise(b=0.1)"]},
]


def test_conditions_cross_every_depth_method_and_run_condition_free_methods_once():
    protocol = parse_protocol({**MINIMAL, "methods": ["depth-baseline", "depth-soft", "depth-hybrid"], "seeds": 2,
                               "conditions": CONDITIONS, "condition_free": ["depth-baseline"]}, "x")
    runs = expand_runs(protocol)
    assert len(runs) == 2 * (1 + 2 * 2)  # per seed: the baseline once, two depth methods under two conditions
    baseline = [r for r in runs if r.method == "depth-baseline"]
    assert [r.condition for r in baseline] == [None, None] and baseline[0].run_id == "s/depth-baseline/seed0"
    noisy = next(r for r in runs if r.method == "depth-soft" and r.condition == "noisy" and r.seed == 1)
    assert noisy.run_id == "s/noisy/depth-soft/seed1"
    assert noisy.overrides[-2:] == (("pipeline.datamanager.depth_degradations", ["noise(b=0.1)"]),
                                    ("pipeline.datamanager.degradation_seed", 1))  # the noise is drawn per seed
    other_method = next(r for r in runs if r.method == "depth-hybrid" and r.condition == "noisy" and r.seed == 1)
    assert other_method.overrides[-1] == ("pipeline.datamanager.degradation_seed", 1)  # the same for every method
    clean = next(r for r in runs if r.method == "depth-soft" and r.condition == "clean" and r.seed == 1)
    assert all(key != "pipeline.datamanager.depth_degradations" for key, _ in clean.overrides)
    assert len({r.run_id for r in runs}) == len({r.fingerprint() for r in runs}) == len(runs)


def test_a_run_without_a_condition_keeps_the_fingerprint_it_had_before_conditions_existed():
    run = RunSpec("s", "depth-soft", "depth-soft", None, (("pipeline.model.max_res", 64),), 0, 10)
    # sha256 of the run's fields as they were serialised before the condition field was added
    assert run.fingerprint() == "2c19fe176304cf8d"  # computed with version 0.3.0's protocol.py


def condition_results(gains):
    """Hand-made results: 8 views under clean, noise 0.1 and noise 0.3; depth-soft's psnr gain per condition is
    ``gains[condition]`` on every view (the shared baseline is entered under each condition, as ds-compare does)."""
    conditions = [{"name": "clean", "kind": "clean", "level": 0}, {"name": "n1", "kind": "noise", "level": 0.1},
                  {"name": "n3", "kind": "noise", "level": 0.3}]
    runs = []
    for c in conditions:
        for seed, jitter in enumerate((0.0, 0.02, -0.02)):  # three seeds whose gains differ a little
            for method, gain in (("depth-baseline", 0.0), ("depth-soft", gains[c["name"]] + jitter)):
                views = [{"index": i, "metrics": {"psnr": 20.0 + 0.1 * i + gain, "depth_l1": 0.1}} for i in range(8)]
                runs.append({"scene": f"s/{c['name']}", "base_scene": "s", "condition": c["name"], "method": method,
                             "seed": seed, "run_id": f"s/{c['name']}/{method}/seed{seed}", "status": "ok",
                             "sweep": None, "views": views, "train": {}, "render": {},
                             "shared": method == "depth-baseline"})
    return {
        "protocol": {"name": "rob", "baseline": "depth-baseline", "iterations": 10, "seeds": [0, 1, 2],
                     "primary_metrics": ["psnr"], "conditions": conditions, "condition_free": ["depth-baseline"]},
        "metrics": comparisons.metric_specs(["psnr", "depth_l1"], {"psnr": "higher", "depth_l1": "lower"}),
        "runs": runs,
    }


def test_a_regime_axis_changes_how_the_model_trains_and_a_depth_axis_the_depth():
    clean = {"name": "cpu", "kind": "clean", "degradations": [], "overrides": {}, "iterations": None}
    rays = {"name": "rays", "kind": "rays", "degradations": [], "overrides": {"x.rays": 4096}, "iterations": None}
    longer = {"name": "long", "kind": "iterations", "degradations": [], "overrides": {}, "iterations": 2000}
    noise = {"name": "n1", "kind": "noise", "degradations": [{"kind": "noise"}], "overrides": {}, "iterations": None}
    assert robustness.is_regime_axis([clean, rays]) and robustness.is_regime_axis([clean, longer])
    assert not robustness.is_regime_axis([clean, noise])
    assert not robustness.is_regime_axis([clean, noise, rays])  # degraded depth makes it a robustness axis
    assert not robustness.is_regime_axis([clean])


def test_robustness_summary_gives_each_level_and_the_level_where_a_method_stops_helping():
    results = condition_results({"clean": 1.0, "n1": 0.5, "n3": -0.2})
    (entry,) = robustness.robustness_summary(results)
    assert (entry["scene"], entry["kind"], entry["metric"]) == ("s", "noise", "psnr")
    assert [lvl["condition"] for lvl in entry["levels"]] == ["clean", "n1", "n3"]
    soft = entry["methods"]["depth-soft"]
    assert [c["difference"] for c in soft] == pytest.approx([1.0, 0.5, -0.2])
    assert all(c["significant"] for c in soft)  # per seed gain +- 0.02: paired t p < 0.001, Holm x3 conditions
    assert entry["stops_helping"]["depth-soft"] == 0.3
    assert entry["kept_at_mildest"]["depth-soft"] == pytest.approx(0.5)  # +0.5 at level 0.1 of +1.0 on clean depth
    assert entry["worse_at"]["depth-soft"] == [0.3]  # -0.2 in every seed: significantly worse there
    assert robustness.robustness_summary(condition_results({"clean": 1.0, "n1": 0.5, "n3": 0.1}))[0]["stops_helping"][
        "depth-soft"] is None
    no_clean_gain = robustness.robustness_summary(condition_results({"clean": -1.0, "n1": 0.5, "n3": 0.1}))[0]
    assert no_clean_gain["kept_at_mildest"]["depth-soft"] is None and no_clean_gain["worse_at"]["depth-soft"] == [0]
    ((title, table),) = robustness.robustness_tables(results)
    assert "noise" in title
    assert "| depth-soft | 21.35 (+1.00†) | 20.85 (+0.50†) | 20.15 (-0.20†) | 0.3 | 50 % | 0.3 |" in table
    md = report.render_markdown(results)
    assert "## Robustness: each kind of degradation against its level" in md


def test_a_factor_of_the_training_regime_gets_a_regime_table_without_the_degradation_columns():
    results = condition_results({"clean": 1.0, "n1": 0.5, "n3": -0.2})
    for condition in results["protocol"]["conditions"]:  # the same levels, now a regime factor (samples per ray)
        if condition["kind"] != "clean":
            condition.update(kind="nerf_samples", overrides={"pipeline.model.num_nerf_samples_per_ray": 48})
    (entry,) = robustness.robustness_summary(results)
    assert entry["axis"] == "regime"
    ((title, table),) = robustness.robustness_tables(results)
    assert title.startswith("Regime on `s`: nerf_samples")
    assert "stops helping" not in table and "| depth-soft | 21.35 (+1.00†) | 20.85 (+0.50†) | 20.15 (-0.20†) |" in table
    assert table.splitlines()[0].startswith("| method | clean (reference) | ")  # not its 0 on the factor's axis
    assert "## Regimes: each factor against its level" in report.render_markdown(results)


def test_a_condition_whose_seeds_pair_across_platforms_only_shows_no_difference_not_nan():
    results = condition_results({"clean": 1.0, "n1": 0.5, "n3": -0.2})
    for run in results["runs"]:  # the shared baseline on one machine, depth-soft under n1 on another
        run["platform"] = "B" if (run["method"] == "depth-soft" and run["condition"] == "n1") else "A"
    (entry,) = robustness.robustness_summary(results)
    assert entry["methods"]["depth-soft"][1]["difference"] is None
    assert entry["kept_at_mildest"]["depth-soft"] is None  # nothing kept to compute, not nan
    ((_, table),) = robustness.robustness_tables(results)
    assert "nan" not in table and "| 20.85 |" in table  # the mean, with no difference beside it
    # an unpaired level says nothing either way: depth-soft still stops helping at 0.3, where it is paired and worse
    assert entry["stops_helping"]["depth-soft"] == 0.3 and entry["unpaired_at"]["depth-soft"] == [0.1]
    clean_gain_only = condition_results({"clean": 1.0, "n1": 0.5, "n3": 0.2})
    for run in clean_gain_only["runs"]:
        run["platform"] = "B" if (run["method"] == "depth-soft" and run["condition"] == "n1") else "A"
    ((_, table),) = robustness.robustness_tables(clean_gain_only)
    assert "helps at every level with a paired seed (none at 0.1)" in table
    for run in clean_gain_only["runs"]:  # every depth-soft run on another machine than the baseline
        run["platform"] = "B" if run["method"] == "depth-soft" else "A"
    ((_, table),) = robustness.robustness_tables(clean_gain_only)
    assert "– (no paired seed)" in table
    listed = tables.stats_table(clean_gain_only, "s/n1", comparisons.compare_to_baseline(clean_gain_only))
    assert "| depth-soft |" not in listed and "no seed paired with the baseline's" in listed and "depth-soft" in listed


# ------------------------------------------------------------------------------------------- statistics
def test_holm_adjusts_hand_computed_p_values():
    # sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; max(0.06, 0.04 * 1) = 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = stats.holm([0.5, float("nan"), 0.9])
    assert adjusted[0] == pytest.approx(min(1.0, 0.5 * 2)) and math.isnan(adjusted[1]) and adjusted[2] == 1.0


def test_wilcoxon_matches_scipy_on_fixed_differences():
    d = [0.8, -0.2, 1.1, 0.5, 0.9, 0.3, -0.1, 0.7]
    assert stats.wilcoxon_p(d) == pytest.approx(sp_stats.wilcoxon(d).pvalue)
    assert math.isnan(stats.wilcoxon_p([0.0, 0.0]))
    # 4 views: the smallest two-sided exact p-value is 2 / 2^4
    assert stats.wilcoxon_p([1.0, 2.0, 3.0, 4.0]) == pytest.approx(2 / 16)


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    x = np.array([0.3, 1.2, -0.4, 0.8, 0.5, 1.5, 0.1, 0.9, 0.7, -0.2])
    ours = stats.bootstrap_mean_ci(x, resamples=20000, seed=1)
    theirs = sp_stats.bootstrap(
        (x,), np.mean, method="percentile", n_resamples=20000, random_state=2
    ).confidence_interval
    assert ours[0] == pytest.approx(theirs.low, abs=0.03)
    assert ours[1] == pytest.approx(theirs.high, abs=0.03)
    assert stats.bootstrap_mean_ci(x, seed=5) == stats.bootstrap_mean_ci(x, seed=5)
    for too_few in ([1.0], [1.0, float("nan")], []):
        assert all(math.isnan(v) for v in stats.bootstrap_mean_ci(too_few))


# ------------------------------------------------------------------------------------------- tables
def hand_results():
    def run(method, psnr, l1, status="ok", error=None):
        views = [
            {"index": i, "name": f"r_{i}", "metrics": {"psnr": p, "depth_l1": d}}
            for i, (p, d) in enumerate(zip(psnr, l1))
        ]
        return {
            "scene": "s",
            "method": method,
            "seed": 0,
            "run_id": f"s/{method}/seed0",
            "status": status,
            "error": error,
            "sweep": None,
            "views": views if status == "ok" else [],
            "curve": [],
            "train": {"seconds_per_iteration": 0.5} if status == "ok" else {},
            "render": {},
        }

    results = {
        "protocol": {"name": "hand", "baseline": "depth-baseline", "iterations": 10, "seeds": [0]},
        "metrics": comparisons.metric_specs(["psnr", "depth_l1"], {"psnr": "higher", "depth_l1": "lower"}),
        "runs": [
            run("depth-baseline", [20.0, 21.0, 22.0], [0.5, 0.4, 0.6]),
            run("depth-soft", [21.0, 23.0, 22.0], [0.2, 0.1, 0.3]),
            run("depth-hard", [], [], status="failed", error="ValueError: boom"),
        ],
    }
    results["comparisons"] = comparisons.compare_to_baseline(results)
    return results


def test_summary_and_differences_from_hand_written_results():
    results = hand_results()
    rows = {r["method"]: r for r in comparisons.summarize(results)}
    assert rows["depth-baseline"]["psnr"] == {"mean": 21.0, "std": 1.0, "n": 3, "seeds": 1, "seed_std": None}
    assert rows["depth-soft"]["psnr"]["mean"] == pytest.approx(22.0)
    assert rows["depth-soft"]["depth_l1"]["mean"] == pytest.approx(0.2)
    assert rows["depth-hard"]["status"] == "failed"
    comp = {(c["method"], c["metric"]): c for c in results["comparisons"]}
    assert comp[("depth-soft", "psnr")]["mean_difference"] == pytest.approx((1 + 2 + 0) / 3)
    assert comp[("depth-soft", "depth_l1")]["mean_difference"] == pytest.approx(-0.3)
    # one seed: the views describe the run (3 paired, std of (+1, +2, 0) = 1), but there is no run-level test
    assert comp[("depth-soft", "psnr")]["n"] == 3 and comp[("depth-soft", "psnr")]["view_std"] == pytest.approx(1.0)
    assert comp[("depth-soft", "depth_l1")]["seeds"] == 1 and math.isnan(comp[("depth-soft", "depth_l1")]["p_value"])
    assert comp[("depth-soft", "depth_l1")]["p_holm"] == 1.0
    assert not comparisons.significant(comp[("depth-soft", "psnr")])


def test_the_header_names_the_platforms_and_code_that_trained_the_runs():
    results = hand_results()
    assert "platforms" not in report.render_markdown(results)  # no platform recorded (older results)
    assert "not recorded (version 0.4 or older)" in report.render_markdown(results)
    for run in results["runs"]:
        run["platform"] = "Linux-A"
        run["provenance"] = {"source_hash": "abc"}
    md = report.render_markdown(results)
    assert "Trained on `Linux-A` (3 runs)." in md and "`abc` (3 runs)" in md
    results["runs"][1]["platform"] = "Linux-B"
    results["runs"][1]["stale"] = "other training code"
    md = report.render_markdown(results)
    assert "The runs were trained on 2 platforms: `Linux-A` (2 runs); `Linux-B` (1 run)." in md
    assert "1 run(s) were reused although stale (--reuse-stale): `s/depth-soft/seed0` (other training code)" in md


def test_a_seed_whose_two_runs_came_from_different_platforms_is_left_out_of_the_test():
    results = seed_results([-0.8, -1.0, -1.1, -0.9, -1.2])
    for run in results["runs"]:
        run["platform"] = "Linux-B" if (run["seed"] == 4 and run["method"] == "depth-soft") else "Linux-A"
    soft = {(c["method"], c["metric"]): c for c in comparisons.compare_to_baseline(results)}[("depth-soft", "psnr")]
    assert soft["seeds"] == 4 and soft["left_out_seeds"] == ["4"] and "4" not in soft["seed_differences"]
    assert soft["mean_difference"] == pytest.approx(-0.95)
    assert "Left out of the pairs (the two runs of the seed were trained on different platforms): depth-soft seed 4" \
        in report.render_markdown(results)


def test_header_counts_a_shared_run_once_and_separates_reused_runs_from_this_invocation():
    results = hand_results()
    results["wall_time_s"] = 30.0
    runs = results["runs"]
    runs[0]["train"]["wall_time_s"], runs[1]["train"]["wall_time_s"] = 120.0, 60.0
    runs[0]["reused"] = True
    # the condition-free baseline listed again under a second condition: the same run
    results["runs"] = runs + [dict(runs[0], scene="s/other")]
    md = report.render_markdown(results)
    assert "wall time of this invocation 0.5 min (1 of 3 runs reused" in md
    assert "the runs' own training time 3.0 min in total" in md


def test_recorded_command_reproduces_what_ran_without_how_it_was_executed():
    from depth_strategies.study.compare import CompareArgs, command_line

    assert command_line(CompareArgs()) == "ds-compare quick"
    args = CompareArgs(protocol="robustness", output=Path("out/r"), data_root=Path(".."), seeds=1,
                       methods=("depth-soft", "depth-hard"), jobs=2, retries=1)
    assert command_line(args) == (
        "ds-compare robustness --output out/r --data-root .. --seeds 1 --methods depth-soft depth-hard"
    )
    assert command_line(CompareArgs(protocol="regime-factors", conditions=("rays-4096",))) == (
        "ds-compare regime-factors --conditions rays-4096")


def test_conditions_keeps_the_named_conditions_runs_and_the_condition_free_ones_and_names_an_unknown_one():
    from depth_strategies.study.runs import only_conditions

    protocol = load_protocol("regime-factors")
    runs = expand_runs(protocol)
    kept = only_conditions(protocol, runs, ("rays-4096", "cpu"))
    assert {r.condition for r in kept} == {"rays-4096", "cpu"}
    assert len(kept) == 2 * len(protocol.methods) * len(protocol.seeds)
    with pytest.raises(ProtocolError, match=r"--conditions: 'rays-1' is not a condition of protocol regime-factors"
                       r" \(cpu, "):
        only_conditions(protocol, runs, ("rays-1",))
    free = load_protocol("robustness")  # its condition-free baseline is every condition's reference
    free_runs = expand_runs(free)
    first = free.conditions[0].name
    assert [r for r in only_conditions(free, free_runs, (first,)) if r.condition is None] == [
        r for r in free_runs if r.condition is None]
    with pytest.raises(ProtocolError, match="it has none"):
        only_conditions(load_protocol("quick"), expand_runs(load_protocol("quick")), ("cpu",))


def test_markdown_table_has_arrows_bold_best_differences_and_failures():
    md = report.render_markdown(hand_results())
    assert "psnr (dB) ↑" in md and "depth_l1 (units) ↓" in md
    # 3 views cannot separate the leaders (the smallest two-sided Wilcoxon p of 3 pairs is 0.25): no bold
    table = md.split("| method |")[1].split("###")[0]
    assert "| 22.00 ± 1.00 (+1.00) |" in table and "**" not in table.replace("**failed**", "")
    assert "0.200 ± 0.100 (-0.300)" in md
    assert "| depth-baseline | 21.00 ± 1.00 | 0.500 ± 0.100 |" in md
    assert "**failed**: ValueError: boom" in md
    # sequential wall-clock timings are labelled as such and never turned into speed ratios between methods
    assert "train s/iter (wall)" in md and tables.WALL_TIME_CAVEAT in md and "×" not in md
    csv_text = report.render_csv(hand_results())
    assert "s,depth-soft,ok,psnr,higher,22.0,1.0,3," in csv_text


def many_view_results(seeds=(0,), soft_gain=1.0, methods=("depth-baseline", "depth-soft")):
    """8 views; depth-soft beats the baseline by ``soft_gain`` dB on every view, plus a small per-seed offset."""
    runs = []
    for method in methods:
        for seed in seeds:
            gain = {"depth-baseline": 0.0, "depth-soft": soft_gain}.get(method, 0.5)
            views = [{"index": i, "metrics": {"psnr": 20.0 + 0.1 * i + gain + 0.01 * seed * (i % 2), "depth_l1": 0.1}}
                     for i in range(8)]
            runs.append({"scene": "s", "method": method, "seed": seed, "run_id": f"s/{method}/seed{seed}",
                         "status": "ok", "sweep": None, "views": views, "train": {}, "render": {}})
    return {
        "protocol": {"name": "many", "baseline": "depth-baseline", "iterations": 10, "seeds": list(seeds),
                     "primary_metrics": ["psnr"]},
        "metrics": comparisons.metric_specs(["psnr", "depth_l1"], {"psnr": "higher", "depth_l1": "lower"}),
        "runs": runs,
    }


def test_the_replicates_of_a_comparison_are_seeds_and_the_views_describe_them():
    results = many_view_results(seeds=(0, 1, 2))
    comp = {(c["method"], c["metric"]): c for c in comparisons.compare_to_baseline(results)}
    assert comp[("depth-soft", "psnr")]["n"] == 8  # 8 views described, not 24 pairs
    assert comp[("depth-soft", "psnr")]["seeds"] == 3  # the test's replicates
    row = {r["method"]: r for r in comparisons.summarize(results)}["depth-soft"]["psnr"]
    assert row["n"] == 8 and row["seeds"] == 3 and row["seed_std"] > 0


def seed_results(offsets):
    """8 views; depth-soft's run of seed s is the baseline's of that seed + offsets[s] dB on every view, and the
    baseline's runs differ between seeds by a per-view pattern."""
    runs = []
    for seed, offset in enumerate(offsets):
        for method, gain in (("depth-baseline", 0.0), ("depth-soft", offset)):
            views = [{"index": i, "metrics": {"psnr": 20.0 + 0.1 * i + 0.3 * seed * (i % 3) + gain, "depth_l1": 0.1}}
                     for i in range(8)]
            runs.append({"scene": "s", "method": method, "seed": seed, "run_id": f"s/{method}/seed{seed}",
                         "status": "ok", "sweep": None, "views": views, "train": {}, "render": {}})
    return {
        "protocol": {"name": "seeds", "baseline": "depth-baseline", "iterations": 10,
                     "seeds": list(range(len(offsets))), "primary_metrics": ["psnr"]},
        "metrics": comparisons.metric_specs(["psnr", "depth_l1"], {"psnr": "higher", "depth_l1": "lower"}),
        "runs": runs,
    }


def test_each_seeds_difference_is_the_mean_over_views_of_that_seeds_pair_of_runs():
    comp = {(c["method"], c["metric"]): c for c in comparisons.compare_to_baseline(seed_results([0.5, -1.0]))}
    soft = comp[("depth-soft", "psnr")]
    assert soft["seed_differences"] == {"0": pytest.approx(0.5), "1": pytest.approx(-1.0)}
    assert soft["mean_difference"] == pytest.approx(-0.25)


def test_the_test_is_students_paired_t_over_the_seeds_whatever_the_number_of_views():
    # per-seed differences -0.2, -1.0: mean -0.6, s = 0.566, t = -1.5 on 1 df: p = 0.374 (t table)
    comp = {(c["method"], c["metric"]): c for c in comparisons.compare_to_baseline(seed_results([-0.2, -1.0]))}
    soft = comp[("depth-soft", "psnr")]
    assert soft["p_value"] == pytest.approx(0.3743, abs=1e-4)
    # 95 % interval: -0.6 -+ 12.706 * 0.4
    assert (soft["ci_low"], soft["ci_high"]) == (pytest.approx(-0.6 - 12.7062 * 0.4, abs=1e-3),
                                                 pytest.approx(-0.6 + 12.7062 * 0.4, abs=1e-3))
    assert not comparisons.significant(soft)  # every view moved the same way in both seeds: two runs are two runs
    five = {(c["method"], c["metric"]): c for c in comparisons.compare_to_baseline(
        seed_results([-0.8, -1.0, -1.1, -0.9, -1.2]))}[("depth-soft", "psnr")]
    assert five["seeds"] == 5 and five["p_holm"] < 0.05 and comparisons.significant(five)
    md = report.render_markdown(seed_results([0.5, -1.0]))
    assert "(-0.25)" in md and "(-0.25†)" not in md
    assert "| +0.50 / -1.00 (disagree) |" in md
    assert "(-1.00†)" in report.render_markdown(seed_results([-0.8, -1.0, -1.1, -0.9, -1.2]))
    assert not comparisons.significant({"in_family": False, "p_holm": None, "p_value": 0.001, "mean_difference": -1.0,
                                   "seed_differences": {"0": -1.0, "1": -2.0}})  # exploratory rows are never marked


def test_holm_runs_over_the_declared_family_of_every_scene_together():
    one = seed_results([-0.8, -1.0, -1.1, -0.9, -1.2])
    two = seed_results([-0.8, -1.0, -1.1, -0.9, -1.2])
    two["runs"] += [dict(run, scene="t", run_id=run["run_id"].replace("s/", "t/")) for run in two["runs"]]
    p_one = {c["scene"]: c["p_holm"] for c in comparisons.compare_to_baseline(one) if c["metric"] == "psnr"}
    p_two = {c["scene"]: c["p_holm"] for c in comparisons.compare_to_baseline(two) if c["metric"] == "psnr"}
    assert p_two["s"] == pytest.approx(min(1.0, 2 * p_one["s"])) and p_two["t"] == pytest.approx(p_two["s"])


def test_view_differences_use_only_the_seeds_both_methods_have():
    results = seed_results([0.5, -1.0])
    baseline_seed_1 = [r for r in results["runs"] if r["method"] == "depth-baseline" and r["seed"] == 1]
    results["runs"].remove(baseline_seed_1[0])
    groups = comparisons.group_runs(comparisons.main_runs(results))
    diff = comparisons.paired_view_differences(groups[("s", "depth-soft")], groups[("s", "depth-baseline")], "psnr")
    assert diff == pytest.approx([0.5] * 8)  # seed 1 of depth-soft has no partner: left out, not averaged in


def test_the_declared_family_does_not_change_with_the_runs_that_exist():
    two = comparisons.compare_to_baseline(many_view_results())
    three = comparisons.compare_to_baseline(many_view_results(methods=("depth-baseline", "depth-soft", "depth-hard")))
    p_two = {c["method"]: c["p_holm"] for c in two if c["metric"] == "psnr"}
    p_three = {c["method"]: c["p_holm"] for c in three if c["metric"] == "psnr"}
    # the protocol records no method list here, so the family is the methods run: declared in a real protocol
    assert p_two["depth-soft"] <= p_three["depth-soft"]
    declared = many_view_results()
    declared["protocol"]["compared"] = ["depth-soft", "depth-hard"]  # depth-hard declared but not run: p = 1
    with_missing = {c["method"]: c["p_holm"]
                    for c in comparisons.compare_to_baseline(declared) if c["metric"] == "psnr"}
    assert with_missing["depth-soft"] == pytest.approx(p_three["depth-soft"])
    assert all(c["p_holm"] is None for c in two if c["metric"] == "depth_l1")  # not primary: exploratory


def test_the_report_counts_the_declared_tests_that_have_no_two_paired_seeds():
    declared = many_view_results(seeds=(0, 1))
    declared["protocol"]["compared"] = ["depth-soft", "depth-hard"]  # depth-hard declared, never run
    found = comparisons.compare_to_baseline(declared)
    # primary metric psnr x two declared methods x one scene: depth-hard's test is untestable
    assert comparisons.family_coverage(declared, found) == (1, 2)
    assert "1 of its 2 tests here" in report.render_markdown(declared)
    complete = many_view_results(seeds=(0, 1))
    assert comparisons.family_coverage(complete, comparisons.compare_to_baseline(complete))[0] == 0


def test_bold_marks_a_leader_only_when_a_run_level_test_separates_it():
    separated = report.render_markdown(many_view_results(seeds=(0, 1, 2, 3, 4), soft_gain=1.0))
    assert "**21.36 ± 0.25**" in separated
    tied = report.render_markdown(many_view_results(seeds=(0, 1, 2, 3, 4), soft_gain=0.0))
    assert "**" not in tied.split("| method |")[1].split("###")[0]
    one_seed = report.render_markdown(many_view_results(soft_gain=1.0))  # one run each: not established
    assert "**" not in one_seed.split("| method |")[1].split("###")[0]


def test_results_record_and_print_the_evaluation_protocol_and_the_run_to_run_spread():
    from depth_strategies.core.metrics import EVALUATION_PROTOCOL

    results = many_view_results(seeds=(0, 1))
    results["evaluation"] = dict(EVALUATION_PROTOCOL)
    md = report.render_markdown(results)
    assert "Evaluation protocol:" in md and "- background: white" in md
    assert "### Run-to-run spread" in md and "psnr std over seeds" in md


def test_a_protocol_declares_its_family_with_known_names():
    base = {"name": "p", "scenes": [{"name": "b", "generate": {}}], "methods": ["depth-baseline", "depth-soft"]}
    protocol = parse_protocol({**base, "primary_metrics": ["psnr"], "compared": ["depth-soft"]}, "p.yaml")
    assert comparisons.declared_family(dataclasses.asdict(protocol)) == [("depth-soft", "psnr")]
    with pytest.raises(ProtocolError, match="primary_metrics"):
        parse_protocol({**base, "primary_metrics": ["nope"]}, "p.yaml")
    with pytest.raises(ProtocolError, match="compared"):
        parse_protocol({**base, "compared": ["depth-baseline"]}, "p.yaml")


# ------------------------------------------------------------------------------------------- progress
def test_progress_line_glued_to_console_output_is_skipped_not_fatal():
    assert parse_progress('{"step": 230, "total": 1000}\n') == (230, 1000)
    # what a shared stdout produced on lego (nerfstudio's console and a progress line on one line)
    assert parse_progress('{"step": 500, "total": 1000}500 (50.00%)   3 s, 103.944 ms') is None
    assert parse_progress("220 (22.00%)        866.201 ms\n") is None
    assert parse_progress('{"step": "x", "total": 1000}') is None
    assert parse_progress('{"total": 1000}') is None
    assert parse_progress("[1, 2]") is None


def test_worker_console_chatter_never_reaches_the_progress_channel(tmp_path):
    """The worker's stdout (partial lines, no newlines) goes to the log; progress comes intact over its own pipe."""
    fake = tmp_path / "fake_worker.py"
    fake.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            channel = os.fdopen(int(sys.argv[2]), "w")
            for step in (1, 2, 3):
                sys.stdout.write(f"{step} (33.00%) 1 s, 37.431 ms")  # nerfstudio-style partial line
                sys.stdout.flush()
                channel.write(json.dumps({"step": step, "total": 3}) + "\\n")
                channel.flush()
            print("done", file=sys.stderr)
            """
        )
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    seen = []
    code = run_in_subprocess(
        {"run_dir": str(run_dir)}, run_dir / "log.txt", lambda s, t: seen.append((s, t)), (sys.executable, str(fake))
    )
    assert code == 0
    assert seen == [(1, 3), (2, 3), (3, 3)]
    log = (run_dir / "log.txt").read_text()
    assert "3 (33.00%) 1 s, 37.431 ms" in log and "done" in log and '"step"' not in log


# ------------------------------------------------------------------------------------------- end to end
def _compare_cmd(protocol: Path, out: Path):
    return [console_script("ds-compare"), str(protocol), "--output", str(out)]


def _env():
    return {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def failing_protocol(tmp_path_factory) -> Path:
    """The tiny protocol plus a variant that fails at start-up (an invalid override)."""
    data = yaml.safe_load(TINY_PROTOCOL.read_text())
    data["methods"].append(
        {"name": "broken", "base": "depth-hard", "overrides": {"pipeline.model.guided_fraction": 2.0}}
    )
    path = tmp_path_factory.mktemp("protocol") / "tiny_with_failure.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_compare_end_to_end_interrupted_then_resumed(failing_protocol, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _compare_cmd(failing_protocol, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(),
        start_new_session=True,
        # as from a terminal: a shell that started pytest in the background (`cmd &`) passes SIGINT down ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = out / "runs" / "builtin" / "depth-baseline" / "seed0" / "result.json"
    deadline = time.time() + 600
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    assert first.exists(), "the first run never finished"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C while the second run trains
    proc.wait(timeout=120)
    assert not (out / "results.json").exists(), "an interrupted comparison must not write results"
    first_mtime = first.stat().st_mtime

    done = subprocess.run(_compare_cmd(failing_protocol, out), capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Reusing 1 finished run" in done.stdout
    assert first.stat().st_mtime == first_mtime, "a finished run was trained again"
    results = json.loads((out / "results.json").read_text())
    by_method = {r["method"]: r for r in results["runs"]}
    assert set(by_method) == {"depth-baseline", "depth-hybrid", "broken", "depth-hybrid@fraction=0.25"}
    assert by_method["broken"]["status"] == "failed" and "guided fraction" in by_method["broken"]["error"]
    for name in ("depth-baseline", "depth-hybrid", "depth-hybrid@fraction=0.25"):
        run = by_method[name]
        assert run["status"] == "ok" and len(run["views"]) == 3
        for view in run["views"]:
            assert all(math.isfinite(v) for v in view["metrics"].values())
        assert run["curve"] and run["curve"][-1]["step"] == 6
        assert run["train"]["seconds_per_iteration"] > 0 and run["render"]["frames_per_second"] > 0
    assert results["software"]["nerfstudio"] == "1.1.5" and results["protocol"]["name"] == "tiny"
    md = (out / "results.md").read_text()
    assert "| broken | **failed**:" in md and "Ablation `fraction`" in md
    for name in (
        "results.csv",
        "plots/curves_builtin.png",
        "plots/bars_builtin.png",
        "plots/scatter_builtin.png",
        "plots/sweep_builtin_fraction.png",
        "panels/panel_builtin_r_0.png",
        "panels/panel_builtin_r_1.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # nerfstudio's own tools work on the runs' output
    config = Path(by_method["depth-hybrid"]["config"])
    assert config.is_file() and next(config.parent.glob("nerfstudio_models/step-*.ckpt"))
    # the tables can be regenerated from results.json alone
    (out / "results.md").unlink()
    subprocess.run(
        [*_compare_cmd(failing_protocol, out), "--report-only"],
        check=True,
        capture_output=True,
        env=_env(),
        timeout=300,
    )
    assert (out / "results.md").read_text() == md
    # --report-only rebuilds from the run folders: a run whose folder is gone stays as results.json recorded it, and
    # the runs of a second seed, which never ran, are reported missing
    sweep_run = by_method["depth-hybrid@fraction=0.25"]["run_id"]
    shutil.rmtree(out / "runs" / sweep_run)
    subprocess.run([*_compare_cmd(failing_protocol, out), "--report-only", "--seeds", "2"], check=True,
                   capture_output=True, env=_env(), timeout=300)
    regenerated = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in regenerated["runs"]} == set(by_method)
    assert regenerated["missing"] and all(m.endswith("/seed1") for m in regenerated["missing"])
    assert len(regenerated["missing"]) == len(by_method)
    sweep_run = regenerated["missing"][0]
    report = (out / "results.md").read_text()
    assert f"**Incomplete**: {len(by_method)} runs of the protocol have no finished result yet (`{sweep_run}`" in report
    # a report made by another command than the one that trained says so (the same command: no line, as above)
    assert f"Report: `ds-compare {failing_protocol} --output {out} --seeds 2 --report-only`, from the stored runs" in (
        report), report[:1500]


@pytest.mark.slow
def test_a_robustness_comparison_runs_each_condition_reports_it_and_refuses_a_condition_free_method_that_reads_depth(
    tmp_path,
):
    data = yaml.safe_load(TINY_PROTOCOL.read_text())
    data.update(
        name="tiny-robustness",
        methods=["depth-baseline", "depth-hybrid", {"name": "soft-free", "base": "depth-soft"}],
        sweeps=[],
        conditions=[{"name": "clean", "kind": "clean", "level": 0},
                    {"name": "sparse", "kind": "sparse", "level": 0.9, "degradations": ["sparse(density=0.1)"]}],
        condition_free=["depth-baseline", "soft-free"],
    )
    protocol = tmp_path / "tiny_robustness.yaml"
    protocol.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    done = subprocess.run(_compare_cmd(protocol, out), capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    trained = sorted(p.parent.relative_to(out / "runs").as_posix() for p in (out / "runs").rglob("job.json"))
    assert trained == ["builtin/clean/depth-hybrid/seed0", "builtin/depth-baseline/seed0",
                       "builtin/soft-free/seed0", "builtin/sparse/depth-hybrid/seed0"]
    groups = {(r["scene"], r["method"]): r for r in results["runs"]}
    assert groups[("builtin/sparse", "depth-baseline")]["shared"] and groups[("builtin/clean", "depth-baseline")]
    assert groups[("builtin/sparse", "soft-free")]["status"] == "failed"
    assert "reads training depth" in groups[("builtin/sparse", "soft-free")]["error"]
    assert groups[("builtin/sparse", "depth-hybrid")]["status"] == "ok"
    md = (out / "results.md").read_text()
    assert "## Scene `builtin/sparse`" in md and "### Robustness on `builtin`: sparse, psnr" in md
    assert (out / "plots" / "robustness_builtin_sparse.png").stat().st_size > 0


@pytest.mark.parametrize("name", ["lego", "lego-fewview", "robustness"])
def test_object_reference_of_the_lego_protocols_uses_the_object_settings_of_the_methods(name):
    methods = {m.name: m for m in load_protocol(name).methods}
    assert dict(methods["depth-nerfacto-object"].overrides) == OBJECT_SETTINGS


@pytest.mark.parametrize("name", ["lego", "lego-fewview", "ablation"])
def test_mask_variants_use_the_mask_weight_of_the_hard_strategy(name):
    from depth_strategies.methods import LAMBDA_EMPTY

    methods = {m.name: m for m in load_protocol(name).methods}
    for variant in ("depth-baseline+mask", "depth-soft+mask"):
        assert methods[variant].overrides["pipeline.model.empty_space_mult"] == LAMBDA_EMPTY
    assert methods["depth-hard-nomask"].overrides == {"pipeline.model.empty_space_mult": 0.0}


def test_the_report_states_how_each_method_uses_depth_with_its_lambdas():
    protocol = load_protocol("lego-fewview")
    results = many_view_results()
    results["protocol"] = json.loads(json.dumps(dataclasses.asdict(protocol), default=str))
    lines = tables.depth_use_lines(results["protocol"])
    assert "- depth-baseline: no depth (RGB only)" in lines
    assert "- depth-hard-nomask: guided_fraction 0.75, hard_depth_mult 0.015" in lines
    assert "- depth-baseline+mask: empty_space_mult 0.015" in lines
    assert any(line.startswith("- depth-nerfacto-nsdata: nerfstudio's") for line in lines)
    assert "How each method uses depth" in report.render_markdown(results)
    # a study run with --methods lists only the methods it ran
    assert tables.depth_use_lines(results["protocol"], {"depth-baseline"}) == ["- depth-baseline: no depth (RGB only)"]


@pytest.mark.slow
def test_room_quick_runs_on_the_generated_capture_with_the_usual_tables(tmp_path):
    """room-quick, made seconds-small (a 32x24 room, 4 iterations, three of its methods): the capture is generated,
    read as nerfstudio-data by every method and the reference, and reported like any scene."""
    data = yaml.safe_load((Path(load_protocol("room-quick").source)).read_text())
    data.update(name="tiny-room", iterations=4, eval_every=2, seeds=1,
                methods=["depth-baseline", "depth-hybrid", {"name": "depth-nerfacto", "external": "depth-nerfacto"}])
    data["scenes"][0]["room"] = {"width": 32, "height": 24, "views": 8, "test_every": 4, "depth_factor": 4, "seed": 0}
    protocol = tmp_path / "tiny_room.yaml"
    protocol.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    done = subprocess.run(_compare_cmd(protocol, out), capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert {r["method"]: r["status"] for r in results["runs"]} == {
        "depth-baseline": "ok", "depth-hybrid": "ok", "depth-nerfacto": "ok"}
    for run in results["runs"]:
        assert len(run["views"]) == 2 and all(math.isfinite(v["metrics"]["depth_l1"]) for v in run["views"])
        assert "NerfstudioDataParserConfig" in Path(run["config"]).read_text()
    assert (out / "scenes" / "room" / "transforms.json").is_file()
    assert "## Scene `room`" in (out / "results.md").read_text()


def _fake_execute(tmp_path, behaviour):
    """``execute`` over the quick protocol's first run with a fake worker: ``behaviour(job)`` returns its exit code."""
    from depth_strategies.study.compare import execute

    protocol = load_protocol("quick")
    runs = expand_runs(protocol)[:1]

    def runner(job, log_path, on_progress):
        log_path.write_text("820 (82.00%) 993.946 ms 2 m, 58 s 1.07 K\n")  # a progress fragment, as nerfstudio's
        return behaviour(job)

    (tmp_path / "transforms_test.json").write_text(json.dumps({"frames": [{}, {}]}))  # the scene's two test views
    (outcome,) = execute(protocol, runs, {"builtin": tmp_path}, tmp_path / "out", "cpu", runner=runner)
    return outcome


def test_a_worker_killed_by_a_signal_is_reported_as_such(tmp_path):
    outcome = _fake_execute(tmp_path, lambda job: -signal.SIGTERM)
    assert outcome.result["status"] == "failed"
    assert outcome.result["error"].startswith("worker killed by SIGTERM") and "820" not in outcome.result["error"]


def test_a_complete_result_counts_even_if_its_worker_died_afterwards(tmp_path):
    def write_then_die(job):
        result = {"status": "ok", "fingerprint": job["fingerprint"], "views": [], "train": {}, "render": {}}
        (Path(job["run_dir"]) / "result.json").write_text(json.dumps(result))
        return -signal.SIGTERM

    outcome = _fake_execute(tmp_path, write_then_die)
    assert outcome.result["status"] == "ok"


def test_the_consistency_script_prints_each_conditions_training_depth_inconsistency(tmp_path):
    data = yaml.safe_load(TINY_PROTOCOL.read_text())
    data.update(name="tiny-consistency", methods=["depth-baseline", "depth-hybrid-uncertain"], sweeps=[],
                conditions=[{"name": "clean", "kind": "clean", "level": 0},
                            {"name": "mono", "kind": "monocular", "level": 2.0,
                             "degradations": ["monocular(scale_lo=0.5, scale_hi=2.0, shift_lo=-1.0, shift_hi=1.0)"]}])
    protocol = tmp_path / "tiny_consistency.yaml"
    protocol.write_text(yaml.safe_dump(data))
    script = Path(__file__).resolve().parents[2] / "scripts" / "depth_consistency.py"
    done = subprocess.run([sys.executable, str(script), str(protocol), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {line.split("|")[2].strip(): [float(v) for v in line.split("|")[3].split(",")]
            for line in done.stdout.splitlines() if line.startswith("| builtin |")}
    assert set(rows) == {"clean", "mono"}
    assert rows["clean"][2] < 0.1 < rows["mono"][1]  # exact depth agrees across views; monocular depth does not


def test_across_scenes_the_unit_is_the_scene_each_scenes_run_level_mean_difference():
    gains = {"a": 1.0, "b": 2.0, "c": 3.0}
    runs = []
    for scene, gain in gains.items():
        for seed, jitter in enumerate((0.0, 0.1, -0.1)):
            for method, delta in (("depth-baseline", 0.0), ("depth-soft", gain + jitter)):
                views = [{"index": i, "metrics": {"psnr": 20.0 + 0.1 * i + delta, "depth_l1": 0.1}} for i in range(4)]
                runs.append({"scene": scene, "method": method, "seed": seed, "run_id": f"{scene}/{method}/seed{seed}",
                             "status": "ok", "sweep": None, "views": views, "train": {}, "render": {}})
    results = {"protocol": {"name": "multi", "baseline": "depth-baseline", "iterations": 10, "seeds": [0, 1, 2],
                            "primary_metrics": ["psnr"]},
               "metrics": comparisons.metric_specs(["psnr", "depth_l1"], {"psnr": "higher", "depth_l1": "lower"}),
               "runs": runs}
    (entry,) = [e for e in comparisons.across_scenes(results) if e["metric"] == "psnr"]
    assert entry["scene_differences"] == pytest.approx({"a": 1.0, "b": 2.0, "c": 3.0})  # seeds' jitter averages out
    # mean 2, sd 1 over 3 scenes: 2 -+ t(0.975, 2) * 1 / sqrt(3) = 2 -+ 4.303 * 0.5774
    assert entry["mean_difference"] == pytest.approx(2.0)
    assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((2.0 - 2.4841, 2.0 + 2.4841), abs=1e-3)
    table = tables.across_scenes_table(results)
    assert "| depth-soft | psnr | a +1.00, b +2.00, c +3.00 | +2.00 [-0.48, +4.48] |" in table
    assert "## Across scenes" in report.render_markdown(results)
    one_scene = {**results, "runs": [r for r in runs if r["scene"] == "a"]}
    assert comparisons.across_scenes(one_scene) == [] and "## Across scenes" not in report.render_markdown(one_scene)


def test_an_rgbd_scene_is_imported_in_place_from_the_data_root_with_the_protocol_options(kitchen_src, tmp_path):
    protocol = parse_protocol({**MINIMAL, "scenes": [  # kitchen_src: 12 real frames (0, 5, ..., 55), linked
        {"name": "k", "rgbd": {"source": kitchen_src.name, "stride": 2, "downscale": 4, "test_every": 3}}]}, "t.yaml")
    scene = protocol.scenes[0]

    folder = prepare_scene(scene, tmp_path / "out", kitchen_src.parent)

    transforms = json.loads((folder / "transforms.json").read_text())
    assert transforms["generator"]["stride"] == 2 and transforms["generator"]["downscale"] == 4
    assert (transforms["w"], transforms["h"]) == (160, 120)
    assert len(transforms["frames"]) == 6  # frames 0, 10, ..., 50
    assert len(transforms["test_filenames"]) == 2  # the 1st and 4th imported frame (every 3rd)
    assert not set(transforms["test_filenames"]) & set(transforms["train_filenames"])
    written = (folder / "transforms.json").stat().st_mtime_ns
    assert prepare_scene(scene, tmp_path / "out", kitchen_src.parent) == folder  # same recipe: not imported again
    assert (folder / "transforms.json").stat().st_mtime_ns == written


def test_panel_views_keep_the_first_n_test_views_or_the_listed_ones_and_the_panels_show_as_many():
    from depth_strategies.viz.figures import panel_count

    counted = parse_protocol({**MINIMAL, "panel_views": 3}, "t.yaml")
    listed = parse_protocol({**MINIMAL, "panel_views": [4, 15, 9]}, "t.yaml")
    assert panel_indices(counted, 20) == [0, 1, 2] and panel_indices(counted, 2) == [0, 1]
    assert panel_indices(listed, 20) == [4, 15, 9]
    with pytest.raises(ProtocolError, match="test view 15, but the scene has 10 test views"):
        panel_indices(listed, 10)
    assert panel_count({"protocol": {"panel_views": [4, 15, 9, 11]}}) == 4
    assert panel_count({"protocol": {"panel_views": 5}}) == 5
