"""The two GPU scripts, smoke-run on the CPU with tiny sizes as the development machines allow (no GPU here):
``scripts/gpu_check.sh`` (environment, ds-bench, a short lego-style pair) and ``scripts/gpu_study.sh`` (a protocol
under a wall-clock limit, resumed by a second call). The scenes are generated, so neither needs ../shared/data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(REPO / "scripts" / script), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore", **env})
    assert proc.returncode == 0, f"{script} exited with {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def small_protocol(tmp_path_factory) -> Path:
    """A GPU-style protocol (nerfacto's sizes, on CUDA) on a small generated scene: the script's overrides make it
    run on the CPU."""
    path = tmp_path_factory.mktemp("gpu_study") / "small-gpu.yaml"
    path.write_text(yaml.safe_dump({
        "name": "small-gpu", "description": "smoke test of scripts/gpu_study.sh",
        "scenes": [{"name": "gen", "generate": {"resolution": 40, "views_train": 4, "views_val": 1, "views_test": 2,
                                                "seed": 0}}],
        "methods": ["depth-baseline", "depth-hybrid"], "baseline": "depth-baseline", "sizes": None,
        "iterations": 2000, "seeds": 2, "device": "cuda", "eval_every": 0, "curve_views": 1, "panel_views": 1,
    }))
    return path


def test_gpu_study_stops_at_its_limit_and_the_next_call_resumes_and_writes_everything(small_protocol, tmp_path):
    out = tmp_path / "out"
    smoke = {"GPU_STUDY_DEVICE": "cpu", "GPU_STUDY_SIZES": "tiny", "GPU_STUDY_ITERATIONS": "4", "GPU_STUDY_SEEDS": "1",
             "GPU_STUDY_JOBS": "1"}
    stopped = run_script("gpu_study.sh", str(small_protocol), str(out), env={**smoke, "GPU_STUDY_LIMIT_S": "1"})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_at_limit"] and not summary["complete"] and summary["expected"] == 2
    assert "call the script again with the same OUT to resume" in stopped.stdout

    run_script("gpu_study.sh", str(small_protocol), str(out), env=smoke)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["finished"] == 2 and not summary["stopped_at_limit"]
    assert summary["environment"]["torch"] and summary["wall_time_s"] > 0
    as_run = yaml.safe_load((out / "protocol.yaml").read_text())
    assert (as_run["device"], as_run["sizes"], as_run["iterations"], as_run["seeds"]) == ("cpu", "tiny", 4, 1)
    results = json.loads((out / "compare" / "results.json").read_text())
    assert {r["method"] for r in results["runs"]} == {"depth-baseline", "depth-hybrid"}
    assert (out / "compare" / "results.md").is_file()
    for run in summary["runs"].values():
        assert run["psnr"] > 0 and run["seconds_per_iteration"] > 0


def test_gpu_study_refuses_to_run_without_a_gpu_unless_told_to_smoke_test(small_protocol, tmp_path):
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_study.sh"), str(small_protocol), str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr and "GPU_STUDY_DEVICE=cpu" in proc.stderr


def test_gpu_check_smoke_run_on_the_cpu_writes_its_summary(tmp_path):
    # a Blender-format scene with depth in its test split stands in for lego (the check splits it as lego-10)
    scene = tmp_path / "scene"
    run_cli(["ds-make-scene", str(scene), "--resolution", "32", "--views-train", "2", "--views-val", "1",
             "--views-test", "32"], cwd=tmp_path)
    out = tmp_path / "check"
    run_script("gpu_check.sh", str(scene), str(out),
               env={"GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_SIZES": "tiny", "GPU_CHECK_ITERATIONS": "4"})
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["lego10"]) == {"depth-baseline", "depth-hybrid"}
    assert all(run["status"] == "ok" and run["ns_eval"] for run in summary["lego10"].values())
    assert summary["bench"] and summary["environment"]["torch"]
    counts = summary["bench"]["op_counts"]
    assert counts["depth-hybrid"]["syncs"] == counts["depth-baseline"]["syncs"]
    assert {"depth-baseline", "nerfacto"} <= set(summary["profile"]["methods"])  # a table per row, references too
    assert (out / "profile" / "profile.md").read_text().count("### ") == len(summary["profile"]["methods"])
