"""Each seed on its own: a method's mean difference to a reference method of the same seed, per scene (condition),
with the report's run-level test (Student's paired t over seeds, docs/statistics.md), against any reference.

``ds-compare``'s tables compare every method with the protocol's baseline; this prints the same per-seed differences
and paired t against the reference you name (e.g. a method's own variant), from the ``results.json`` it wrote. No
family correction: a single comparison you chose, or exploratory.

    python scripts/seed_differences.py docs/results/v0.3/robustness --metric psnr
    python scripts/seed_differences.py docs/results/v0.5/background-warmup-lego --baseline depth-baseline-white

``--pairs A:B C:D ...`` compares each A with its own B instead (e.g. every method without a component against
itself with it) and adds, per scene, the per-seed mean over the pairs with its paired t over seeds (the seeds every
pair has): one question asked of several methods at once.

    python scripts/seed_differences.py docs/results/v0.7/appearance-embedding-confirm \
        --pairs depth-baseline-noapp:depth-baseline depth-hard-noapp:depth-hard depth-hybrid-noapp:depth-hybrid
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Dict, List, Tuple

from depth_strategies.study import comparisons, stats


def _num(value: float, signed: bool = True) -> str:
    return "–" if value is None or math.isnan(value) else (f"{value:+.3f}" if signed else f"{value:.3f}")


def _row(scene: str, label: str, diffs: Dict[object, float], seeds: List[object]) -> str:
    test = stats.paired_t(list(diffs.values()))
    cells = [_num(diffs.get(s, math.nan)) for s in seeds]
    gap = max(diffs.values()) - min(diffs.values()) if len(diffs) > 1 else math.nan
    return (f"| {scene} | {label} | " + " | ".join(cells) + f" | {_num(gap, signed=False)} | {_num(test.mean)} | "
            f"[{_num(test.low)}, {_num(test.high)}] | {'–' if math.isnan(test.p) else f'{test.p:.3g}'} |")


def _pair(text: str) -> Tuple[str, str]:
    method, _, reference = text.partition(":")
    if not method or not reference:
        raise argparse.ArgumentTypeError(f"{text!r}: write a pair as METHOD:REFERENCE (depth-hard-noapp:depth-hard)")
    return method, reference


def pair_rows(groups: Dict[Tuple[str, str], list], pairs: List[Tuple[str, str]], metric: str,
              seeds: List[object]) -> List[str]:
    """Per scene, each pair's per-seed difference (method − reference, same seed) and the per-seed mean over the
    pairs, over the seeds every pair has."""
    rows = []
    for scene in dict.fromkeys(scene for scene, _ in groups):
        per_pair = {f"{m} − {r}": comparisons.seed_differences(groups[(scene, m)], groups[(scene, r)], metric)
                    for m, r in pairs if (scene, m) in groups and (scene, r) in groups}
        for label, diffs in per_pair.items():
            rows.append(_row(scene, label, diffs, seeds))
        if len(per_pair) == len(pairs) > 1:
            shared = [s for s in seeds if all(s in diffs for diffs in per_pair.values())]
            pooled = {s: sum(diffs[s] for diffs in per_pair.values()) / len(per_pair) for s in shared}
            rows.append(_row(scene, f"mean over the {len(pairs)} pairs", pooled, seeds))
    return rows


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="a ds-compare output folder (holding results.json)")
    parser.add_argument("--metric", default="psnr")
    parser.add_argument("--baseline", help="the method every other is compared with (default: the protocol's)")
    parser.add_argument("--pairs", nargs="+", type=_pair, metavar="METHOD:REFERENCE",
                        help="compare each METHOD with its own REFERENCE instead, and their per-seed mean")
    args = parser.parse_args(argv)
    results = json.loads((args.output / "results.json").read_text())
    baseline = args.baseline or results["protocol"]["baseline"]
    groups = comparisons.group_runs(comparisons.main_runs(results))
    means = {key: comparisons.seed_means(runs, args.metric) for key, runs in groups.items()}
    seeds = sorted({s for by_seed in means.values() for s in by_seed}, key=str)
    print("| scene | method | " + " | ".join(f"seed {s}" for s in seeds)
          + " | gap between seeds | mean | 95% t interval | paired t p |")
    print("|---|---|" + "---|" * (len(seeds) + 4))
    if args.pairs:
        print("\n".join(pair_rows(groups, args.pairs, args.metric, seeds)))
        return
    for (scene, method), by_seed in sorted(means.items()):
        if method == baseline:
            cells = [_num(by_seed.get(s, math.nan), signed=False) for s in seeds]
            print(f"| {scene} | {method} (mean) | " + " | ".join(cells) + " | | | | |")
            continue
        if (scene, baseline) not in groups:
            continue
        diffs = comparisons.seed_differences(groups[(scene, method)], groups[(scene, baseline)], args.metric)
        print(_row(scene, method, diffs, seeds))


if __name__ == "__main__":
    main()
