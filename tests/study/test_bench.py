"""ds-bench measures; it does not judge: the functions run and compute ratios (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from depth_strategies.core.training import TrainingLoop
from depth_strategies.study.bench import REFERENCES, bench_config, benchmark, ratios, report_lines, verdict
from tests.conftest import run_cli


def test_ratios_are_medians_of_same_round_ratios_so_machine_drift_cancels():
    times = {"depth-baseline": [1.0, 3.0, 2.0], "depth-hard": [2.2, 2.4, 9.0]}
    result = ratios(times)
    assert result["depth-baseline"] == (2.0, 1.0)
    # per-round ratios 2.2, 0.8, 4.5: median 2.2 (the ratio of the medians, 2.4 / 2.0, would say 1.2)
    assert result["depth-hard"] == (pytest.approx(2.4), pytest.approx(2.2))
    # a machine twice as slow in round 2 changes no ratio
    drift = ratios({"depth-baseline": [1.0, 2.0, 1.0], "depth-soft": [1.1, 2.2, 1.1]})
    assert drift["depth-soft"][1] == pytest.approx(1.1)


def test_benchmark_times_every_method_in_interleaved_rotated_rounds(tiny_scene, monkeypatch):
    order = []
    original = TrainingLoop.run

    def run(self, iterations):
        order.append(self.config.method_name)
        return original(self, iterations)

    monkeypatch.setattr(TrainingLoop, "run", run)
    times = benchmark(tiny_scene, ["depth-baseline", "depth-hybrid"], "tiny", "cpu", warmup=1, iterations=1, rounds=2)
    assert set(times) == {"depth-baseline", "depth-hybrid"}
    timed = order[2:]  # after one warm-up call each
    assert timed == ["depth-baseline", "depth-hybrid", "depth-hybrid", "depth-baseline"]
    assert all(len(t) == 2 and all(s > 0 for s in t) for t in times.values())


def test_verdicts_compare_strategies_with_the_baseline_and_the_baseline_with_nerfacto():
    result = ratios({"depth-baseline": [1.0], "depth-hard": [1.05], "depth-hybrid": [1.2], "nerfacto": [0.8],
                     "depth-nerfacto": [0.9]})
    assert verdict("depth-hard", result) == "ok"
    assert verdict("depth-hybrid", result) == "SLOWER THAN TARGET"
    assert verdict("depth-baseline", result) == "1.250 x nerfacto: SLOWER THAN TARGET"  # one round: 1 / 0.8
    assert verdict("nerfacto", result) == "reference"
    assert verdict("depth-baseline", ratios({"depth-baseline": [1.0], "nerfacto": [1.0]})).endswith("ok")
    assert any("depth-nerfacto" in line for line in report_lines(result))


def test_reference_rows_build_and_train_at_the_same_sizes(tiny_scene):
    names = ["depth-baseline", *REFERENCES]
    times = benchmark(tiny_scene, names, "tiny", "cpu", warmup=1, iterations=1, rounds=1)
    assert set(times) == set(names)
    nerfacto = bench_config("nerfacto").pipeline.model
    obj = bench_config("depth-nerfacto-object").pipeline.model
    assert not nerfacto.disable_scene_contraction and obj.disable_scene_contraction and obj.near_plane == 2.0


def test_variants_and_references_override_the_size_profile(tiny_scene):
    from depth_strategies.study.bench import build_timers

    names = ["depth-baseline", "nerfacto", "depth-baseline/v0.2", "depth-baseline/eager"]
    timers = build_timers(tiny_scene, names, "cpu", "cpu", warmup=1)
    models = {name: loop.config.pipeline.model for name, loop in timers.items()}
    assert models["depth-baseline"].compile_for_rendering  # the 'cpu' profile's
    assert not models["depth-baseline/eager"].compile_for_rendering
    v02 = models["depth-baseline/v0.2"]
    assert not (v02.compile_for_rendering or v02.fused_hash_grids or v02.sample_inside_box)
    assert not (models["nerfacto"].compile_for_rendering or models["nerfacto"].fused_hash_grids)


def test_ds_bench_ops_counts_each_methods_aten_ops_and_host_syncs_beside_the_time(tiny_scene, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli(["ds-bench", "--data", str(tiny_scene), "--sizes", "tiny", "--methods", "depth-hard",
                    "--references", "--warmup", "1", "--iterations", "1", "--rounds", "1", "--ops",
                    "--output", str(out)], cwd=tmp_path)
    counts = json.loads(out.read_text())["op_counts"]
    assert set(counts) == {"depth-baseline", "depth-hard"}
    assert counts["depth-hard"]["ops"] > counts["depth-baseline"]["ops"]  # the guide and the losses are extra ops
    assert counts["depth-hard"]["syncs"] == counts["depth-baseline"]["syncs"]  # but no extra sync
    assert "aten ops/step" in proc.stdout and "host syncs/step" in proc.stdout


def test_ds_bench_profile_writes_each_methods_ops_ranked_by_self_time(tiny_scene, tmp_path):
    out = tmp_path / "profile"
    proc = run_cli(["ds-bench", "--data", str(tiny_scene), "--sizes", "tiny", "--methods", "depth-hybrid",
                    "--references", "--warmup", "1", "--iterations", "1", "--rounds", "1", "--profile", str(out),
                    "--profile-steps", "2", "--profile-top", "5"], cwd=tmp_path)
    profiled = json.loads((out / "profile.json").read_text())
    assert profiled["steps"] == 2 and set(profiled["methods"]) == {"depth-baseline", "depth-hybrid"}
    for summary in profiled["methods"].values():
        assert set(summary) == {"cpu"}  # no CUDA clock on the CPU
        ops = summary["cpu"]
        assert len(ops) == 5 and all(op["name"] and op["self_cpu_ms"] > 0 and op["calls"] > 0 for op in ops)
        times = [op["self_cpu_ms"] for op in ops]
        assert times == sorted(times, reverse=True) and 0 < sum(op["share"] for op in ops) <= 1
    table = (out / "profile.md").read_text()
    assert "### depth-hybrid: ops by host (CPU) self time, per training step" in table
    assert "Profiles:" in proc.stdout
