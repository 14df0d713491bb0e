"""Each seed on its own: a method's mean difference to the baseline of the same seed, per scene (condition).

``ds-compare`` averages each view over the seeds before its paired tests; this prints what every seed gave by
itself, from the ``results.json`` it wrote, and the largest gap between two seeds of each method.

    python scripts/seed_differences.py docs/results/v0.3/robustness --metric psnr
    python scripts/seed_differences.py docs/results/v0.4/appearance-collapse-lego --baseline depth-baseline-white
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple


def seed_means(results: Dict, metric: str) -> Dict[Tuple[str, str], Dict[int, float]]:
    """{(scene, method): {seed: mean of ``metric`` over the run's views}} of every finished run."""
    means: Dict[Tuple[str, str], Dict[int, float]] = defaultdict(dict)
    for run in results["runs"]:
        values = [v["metrics"][metric] for v in run.get("views", []) if metric in v.get("metrics", {})]
        if run["status"] == "ok" and values:
            means[(run["scene"], run["method"])][int(run["seed"])] = statistics.fmean(values)
    return means


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="a ds-compare output folder (holding results.json)")
    parser.add_argument("--metric", default="psnr")
    parser.add_argument("--baseline", help="the method every other is compared with (default: the protocol's)")
    args = parser.parse_args(argv)
    results = json.loads((args.output / "results.json").read_text())
    baseline = args.baseline or results["protocol"]["baseline"]
    means = seed_means(results, args.metric)
    seeds = sorted({s for by_seed in means.values() for s in by_seed})
    print("| scene | method | " + " | ".join(f"seed {s}" for s in seeds) + " | gap between seeds |")
    print("|---|---|" + "---|" * (len(seeds) + 1))
    for (scene, method), by_seed in sorted(means.items()):
        base = means.get((scene, baseline), {})
        if method == baseline:
            cells = [f"{by_seed[s]:.3f}" if s in by_seed else "–" for s in seeds]
            print(f"| {scene} | {method} (mean) | " + " | ".join(cells) + " | |")
            continue
        diffs = {s: by_seed[s] - base[s] for s in seeds if s in by_seed and s in base}
        cells = [f"{diffs[s]:+.3f}" if s in diffs else "–" for s in seeds]
        gap = max(diffs.values()) - min(diffs.values()) if len(diffs) > 1 else float("nan")
        print(f"| {scene} | {method} | " + " | ".join(cells) + f" | {gap:.3f} |")


if __name__ == "__main__":
    main()
