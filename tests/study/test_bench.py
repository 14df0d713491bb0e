"""ds-bench measures; it does not judge: the functions run and compute ratios (no timing assertions)."""

from __future__ import annotations

import pytest

from depth_strategies.study.bench import benchmark, ratios


def test_ratios_are_medians_relative_to_the_baseline():
    times = {"depth-baseline": [1.0, 3.0, 2.0], "depth-hard": [2.2, 2.4, 9.0]}
    result = ratios(times)
    assert result["depth-baseline"] == (2.0, 1.0)
    assert result["depth-hard"] == (pytest.approx(2.4), pytest.approx(1.2))


def test_benchmark_times_every_method_in_interleaved_rounds(tiny_scene):
    times = benchmark(tiny_scene, ["depth-baseline", "depth-hybrid"], "tiny", "cpu", warmup=1, iterations=1, rounds=2)
    assert set(times) == {"depth-baseline", "depth-hybrid"}
    assert all(len(t) == 2 and all(s > 0 for s in t) for t in times.values())
