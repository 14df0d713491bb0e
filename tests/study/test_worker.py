"""One run of ds-compare (``study/worker.run_job``): the same seed gives the same numbers."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from depth_strategies.methods import load_size_profile
from depth_strategies.study.runs import RunSpec
from depth_strategies.study.worker import run_job


def job(tmp_path, scene, name):
    spec = RunSpec("tiny", "depth-hybrid", "depth-hybrid", None, tuple(load_size_profile("tiny").items()), 0, 12)
    run_dir = tmp_path / name
    return {"run": dataclasses.asdict(spec), "run_id": spec.run_id, "fingerprint": spec.fingerprint(),
            "data": str(scene), "run_dir": str(run_dir), "output_dir": str(run_dir / "nerfstudio"), "device": "cpu",
            "eval_every": 0, "curve_views": 1, "panel_indices": []}


@pytest.mark.slow
def test_a_run_with_the_same_seed_gives_the_same_numbers_whatever_state_the_process_is_in(tiny_scene, tmp_path):
    random.seed(1)
    np.random.seed(1)
    first = run_job(job(tmp_path, tiny_scene, "a"))
    random.seed(2)  # Python's and NumPy's generators in another state: nerfstudio's samplers draw from them
    np.random.seed(2)
    second = run_job(job(tmp_path, tiny_scene, "b"))
    assert first["status"] == second["status"] == "ok"
    assert [v["metrics"] for v in first["views"]] == [v["metrics"] for v in second["views"]]
