"""scripts/same_run.py: two runs are the same when every metric of every test view is equal."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("same_run", REPO / "scripts" / "same_run.py")
same_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(same_run)


def result(psnrs, lpips=None, source="a"):
    return {"provenance": {"source_hash": source, "torch_threads": 1},
            "views": [{"index": i, "metrics": {"psnr": p, "lpips": lpips}} for i, p in enumerate(psnrs)]}


def test_the_largest_difference_is_taken_over_views_and_metrics_without_values_are_skipped():
    gaps = same_run.view_differences(result([20.0, 21.0]), result([20.0, 21.5]))
    assert gaps == {"psnr": pytest.approx(0.5)}
    assert math.isnan(same_run.view_differences(result([20.0], lpips=0.1), result([20.0]))["lpips"])


def test_runs_that_scored_other_views_are_refused():
    with pytest.raises(ValueError, match="different test views"):
        same_run.view_differences(result([20.0, 21.0]), result([20.0]))


def test_exit_status_says_identical_or_not_and_the_differing_provenance_is_named(tmp_path, capsys):
    for name, psnrs, source in (("a", [20.0, 21.0], "x"), ("b", [20.0, 21.0], "y"), ("c", [20.0, 21.1], "x")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps(result(psnrs, source=source)))
    assert same_run.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "identical" in out and "source_hash" in out and "differs" in out
    assert same_run.main([str(tmp_path / "a"), str(tmp_path / "c" / "result.json")]) == 1
    assert "not identical" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="does not exist"):
        same_run.main([str(tmp_path / "a"), str(tmp_path / "missing")])
