"""The mapping from a kind and level of depth to the study's pick: generated from the committed study results.

``python -m depth_strategies.inspect.mapping`` reads the ``results.json`` of the studies named in :data:`SOURCES`
(under ``docs/results/``), recomputes every method's per-seed differences to the source's reference with the
report's own run-level functions (``study.comparisons.seed_differences``: seeds paired on one machine;
``study.stats.paired_t``), and writes ``depth_strategies/configs/depth-kinds.json``; ``--check`` compares instead
(``tests/inspect/test_mapping.py`` runs it). ``ds-inspect`` and the README's table read that file, never the results.

The pick at a kind and level (:func:`pick`), for images (PSNR) and for geometry (depth L1):

1. a method whose gain over the reference is **established** in some row (the project's standard,
   docs/statistics.md: a 95 % t interval over at least :data:`MIN_SEEDS` seeds paired by seed that excludes 0) is
   picked: the one established in the most rows (scenes), then the largest gain; established losses of that
   method in other rows stay beside it;
2. otherwise the best mean difference among the methods with at least one paired seed, marked **not established**
   with the reason (fewer than MIN_SEEDS seeds, or an interval that includes 0); the reference itself when no
   method's mean is better than it;
3. a kind that no study degraded depth into has no row and no pick: "not studied".
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from depth_strategies.methods import load_size_profile, ns_train_flags, shipped_config
from depth_strategies.study import comparisons, stats

MAPPING_FILE = "depth-kinds.json"
"""The shipped mapping, package data next to the protocols (``depth_strategies/configs/``)."""
MIN_SEEDS = 5
"""A claim needs a run-level interval over at least this many seeds paired by seed (docs/statistics.md, the
README's verdict)."""
METRICS = {"psnr": "images", "depth_l1": "geometry"}
"""The two primary metrics of every study, and what a pick by each is for."""
DIGITS = 6
"""Significant digits kept of every number written, so that the file regenerates identically across platforms."""


@dataclass(frozen=True)
class Source:
    """One committed study whose rows back the mapping."""

    results: str
    """Folder of its ``results.json``, relative to the repository."""
    kind: Optional[str] = None
    """Kind of depth of every row; None: each row's condition's kind and level (a robustness protocol's
    ``conditions``)."""
    reference: Optional[str] = None
    """Method every other is compared with; None: the protocol's baseline."""
    methods: Optional[Tuple[str, ...]] = None
    """Methods compared; None: every method of the protocol but the reference."""
    level: Optional[float] = None
    """Level of every row when ``kind`` is given (0 for exact depth: the clean condition of the robustness
    studies)."""
    note: str = ""
    """Why this study and this reference."""


SOURCES: Tuple[Source, ...] = (
    Source("docs/results/v0.3/robustness",
           note="lego-10 with degraded training depth: noise, sparse points, monocular (version 0.3, white "
                "background)"),
    Source("docs/results/v0.6/background-warmup-lego", kind="clean", level=0, reference="depth-baseline-warmup",
           methods=("depth-hybrid-warmup",),
           note="lego-10, exact depth, the current recipe (random backgrounds for 200 steps) for both"),
    Source("docs/results/v0.6/background-warmup", kind="clean", level=0, reference="depth-baseline-warmup",
           methods=("depth-soft-warmup", "depth-hard-warmup", "depth-hybrid-warmup"),
           note="a thin dark object, exact depth, the current recipe for every method"),
    Source("docs/results/v0.3/room-quick", kind="phone",
           note="a generated room filmed like a phone: depth at 1/4 of the image resolution with confidence maps"),
    # the plugin's methods only: nerfstudio's depth-nerfacto ran there as the external reference (a pick is an
    # ns-train line with ds-flags, which are this plugin's model fields)
    Source("docs/results/v0.6/redkitchen", kind="holes",
           methods=("depth-soft", "depth-hard", "depth-hybrid", "depth-hybrid-uncertain"),
           note="7-Scenes red kitchen: a Kinect's own depth (metric, dense, holes at dark, shiny and far surfaces; "
                "registered to the colour camera), 160x120, 175 training frames"),
)
"""The committed studies behind the mapping, in order."""

KINDS: Dict[str, Dict[str, str]] = {
    "clean": {"describes": "exact metric depth (a renderer's)", "level": "none"},
    "noise": {"describes": "metric depth with noise (ToF, stereo)", "level": "noise sigma / depth"},
    "sparse": {"describes": "sparse LiDAR-like points", "level": "share of pixels without depth"},
    "monocular": {"describes": "monocular depth: per-image scale and shift", "level": "scale range r ([1/r, r])"},
    "phone": {"describes": "phone LiDAR depth with confidence maps", "level": "none"},
    "lowres": {"describes": "depth at a lower resolution than the images", "level": "upsampling factor"},
    "holes": {"describes": "dense metric depth with holes (a depth camera's: Kinect, RealSense)",
              "level": "share of surface pixels without depth"},
    "flying": {"describes": "flying pixels at depth edges", "level": "share of surface pixels that fly"},
    "quantise": {"describes": "depth rounded to a step", "level": "step, scene units"},
}
"""Every kind ``ds-inspect`` names (the degradation models of ``core.degradation`` and the phone capture), what it
describes and the unit of its level. ``clean`` and the studied kinds come first."""


def _round(value: Any) -> Any:
    """Numbers to :data:`DIGITS` significant digits (NaN and inf as None), recursively."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.{DIGITS}g}")
    if isinstance(value, dict):
        return {str(k): _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def _method_spec(protocol: Mapping[str, Any], name: str) -> Dict[str, Any]:
    spec = next((m for m in protocol["methods"] if m["name"] == name), {"name": name})
    return {"name": name, "registered": spec.get("external") or spec.get("base") or name,
            "overrides": dict(spec.get("overrides") or {})}


def comparison(runs: Sequence[Mapping], reference: Sequence[Mapping], metric: str, better: str) -> Dict[str, Any]:
    """One method against the reference on one metric: per-seed differences (paired on one machine), their paired
    t and whether a gain or a loss is established (:data:`MIN_SEEDS`); the means of both when no seed pairs."""
    differences = comparisons.seed_differences(runs, reference, metric)
    test = stats.paired_t(list(differences.values()))
    sign = 1.0 if better == "higher" else -1.0
    excludes_zero = test.seeds >= 2 and math.isfinite(test.low) and (test.low > 0 or test.high < 0)
    established = None
    if test.seeds >= MIN_SEEDS and excludes_zero:
        established = "gain" if sign * test.mean > 0 else "loss"
    own, theirs = comparisons.seed_means(runs, metric), comparisons.seed_means(reference, metric)
    return {
        "seeds": test.seeds,
        "per_seed": {str(s): d for s, d in sorted(differences.items(), key=lambda kv: str(kv[0]))},
        "mean": test.mean if test.seeds else None,
        "interval": [test.low, test.high] if test.seeds >= 2 else None,
        "established": established,
        "mean_value": sum(own.values()) / len(own) if own else None,
        "reference_value": sum(theirs.values()) / len(theirs) if theirs else None,
    }


def rows_of(source: Source, root: Path) -> List[Dict[str, Any]]:
    """The rows (one per scene or condition) of one source study."""
    results = json.loads((root / source.results / "results.json").read_text())
    protocol = results["protocol"]
    reference = source.reference or protocol["baseline"]
    directions = protocol["metrics"]
    conditions = {c["name"]: c for c in protocol.get("conditions") or []}
    groups = comparisons.group_runs(comparisons.main_runs(results))
    scenes = sorted({scene for scene, _ in groups})
    rows = []
    for scene in scenes:
        base_scene, _, condition = scene.partition("/")
        if source.kind is None and condition not in conditions:
            continue
        spec = conditions.get(condition, {})
        kind = source.kind or spec["kind"]
        methods = source.methods or tuple(sorted(m for s, m in groups if s == scene and m != reference))
        compared = {}
        for method in methods:
            if (scene, method) not in groups or (scene, reference) not in groups:
                continue
            compared[method] = {
                **_method_spec(protocol, method),
                **{metric: comparison(groups[(scene, method)], groups[(scene, reference)], metric, directions[metric])
                   for metric in METRICS},
            }
        rows.append({
            "study": source.results,
            "protocol": protocol["name"],
            "note": source.note,
            "scene": base_scene,
            "condition": condition or None,
            "kind": kind,
            "level": spec.get("level", 0) if source.kind is None else source.level,
            "degradations": list(spec.get("degradations", [])),
            "regime": {"sizes": protocol["sizes"], "iterations": protocol["iterations"],
                       "seeds": list(protocol["seeds"]), "device": "cpu"},
            "reference": _method_spec(protocol, reference),
            "methods": compared,
        })
    return rows


def pick(rows: Sequence[Mapping[str, Any]], metric: str) -> Dict[str, Any]:
    """The pick for ``metric`` over the rows of one kind and level (the rule of this module's docstring)."""
    if not rows:
        return {"method": None, "status": "not studied",
                "why": "no committed study degraded depth this way"}
    candidates = []
    for row in rows:
        for name, entry in row["methods"].items():
            c = entry[metric]
            if c["seeds"] >= 1 and c["mean"] is not None:
                candidates.append((row, name, entry, c))
    better = 1.0 if metric == "psnr" else -1.0
    gains = [x for x in candidates if x[3]["established"] == "gain"]
    if gains:
        rows_gained: Dict[str, int] = {}
        for _, _, entry, _ in gains:
            rows_gained[entry["registered"]] = rows_gained.get(entry["registered"], 0) + 1
        row, name, entry, c = max(gains, key=lambda x: (rows_gained[x[2]["registered"]], better * x[3]["mean"]))
        losses = [_loss(r, e, cc) for r, _, e, cc in candidates
                  if e["registered"] == entry["registered"] and cc["established"] == "loss"]
        return {"method": entry["registered"], "overrides": entry["overrides"], "status": "established",
                "why": f"{c['seeds']} seeds paired, 95 % interval excludes 0", "row": _where(row),
                "mean": c["mean"], "interval": c["interval"], "seeds": c["seeds"], "per_seed": c["per_seed"],
                "established_losses_elsewhere": losses}
    if not candidates:
        return {"method": None, "status": "not established", "why": "no method has a seed paired with the reference"}
    row, name, entry, c = max(candidates, key=lambda x: (better * x[3]["mean"], x[3]["seeds"]))
    if better * c["mean"] <= 0:
        reference = row["reference"]
        losses = [_loss(r, e, cc) for r, _, e, cc in candidates if cc["established"] == "loss"]
        return {"method": reference["registered"], "overrides": reference["overrides"], "status": "not established",
                "why": "no method's mean is better than the reference's", "row": _where(row), "mean": None,
                "interval": None, "seeds": c["seeds"], "per_seed": {},
                "established_losses": sorted(losses, key=lambda x: better * x["mean"])}
    why = (f"{c['seeds']} seed{'s' if c['seeds'] != 1 else ''} paired (a claim needs {MIN_SEEDS})"
           if c["seeds"] < MIN_SEEDS else "the 95 % interval includes 0")
    return {"method": entry["registered"], "overrides": entry["overrides"], "status": "not established",
            "why": f"best mean; {why}", "row": _where(row), "mean": c["mean"], "interval": c["interval"],
            "seeds": c["seeds"], "per_seed": c["per_seed"]}


def _loss(row: Mapping[str, Any], entry: Mapping[str, Any], c: Mapping[str, Any]) -> Dict[str, Any]:
    """An established loss: which method, where, and its run-level figures."""
    return {"method": entry["registered"], "overrides": entry["overrides"], "study": row["study"],
            "scene": row["scene"], "condition": row["condition"], "mean": c["mean"], "interval": c["interval"],
            "seeds": c["seeds"]}


def _where(row: Mapping[str, Any]) -> Dict[str, Any]:
    return {"study": row["study"], "protocol": row["protocol"], "scene": row["scene"], "condition": row["condition"],
            "regime": row["regime"], "note": row.get("note", "")}


def build(root: Path) -> Dict[str, Any]:
    """The mapping from the committed results under ``root`` (the repository)."""
    rows = [row for source in SOURCES for row in rows_of(source, root)]
    kinds: Dict[str, Any] = {}
    for kind, about in KINDS.items():
        mine = [r for r in rows if r["kind"] == kind]
        levels = sorted({r["level"] for r in mine}, key=lambda v: (v is None, v if v is not None else 0))
        entries = []
        for level in levels or [None]:
            at = [r for r in mine if r["level"] == level]
            entries.append({
                "level": level,
                "conditions": sorted({r["condition"] for r in at if r["condition"]}),
                "pick": {metric: pick(at, metric) for metric in METRICS},
                "rows": at,
            })
        kinds[kind] = {**about, "levels": entries}
    return _round({
        "about": "Generated by python -m depth_strategies.inspect.mapping from the committed study results; "
                 "do not edit. The pick rule: the module's docstring.",
        "standard": {"min_seeds": MIN_SEEDS, "interval": "95 % Student t over per-seed differences, runs paired by "
                                                         "seed on one machine", "source": "docs/statistics.md"},
        "sources": [{"results": s.results, "note": s.note} for s in SOURCES],
        "kinds": kinds,
        "order": list(KINDS),
    })


def render(mapping: Mapping[str, Any]) -> str:
    """The mapping as JSON text (sorted keys, two-space indent, a final newline)."""
    return json.dumps(mapping, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def shipped_mapping() -> Dict[str, Any]:
    """The mapping shipped with the package."""
    return json.loads(shipped_config(MAPPING_FILE).read_text())


def ns_train_line(choice: Mapping[str, Any], dataparser: str, data: str, degradations: Sequence[str] = ()
                  ) -> Optional[str]:
    """The ``ns-train`` command of a pick: its registered method, its overrides as flags, the size profile of the
    row it rests on, the ``degradations`` (``--pipeline.datamanager.depth-degradations``, quoted), the dataparser and
    the data; None without a pick."""
    if not choice.get("method"):
        return None
    sizes = (choice.get("row") or {}).get("regime", {}).get("sizes")
    parts = ["ns-train", choice["method"]]
    if sizes:
        load_size_profile(sizes)  # a profile that does not exist fails here, not in the user's shell
        parts.append(f"$(ds-flags {sizes})")
    parts += ns_train_flags(choice.get("overrides") or {})
    if degradations:
        parts += ["--pipeline.datamanager.depth-degradations", *(shlex.quote(d) for d in degradations)]
    parts += [dataparser, "--data", shlex.quote(data)]
    return " ".join(parts)


def _num(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:+.2f}" if abs(value) >= 0.1 else f"{value:+.3f}"


def readme_table(mapping: Mapping[str, Any]) -> str:
    """The README's "which method for my depth" table: one line per kind and studied level, the pick for images
    and for geometry with its figure and status."""
    lines = ["| your depth (kind) | level (condition) | for images (PSNR, dB) | for geometry (depth L1) | evidence |",
             "|---|---|---|---|---|"]
    for kind in mapping["order"]:
        entry = mapping["kinds"][kind]
        for level in entry["levels"]:
            cells = []
            psnr = level["pick"]["psnr"]
            for metric in METRICS:
                choice = level["pick"][metric]
                if not choice["method"]:
                    cells.append(choice["status"])
                    continue
                if choice.get("mean") is None and "established_losses" in choice:  # the reference: none beats it
                    losing = [f"`{x['method']}` {_num(x['mean'])} [{_num(x['interval'][0])}, "
                              f"{_num(x['interval'][1])}]" for x in choice["established_losses"]]
                    cells.append(f"`{choice['method']}`: no method's mean is better"
                                 + (f"; established losses: {', '.join(losing)}" if losing else ""))
                    continue
                figure = _num(choice.get("mean"))
                interval = choice.get("interval")
                if interval and None not in interval:
                    figure += f" [{_num(interval[0])}, {_num(interval[1])}]"
                where = (choice.get("row") or {}).get("scene")
                if where and where != (psnr.get("row") or {}).get("scene"):
                    figure += f" on {where}"  # another study's row than the evidence column names
                cells.append(f"`{choice['method']}` {figure}, {choice['status']}")
            row = psnr.get("row")
            seeds = psnr.get("seeds", 0)
            evidence = (f"{row['protocol']}, {row['scene']}, {seeds} paired seed{'s' if seeds != 1 else ''}, "
                        f"`{row['regime']['sizes']}` sizes" if row else psnr["why"])
            label = f"{level['level']:g} ({', '.join(level['conditions'])})" if level["conditions"] else "–"
            lines.append(f"| {entry['describes']} (`{kind}`) | {label} | {cells[0]} | {cells[1]} | {evidence} |")
    return "\n".join(lines) + "\n"


def repository_root() -> Path:
    """The repository this module sits in (where ``docs/results/`` is)."""
    return Path(__file__).resolve().parents[2]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    parser.add_argument("--root", type=Path, default=repository_root(), help="the repository (docs/results/)")
    args = parser.parse_args(argv)
    text = render(build(args.root))
    target = args.root / "depth_strategies" / "configs" / MAPPING_FILE
    if args.check:
        if not target.is_file() or target.read_text() != text:
            raise SystemExit(f"{target} differs from what docs/results/ gives: run python -m "
                             "depth_strategies.inspect.mapping")
        print(f"{target}: up to date")
        return
    target.write_text(text)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
