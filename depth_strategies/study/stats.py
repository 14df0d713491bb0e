"""Statistics of a method against the baseline.

The unit of evidence is the training run (``docs/statistics.md``):

* :func:`paired_t`: Student's paired t-test and t interval over seeds, each seed's value the mean over the test
  views of (method's run − baseline's run of that seed) (Student 1908); the inference of every table;
* :func:`holm`: Holm-Bonferroni step-down correction over a declared family of tests (Holm 1979);

and, to describe one run's views (never as replicates of a comparison): the Wilcoxon signed-rank test and the
percentile bootstrap interval of a mean (Efron & Tibshirani 1993), seeded.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from scipy import stats as sp_stats

BOOTSTRAP_RESAMPLES = 10_000
"""Resamples of the bootstrap; Monte-Carlo error of a 95 % bound is well below the reported precision."""
CONFIDENCE = 0.95
"""Confidence level of every interval."""
ALPHA = 0.05
"""Significance level after the Holm correction."""


class RunLevelTest(NamedTuple):
    """A paired t-test over seeds: the mean of the per-seed differences, its ``CONFIDENCE`` t interval, the
    two-sided p-value of "the mean difference is 0", and the number of seeds."""

    mean: float
    low: float
    high: float
    p: float
    seeds: int


def paired_t(seed_differences: Sequence[float], confidence: float = CONFIDENCE) -> RunLevelTest:
    """Student's paired t over seeds: mean d, interval d ± t_{n-1} s / sqrt(n), p = 2 P(T_{n-1} > |d| sqrt(n) / s).

    Why t and not a bootstrap: with 5 seeds a bootstrap over seeds has a handful of distinct resamples and its
    percentile interval is too narrow (it ignores the n − 1 of the variance); a seed's difference is a mean over
    20 views, close to normal. Fewer than two seeds: NaN interval and p (no test: "not established"). Identical
    non-zero differences (s = 0): p = 0 and the interval is the point; all zero: p = 1."""
    d = np.asarray(seed_differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n == 0:
        return RunLevelTest(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    mean = float(d.mean())
    if n < 2:
        return RunLevelTest(mean, float("nan"), float("nan"), float("nan"), n)
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return RunLevelTest(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, n)
    se = sd / math.sqrt(n)
    t_crit = float(sp_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1))
    p = float(2.0 * sp_stats.t.sf(abs(mean) / se, df=n - 1))
    return RunLevelTest(mean, mean - t_crit * se, mean + t_crit * se, p, n)


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of ``differences`` (NaN when fewer than one non-zero pair).

    With n paired views the smallest attainable p-value is 2 / 2^n (exact test): 4 views can never reach 0.05.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if np.count_nonzero(d) == 0:
        return float("nan")
    return float(sp_stats.wilcoxon(d).pvalue)


def bootstrap_mean_ci(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``; (nan, nan) for fewer than two values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm-Bonferroni adjusted p-values (same order as the input; NaN stays NaN and is not counted)."""
    p = [float(v) for v in p_values]
    finite = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m = len(finite)
    adjusted = [float("nan")] * len(p)
    running = 0.0
    for rank, (value, index) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * value))
        adjusted[index] = running
    return adjusted


def paired(method: Sequence[Optional[float]], baseline: Sequence[Optional[float]]) -> Tuple[np.ndarray, np.ndarray]:
    """The pairs where both values exist and are finite."""
    a = np.array([np.nan if v is None else v for v in method], dtype=np.float64)
    b = np.array([np.nan if v is None else v for v in baseline], dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]
