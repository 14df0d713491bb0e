"""Each seed on its own: a method's mean difference to a reference method of the same seed, per scene (condition),
with the report's run-level test (Student's paired t over seeds, docs/statistics.md), against any reference.

``ds-compare``'s tables compare every method with the protocol's baseline; this prints the same per-seed differences
and paired t against the reference you name (e.g. a method's own variant), from the ``results.json`` it wrote. No
family correction: a single comparison you chose, or exploratory.

    python scripts/seed_differences.py docs/results/v0.3/robustness --metric psnr
    python scripts/seed_differences.py docs/results/v0.5/background-warmup-lego --baseline depth-baseline-white
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import List

from depth_strategies.study import comparisons, stats


def _num(value: float, signed: bool = True) -> str:
    return "–" if value is None or math.isnan(value) else (f"{value:+.3f}" if signed else f"{value:.3f}")


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="a ds-compare output folder (holding results.json)")
    parser.add_argument("--metric", default="psnr")
    parser.add_argument("--baseline", help="the method every other is compared with (default: the protocol's)")
    args = parser.parse_args(argv)
    results = json.loads((args.output / "results.json").read_text())
    baseline = args.baseline or results["protocol"]["baseline"]
    groups = comparisons.group_runs(comparisons.main_runs(results))
    means = {key: comparisons.seed_means(runs, args.metric) for key, runs in groups.items()}
    seeds = sorted({s for by_seed in means.values() for s in by_seed}, key=str)
    print("| scene | method | " + " | ".join(f"seed {s}" for s in seeds)
          + " | gap between seeds | mean | 95% t interval | paired t p |")
    print("|---|---|" + "---|" * (len(seeds) + 4))
    for (scene, method), by_seed in sorted(means.items()):
        if method == baseline:
            cells = [_num(by_seed.get(s, math.nan), signed=False) for s in seeds]
            print(f"| {scene} | {method} (mean) | " + " | ".join(cells) + " | | | | |")
            continue
        if (scene, baseline) not in groups:
            continue
        diffs = comparisons.seed_differences(groups[(scene, method)], groups[(scene, baseline)], args.metric)
        test = stats.paired_t(list(diffs.values()))
        cells = [_num(diffs.get(s, math.nan)) for s in seeds]
        gap = max(diffs.values()) - min(diffs.values()) if len(diffs) > 1 else math.nan
        print(f"| {scene} | {method} | " + " | ".join(cells) + f" | {_num(gap, signed=False)} | {_num(test.mean)} | "
              f"[{_num(test.low)}, {_num(test.high)}] | {'–' if math.isnan(test.p) else f'{test.p:.3g}'} |")


if __name__ == "__main__":
    main()
