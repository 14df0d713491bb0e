"""``ds-split-scene``: a Blender-format scene whose train, val and test views all come from one split with depth.

NeRF-synthetic scenes ship depth for the test split only. This writes three transforms files that reference
the original images and depth maps (absolute paths, nothing is copied): by default the even views of the
source split train, 5 odd views validate and the remaining odd views test. ``--n-train`` / ``--n-test`` pick
that many views, evenly spread over the candidates (few-view studies), from an offset drawn from ``--seed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import tyro

from depth_strategies.core import depth_io
from depth_strategies.core.atomic import write_text_atomic

DEFAULT_VAL_VIEWS = 5
"""Odd views held out for nerfstudio's periodic evaluation during training (disjoint from test)."""


def spread(candidates: Sequence[int], count: Optional[int], rng: np.random.Generator) -> List[int]:
    """``count`` of ``candidates`` evenly spread over the list from a random offset (all when ``count`` is None)."""
    if count is None or count >= len(candidates):
        return list(candidates)
    if count <= 0:
        raise ValueError(f"need at least one view, got {count}")
    stride = len(candidates) / count
    offset = rng.uniform(0, stride)
    return [candidates[int(offset + i * stride)] for i in range(count)]


def plan_split(
    num_views: int, n_train: Optional[int], n_val: int, n_test: Optional[int], seed: int
) -> Dict[str, List[int]]:
    """Indices of the source split's views for train (even), val and test (odd, disjoint)."""
    rng = np.random.default_rng(seed)
    even, odd = list(range(0, num_views, 2)), list(range(1, num_views, 2))
    if n_val >= len(odd):
        raise ValueError(f"{num_views} views leave {len(odd)} odd views: too few for {n_val} val + test views")
    val = spread(odd, n_val, rng)
    rest = [i for i in odd if i not in set(val)]
    return {"train": spread(even, n_train, rng), "val": val, "test": spread(rest, n_test, rng)}


def split_scene(
    src: Path,
    out: Path,
    from_split: str = "test",
    n_train: Optional[int] = None,
    n_val: int = DEFAULT_VAL_VIEWS,
    n_test: Optional[int] = None,
    seed: int = 0,
) -> Dict[str, List[int]]:
    """Write ``out/transforms_{train,val,test}.json`` referencing views of ``src``'s ``from_split``."""
    transforms = src / f"transforms_{from_split}.json"
    if not transforms.is_file():
        raise FileNotFoundError(f"{transforms} does not exist: SRC must be a Blender-format scene folder")
    if Path(out).resolve() == Path(src).resolve():
        raise ValueError(
            f"OUT {out} is the source scene: writing there would overwrite its transforms files; choose another folder"
        )
    meta = json.loads(transforms.read_text())
    frames = meta["frames"]
    depth_files = []
    for frame in frames:
        image = src / (frame["file_path"].replace("./", "", 1) + ".png")
        depth = depth_io.find_depth_file(image, frame, src)
        if depth is None:
            raise depth_io.DepthFileError(
                f"{image} (split {from_split!r} of {src}) has no depth map, and every view of the new scene "
                f"needs one.\n{depth_io.describe_search(image, frame, src)}\n"
                "Choose the split that has depth with --from-split (NeRF-synthetic: test)."
            )
        depth_files.append((image, depth))
    plan = plan_split(len(frames), n_train, n_val, n_test, seed)
    out.mkdir(parents=True, exist_ok=True)
    top = {k: v for k, v in meta.items() if k != "frames"}
    for split, indices in plan.items():
        new_frames = []
        for i in indices:
            image, depth = depth_files[i]
            new_frame = {k: v for k, v in frames[i].items() if k not in ("file_path", depth_io.DEPTH_FILE_PATH_KEY)}
            # Absolute: nerfstudio's blender parser strips every "./" from file_path, which breaks "../".
            new_frame["file_path"] = str(image.resolve())[: -len(".png")]
            new_frame[depth_io.DEPTH_FILE_PATH_KEY] = str(depth.resolve())
            new_frame["source_index"] = i
            new_frames.append(new_frame)
        content = {
            **top,
            "split_recipe": {"source": str(src.resolve()), "from_split": from_split, "seed": seed, "split": split},
            "frames": new_frames,
        }
        write_text_atomic(out / f"transforms_{split}.json", json.dumps(content, indent=2))
    return plan


@dataclass(frozen=True)
class SplitSceneArgs:
    """Write a Blender-format scene whose train/val/test views come from one split of SRC that has depth."""

    src: tyro.conf.Positional[Path]
    """Source Blender-format scene (e.g. ../shared/data/lego)."""
    out: tyro.conf.Positional[Path]
    """Folder for the new transforms files (images and depth stay where they are)."""
    from_split: str = "test"
    """Split of SRC whose views (all with depth) are redistributed."""
    n_train: Optional[int] = None
    """Training views, evenly spread over the even views (default: all even views)."""
    n_val: int = DEFAULT_VAL_VIEWS
    """Validation views (odd views, used by nerfstudio's periodic evaluation)."""
    n_test: Optional[int] = None
    """Test views, evenly spread over the remaining odd views (default: all of them)."""
    seed: int = 0
    """Seed of the offsets of the evenly spread choices."""


def entrypoint() -> None:
    """Console script ``ds-split-scene``."""
    args = tyro.cli(SplitSceneArgs)
    try:
        plan = split_scene(args.src, args.out, args.from_split, args.n_train, args.n_val, args.n_test, args.seed)
    except (FileNotFoundError, ValueError) as e:  # DepthFileError is a ValueError: a message, not a traceback
        raise SystemExit(f"ds-split-scene: error: {e}") from None
    counts = ", ".join(f"{k}: {len(v)}" for k, v in plan.items())
    print(f"wrote {args.out}/transforms_{{train,val,test}}.json ({counts} views of {args.src}/{args.from_split})")
