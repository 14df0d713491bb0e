"""Paired statistics of a method against the baseline over the same test views.

* Wilcoxon signed-rank test (two-sided) of the per-view differences, from scipy;
* percentile bootstrap confidence interval of the mean difference (Efron & Tibshirani 1993), seeded;
* Holm-Bonferroni step-down correction over every (method, metric) test of a scene (Holm 1979).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import stats as sp_stats

BOOTSTRAP_RESAMPLES = 10_000
"""Resamples of the bootstrap; Monte-Carlo error of a 95 % bound is well below the reported precision."""
CONFIDENCE = 0.95
"""Confidence level of every interval."""
ALPHA = 0.05
"""Significance level after the Holm correction."""


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
