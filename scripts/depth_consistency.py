"""Print the multi-view inconsistency of a protocol's training depth under each of its conditions.

The numbers are those the uncertainty-aware strategies read: the datamanager of ``depth-hybrid-uncertain`` is set up
on the protocol's scene with the condition's degradations (as ``ds-compare`` trains it) and its per-image
inconsistency (:mod:`depth_strategies.core.consistency`) is printed in the depth's own unit.

Usage (from the repository root)::

    python scripts/depth_consistency.py robustness --output docs/results/v0.3/robustness --data-root .
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from depth_strategies.core.data import CONSISTENCY_KEY
from depth_strategies.methods import apply_overrides, method_config
from depth_strategies.study.protocol import load_protocol
from depth_strategies.study.runs import DEGRADATIONS_FIELD
from depth_strategies.study.scene_folders import prepare_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", help="a shipped protocol's name or a YAML file")
    parser.add_argument("--output", type=Path, required=True, help="the protocol's output folder (holds its scenes)")
    parser.add_argument("--data-root", type=Path, default=Path("."), help="as for ds-compare")
    args = parser.parse_args()
    protocol = load_protocol(args.protocol)
    print("| scene | condition | per-image inconsistency (min, median, max; depth units) |")
    print("|---|---|---|")
    for scene in protocol.scenes:
        data = prepare_scene(scene, args.output, args.data_root)
        for condition in protocol.conditions:
            config = apply_overrides(method_config("depth-hybrid-uncertain"), {
                "pipeline.datamanager.data": data, DEGRADATIONS_FIELD: list(condition.degradations)})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                datamanager = config.pipeline.datamanager.setup(device="cpu", test_mode="val")
            dataset = datamanager.train_dataset
            sigma = dataset.metadata[CONSISTENCY_KEY].numpy() / float(dataset.metadata["dataparser_scale"])
            print(f"| {scene.name} | {condition.name} | {sigma.min():.3f}, {np.median(sigma):.3f}, {sigma.max():.3f} |")


if __name__ == "__main__":
    main()
