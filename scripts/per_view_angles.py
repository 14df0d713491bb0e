"""Per test view: how far it is from the nearest training view, and how much a method gains on it over the baseline.

For a ``ds-compare`` results file of a split scene (``split:`` in its protocol: views picked from one split of a
Blender-format source, as the lego protocols do), each test view's angular distance to the nearest training view
(the angle between the two camera centres seen from the scene's origin, degrees) and its elevation and azimuth are
printed beside each seed's
per-view PSNR difference of ``--method`` to the baseline, with Spearman's rank correlation over views.

Usage (from the repository root)::

    python scripts/per_view_angles.py \\
        ../shared/measurements/gpu-2026-12-04/lego10-2000it/results-baseline-hard-hybrid-seed0.json \\
        --source ../shared/data/lego --method depth-hard
    python scripts/per_view_angles.py docs/results/v0.6/regime-factors/results.json --source ../shared/data/lego \
        --method depth-hard --scene lego-10/rays-4096
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

import numpy as np
from scipy.stats import spearmanr

from depth_strategies.scenes.split import plan_split
from depth_strategies.study.comparisons import per_view


def camera_centres(source: Path, split: str) -> Dict[str, np.ndarray]:
    """{view name (``r_N``): camera centre} of a Blender-format split."""
    meta = json.loads((source / f"transforms_{split}.json").read_text())
    return {Path(f["file_path"]).name: np.asarray(f["transform_matrix"], dtype=float)[:3, 3] for f in meta["frames"]}


def nearest_training_angles(source: Path, spec: Dict) -> Dict[str, float]:
    """{test view name: degrees to the nearest training view} for a ``split`` spec of a protocol."""
    centres = camera_centres(source, spec["from_split"])
    names = list(centres)
    plan = plan_split(len(names), spec["n_train"], spec["n_val"], spec["n_test"], spec["seed"])
    train = np.stack([centres[names[i]] / np.linalg.norm(centres[names[i]]) for i in plan["train"]])
    angles = {}
    for i in plan["test"]:
        direction = centres[names[i]] / np.linalg.norm(centres[names[i]])
        angles[names[i]] = float(np.degrees(np.arccos(np.clip(train @ direction, -1, 1)).min()))
    return angles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json of ds-compare")
    parser.add_argument("--source", type=Path, required=True,
                        help="the split's source folder (e.g. ../shared/data/lego)")
    parser.add_argument("--method", required=True)
    parser.add_argument("--metric", default="psnr")
    parser.add_argument("--scene", help="the scene (a scene/condition of a protocol with conditions, e.g. "
                                        "lego-10/rays-4096); needed when the results hold several")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    scenes = list(dict.fromkeys(r["scene"] for r in results["runs"]))
    if args.scene is None and len(scenes) > 1:
        parser.error(f"{args.results} holds several scenes; pick one with --scene: {', '.join(scenes)}")
    scene = args.scene or scenes[0]
    if scene not in scenes:
        parser.error(f"--scene {scene!r} is not in {args.results}: {', '.join(scenes)}")
    runs = [r for r in results["runs"] if r["scene"] == scene]
    base_scene = scene.split("/")[0]
    spec = next(s for s in results["protocol"]["scenes"] if s["name"] == base_scene)["split"]
    angles = nearest_training_angles(args.source, spec)
    centres = camera_centres(args.source, spec["from_split"])
    baseline = results["protocol"]["baseline"]
    values = {method: per_view([r for r in runs if r["method"] == method], args.metric)
              for method in (baseline, args.method)}
    names = {v["index"]: v["name"] for r in runs for v in r.get("views") or []}
    per_seed: Dict[int, Dict[str, float]] = {}
    for (seed, index), value in values[args.method].items():
        if (seed, index) in values[baseline]:  # only views with both runs of the seed
            per_seed.setdefault(seed, {})[names[index]] = value - values[baseline][(seed, index)]
    seeds = sorted(s for s in per_seed if len(per_seed[s]) == len(angles))
    columns = " | ".join(f"seed {s}: {args.method} − {baseline}" for s in seeds)
    print(f"| view | elevation (deg) | azimuth (deg) | degrees to nearest training view | {columns} |")
    print("|---|---|---|---|" + "---|" * len(seeds))
    order: List[str] = sorted(angles, key=lambda n: int(n.split("_")[-1]))
    for name in order:
        c = centres[name]
        elevation = np.degrees(np.arcsin(c[2] / np.linalg.norm(c)))
        azimuth = np.degrees(np.arctan2(c[1], c[0]))
        cells = " | ".join(f"{per_seed[s][name]:+.2f}" for s in seeds)
        print(f"| {name} | {elevation:.1f} | {azimuth:.1f} | {angles[name]:.1f} | {cells} |")
    for s in seeds:
        rho, p = spearmanr([angles[n] for n in order], [per_seed[s][n] for n in order])
        print(f"\nseed {s}: Spearman rho (angle, difference) = {rho:+.2f}, p = {p:.2g}, over {len(order)} views")


if __name__ == "__main__":
    main()
