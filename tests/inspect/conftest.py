"""Scenes of the inspection tests: the built-in scene at 64 px (12 training views: enough pixels per view for the
sparsity and sensor-grid measurements, and neighbours on every side for the multi-view ones) and lego-10 (the
robustness study's split of the real lego, skipped where ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from depth_strategies.scenes.builtin import make_scene


@pytest.fixture(scope="session")
def scene64(tmp_path_factory) -> Path:
    """The built-in scene, 64x64, 12 train / 2 val / 2 test views, exact depth."""
    return make_scene(tmp_path_factory.mktemp("inspect") / "scene64", resolution=64, views_train=12, views_val=2,
                      views_test=2, seed=0, supersample=1)


@pytest.fixture(scope="session")
def lego10(lego_dir, tmp_path_factory) -> Path:
    """lego-10 as the robustness protocol splits it (10 training views of the test split, which has depth)."""
    from depth_strategies.scenes.split import split_scene

    out = tmp_path_factory.mktemp("inspect") / "lego10"
    split_scene(lego_dir, out, from_split="test", n_train=10, n_val=5, n_test=20, seed=0)
    return out
