"""scripts/seed_differences.py: each seed's difference to the baseline of the same seed, from hand-written results."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def run(scene, method, seed, psnr):
    return {"scene": scene, "method": method, "seed": seed, "status": "ok",
            "run_id": f"{scene}/{method}/seed{seed}", "views": [{"index": i, "metrics": {"psnr": p}}
                                                            for i, p in enumerate(psnr)]}


def test_each_seed_is_compared_with_the_baseline_of_its_own_seed_and_the_gap_between_seeds_is_printed(tmp_path):
    results = {"protocol": {"baseline": "depth-baseline"}, "runs": [
        run("s/c", "depth-baseline", 0, [20.0, 22.0]), run("s/c", "depth-baseline", 1, [23.0, 23.0]),
        run("s/c", "depth-soft", 0, [22.0, 24.0]), run("s/c", "depth-soft", 1, [22.0, 22.0]),
    ]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "seed_differences.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    # baseline means 21 and 23; soft 23 and 22: +2 in seed 0, -1 in seed 1, 3 apart
    assert "| s/c | depth-baseline (mean) | 21.000 | 23.000 |" in out
    # mean +0.5, s = 2.121, t on 1 df: p = 0.795, interval 0.5 -+ 12.706 * 1.5
    assert "| s/c | depth-soft | +2.000 | -1.000 | 3.000 | +0.500 | [-18.559, +19.559] | 0.795 |" in out


def test_pairs_compare_each_method_with_its_own_reference_and_average_the_pairs_per_seed(tmp_path):
    results = {"protocol": {"baseline": "a"}, "runs": [
        run("s", "a", 0, [20.0]), run("s", "a", 1, [20.0]), run("s", "a-off", 0, [21.0]), run("s", "a-off", 1, [23.0]),
        run("s", "b", 0, [10.0]), run("s", "b", 1, [10.0]), run("s", "b-off", 0, [9.0]), run("s", "b-off", 1, [12.0]),
    ]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "seed_differences.py"), str(tmp_path),
                          "--pairs", "a-off:a", "b-off:b"], capture_output=True, text=True, check=True).stdout
    assert "| s | a-off − a | +1.000 | +3.000 | 2.000 | +2.000 |" in out
    assert "| s | b-off − b | -1.000 | +2.000 | 3.000 | +0.500 |" in out
    # per seed: (1 - 1) / 2 = 0 and (3 + 2) / 2 = 2.5; mean 1.25
    assert "| s | mean over the 2 pairs | +0.000 | +2.500 | 2.500 | +1.250 |" in out
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "seed_differences.py"), str(tmp_path),
                          "--pairs", "a-off"], capture_output=True, text=True)
    assert bad.returncode == 2 and "METHOD:REFERENCE" in bad.stderr
