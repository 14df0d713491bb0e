"""The report's statistics: Student's paired t over seeds on hand-computed values, and simulated studies that check
its false-mark rate and its power through the report itself (docs/statistics.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sp_stats

from depth_strategies.study import comparisons, stats

RUN_SD = 0.3
"""Run-to-run std of a method's mean PSNR (dB): the middle of the spreads measured in the committed studies'
"run-to-run spread" tables (0.2 to 0.4 dB)."""
VIEW_SD = 0.25
"""Std (dB) of a view's PSNR around its run's mean, beyond the view's own difficulty."""
SIMULATIONS = 2000


def test_paired_t_on_hand_computed_differences():
    # d = (1, 2, 3): mean 2, s = 1, se = 1/sqrt(3), t = 3.464 on 2 df: p = 0.0742 (t table); t_0.975,2 = 4.3027
    test = stats.paired_t([1.0, 2.0, 3.0])
    assert test.mean == 2.0 and test.seeds == 3
    assert test.p == pytest.approx(0.07418, abs=1e-5)
    assert (test.low, test.high) == (pytest.approx(2 - 4.3027 / math.sqrt(3), abs=1e-4),
                                     pytest.approx(2 + 4.3027 / math.sqrt(3), abs=1e-4))


def test_paired_t_needs_two_seeds_and_handles_identical_differences():
    one = stats.paired_t([0.7])
    assert one.mean == 0.7 and math.isnan(one.p) and math.isnan(one.low)
    assert stats.paired_t([]).seeds == 0
    assert stats.paired_t([0.5, 0.5, float("nan")]) == stats.RunLevelTest(0.5, 0.5, 0.5, 0.0, 2)
    assert stats.paired_t([0.0, 0.0]).p == 1.0


def simulated_study(rng: np.random.Generator, effect: float, run_sd: float = RUN_SD, seeds: int = 5,
                    views: int = 20) -> dict:
    """A results dictionary of two methods on one scene: each run's PSNR on a view is the view's difficulty (shared
    by every run) + the seed's luck (shared by the two runs of a seed, as common random numbers make it) + the run's
    own luck (N(0, run_sd)) + the view's noise in that run (N(0, VIEW_SD)) + ``effect`` for the second method."""
    difficulty = rng.normal(25.0, 2.0, size=views)
    runs = []
    for seed in range(seeds):
        shared = rng.normal(0.0, run_sd)
        for method, gain in (("depth-baseline", 0.0), ("depth-soft", effect)):
            psnr = difficulty + shared + rng.normal(0.0, run_sd) + rng.normal(0.0, VIEW_SD, size=views) + gain
            runs.append({"scene": "s", "method": method, "seed": seed, "run_id": f"s/{method}/seed{seed}",
                         "status": "ok", "sweep": None, "train": {}, "render": {},
                         "views": [{"index": i, "metrics": {"psnr": float(v)}} for i, v in enumerate(psnr)]})
    return {"protocol": {"name": "sim", "baseline": "depth-baseline", "iterations": 1, "seeds": list(range(seeds)),
                         "primary_metrics": ["psnr"], "methods": [{"name": "depth-baseline"}, {"name": "depth-soft"}]},
            "metrics": comparisons.metric_specs(["psnr"], {"psnr": "higher"}), "runs": runs}


def marked_rate(effect: float, run_sd: float = RUN_SD, seed: int = 0):
    """Share of simulated studies whose depth-soft row the report marks (†), and the share a Wilcoxon test over
    the views (the report's statistic before version 0.5) would have marked."""
    rng = np.random.default_rng(seed)
    marked = view_level = 0
    for _ in range(SIMULATIONS):
        results = simulated_study(rng, effect, run_sd)
        (comparison,) = comparisons.compare_to_baseline(results)
        marked += comparisons.significant(comparison)
        groups = comparisons.group_runs(results["runs"])
        views = comparisons.paired_view_differences(groups[("s", "depth-soft")], groups[("s", "depth-baseline")],
                                                    "psnr")
        view_level += stats.wilcoxon_p(views) < stats.ALPHA
    return marked / SIMULATIONS, view_level / SIMULATIONS


def lower_bound(rate: float, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower confidence bound of a rate measured over ``SIMULATIONS`` studies."""
    k = round(rate * SIMULATIONS)
    return 0.0 if k == 0 else float(sp_stats.beta.ppf(1 - confidence, k, SIMULATIONS - k + 1))


@pytest.mark.slow
def test_two_methods_that_differ_only_in_run_to_run_luck_are_marked_in_at_most_5_percent_of_studies(capsys):
    """The A/A test. A t-test at alpha 0.05 has a false-mark rate of 5 % by construction, so its estimate over
    2,000 studies lands either side of 5 % by chance: the test asserts that the rate is not shown to exceed 5 %
    (the lower 95 % bound of the measured rate is at most 5 %). The same bound rejects the view-level statistic."""
    rate, view_rate = marked_rate(effect=0.0)
    with capsys.disabled():
        print(f"\nA/A, {SIMULATIONS} simulated studies (5 seeds x 20 views, run sd {RUN_SD} dB, view sd {VIEW_SD} dB):"
              f" marked by the report {100 * rate:.1f} % (lower 95 % bound {100 * lower_bound(rate):.1f} %); by a "
              f"Wilcoxon test over views {100 * view_rate:.1f} %")
    assert lower_bound(rate) <= 0.05
    assert lower_bound(view_rate) > 0.05  # the simulation can tell a statistic that takes views for replicates


@pytest.mark.slow
def test_a_true_effect_of_1_db_with_5_seeds_is_found_in_at_least_80_percent_of_studies(capsys):
    rates = {run_sd: marked_rate(effect=1.0, run_sd=run_sd, seed=1)[0] for run_sd in (0.2, RUN_SD, 0.4)}
    with capsys.disabled():
        print("\npower for +1 dB with 5 seeds: " + ", ".join(f"run sd {sd} dB: {100 * r:.1f} %"
                                                              for sd, r in rates.items()))
    assert rates[RUN_SD] >= 0.80


def test_the_projects_own_a_a_pair_gets_no_mark():
    """robustness-uncertain-mask (version 0.3): depth-hybrid-uncertain at a degradation where it uses no depth at
    all, so its run differs from the baseline's only in its random numbers; over 20 views it scored +0.48 dB with a
    Wilcoxon p of 1.9e-6. One seed is one pair of runs: no run-level test, no mark."""
    path = Path(__file__).parents[2] / "docs/results/v0.3/robustness-uncertain-mask/results.json"
    found = comparisons.compare_to_baseline(json.loads(path.read_text()))
    pair = next(c for c in found if c["method"] == "depth-hybrid-uncertain" and c["metric"] == "psnr")
    assert pair["mean_difference"] > 0.4 and pair["seeds"] == 1
    assert not any(comparisons.significant(c) for c in found)
