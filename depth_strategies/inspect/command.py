"""``ds-inspect DATA [--dataparser blender-data|nerfstudio-data] [--output DIR]``: what the depth of a dataset is
worth, and the study's pick for it, before any training.

It reads DATA as ``ns-train depth-* <dataparser> --data DATA`` would (:mod:`depth_strategies.inspect.load`),
measures the training depth (:mod:`depth_strategies.inspect.verdict`), prints a summary and writes
``inspect.json`` and ``contact_sheet.png`` into DIR. DATA is only read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from rich.console import Console

from depth_strategies.core.depth_io import DepthFileError
from depth_strategies.inspect import load as loading
from depth_strategies.inspect import mapping, report, verdict

DEFAULT_OUTPUT = Path("ds-inspect")
"""Where the outputs go without ``--output``: ``ds-inspect/<DATA's folder name>/`` under the working directory."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ds-inspect",
        description="What the depth of a dataset is worth, measured before any training, and which method the "
                    "committed studies pick for it (docs/inspect.md).",
    )
    p.add_argument("data", type=Path, help="the folder ns-train --data reads")
    p.add_argument("--dataparser", choices=loading.DATAPARSERS, default=None,
                   help="how ns-train would parse DATA (default: blender-data with transforms_train.json, "
                        "nerfstudio-data with transforms.json)")
    p.add_argument("--output", type=Path, default=None,
                   help=f"folder for inspect.json and contact_sheet.png (default: {DEFAULT_OUTPUT}/<DATA name>)")
    p.add_argument("--depth-degradations", nargs="*", default=[], metavar="MODEL",
                   help="as ns-train's --pipeline.datamanager.depth-degradations: inspect the depth training would "
                        "see with these sensor models applied, e.g. \"noise(b=0.03)\"")
    p.add_argument("--degradation-seed", type=int, default=0,
                   help="as ns-train's --pipeline.datamanager.degradation-seed")
    p.add_argument("--frames", type=int, default=report.CONTACT_FRAMES, help="images on the contact sheet")
    return p


def inspect(data: Path, dataparser: Optional[str], output: Path, degradations: Sequence[str] = (),
            seed: int = 0, frames: int = report.CONTACT_FRAMES, console: Optional[Console] = None) -> dict:
    """Load, measure, judge, write; returns what ``inspect.json`` holds."""
    console = console or Console()
    loaded = loading.load(data, dataparser, degradations, seed)
    measured = verdict.measure_data(loaded)
    shipped = mapping.shipped_mapping()
    findings = verdict.classify(measured, shipped)
    rec = verdict.recommend(findings, shipped, loaded.dataparser, str(data), degradations)
    about = {"file": f"depth_strategies/configs/{mapping.MAPPING_FILE}", "standard": shipped["standard"]}
    payload = report.result(loaded, measured, findings, rec, about)
    if degradations:
        payload["depth_degradations"] = list(degradations)
        payload["degradation_seed"] = seed
    written: List[Path] = [
        report.write_json(payload, output / "inspect.json"),
        report.contact_sheet(loaded, output / "contact_sheet.png", report.sampled(len(loaded.train), frames)),
    ]
    report.summary(console, loaded, measured, findings, rec, written)
    return payload


def entrypoint(argv: Optional[Sequence[str]] = None) -> None:
    args = parser().parse_args(argv)
    output = args.output or DEFAULT_OUTPUT / (args.data.resolve().name or "data")
    try:
        inspect(args.data, args.dataparser, output, args.depth_degradations, args.degradation_seed, args.frames)
    except (DepthFileError, FileNotFoundError, ValueError) as err:
        print(f"ds-inspect: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    entrypoint()
