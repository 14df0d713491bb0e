"""Whether two runs of one spec trained the same model: every test view's metrics of two ``result.json`` files
(e.g. the same seed run by two code versions), their largest differences, and the provenance that differs.

    python scripts/same_run.py docs/results/v0.7/equivalence-v06/depth-hard-noapp-seed1 \\
        docs/results/v0.6/appearance-embedding/runs/lego-10/cpu/depth-hard-noapp/seed1

Exits 0 when every metric of every view is equal, 1 otherwise (or when the runs scored other views).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping

PROVENANCE_KEYS = ("package_version", "source_hash", "config_hash", "platform", "torch_threads", "device")
"""What of each run's provenance is printed side by side."""


def load(path: Path) -> Dict[str, Any]:
    """A run's ``result.json``, given the file or its run folder."""
    file = path / "result.json" if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"same_run.py: {file} does not exist; pass a run folder of a ds-compare study or its "
                         "result.json")
    return json.loads(file.read_text())


def view_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> Dict[str, float]:
    """{metric: largest |a − b| over the test views both runs scored} (NaN where one run has no value); raises
    ValueError when the runs scored different views."""
    views_a = {v["index"]: v["metrics"] for v in a["views"]}
    views_b = {v["index"]: v["metrics"] for v in b["views"]}
    if set(views_a) != set(views_b):
        raise ValueError(f"the runs scored different test views: {sorted(views_a)} and {sorted(views_b)}")
    largest: Dict[str, float] = {}
    for index, metrics in views_a.items():
        for name, value in metrics.items():
            other = views_b[index].get(name)
            if value is None and other is None:
                continue
            gap = math.nan if value is None or other is None else abs(float(value) - float(other))
            largest[name] = gap if math.isnan(gap) else max(largest.get(name, 0.0), gap)
    return largest


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    a, b = load(args.first), load(args.second)
    for key in PROVENANCE_KEYS:
        left, right = (a.get("provenance") or {}).get(key), (b.get("provenance") or {}).get(key)
        print(f"{key:<16} {left!s:<40} {right!s:<40}{'' if left == right else '  differs'}")
    try:
        largest = view_differences(a, b)
    except ValueError as err:
        print(err)
        return 1
    print(f"{'metric':<28} largest difference over {len(a['views'])} views")
    for name, gap in sorted(largest.items()):
        print(f"{name:<28} {gap:.3g}")
    same = all(gap == 0.0 for gap in largest.values())
    print("identical: every metric of every view is equal" if same else "not identical")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
