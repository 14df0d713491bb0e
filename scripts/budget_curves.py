"""Budget curves of ``ds-compare`` results: for each method, the training steps each seed's run needed to reach the
final PSNR (or ``--metric``) of the baseline's run of the same seed, from the evaluations during training
(``eval_every``), as the report's "Budget" section gives it (:func:`depth_strategies.study.tables.budget_table`).
For results files written before that section existed, without regenerating their reports.

Usage (from the repository root)::

    python scripts/budget_curves.py docs/results/v0.3/lego-fewview/results.json [--metric depth_l1]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from depth_strategies.study.tables import budget_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json files (or folders holding one)")
    parser.add_argument("--metric", default="psnr")
    args = parser.parse_args()
    for path in args.results:
        path = path / "results.json" if path.is_dir() else path
        results = json.loads(path.read_text())
        print(f"## {path} (protocol {results['protocol']['name']}, every {results['protocol'].get('eval_every')} "
              f"steps on {results['protocol'].get('curve_views')} views)\n")
        print(budget_table(results, args.metric) or "(no curves in these results)")
        print()


if __name__ == "__main__":
    main()
