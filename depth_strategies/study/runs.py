"""A protocol expanded into runs: one :class:`RunSpec` per (scene, condition, method or sweep point, seed), with
the overrides of each run in order and the fingerprint that decides whether a finished run is reused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from depth_strategies.methods import load_size_profile
from depth_strategies.study.protocol import ConditionSpec, MethodSpec, Protocol, ProtocolError


@dataclass(frozen=True)
class RunSpec:
    """One training run: a method (maybe a sweep point) on a scene with a seed."""

    scene: str
    """Scene name."""
    method: str
    """Method name in the protocol (for a sweep point: ``<method>@<field>=<value>``)."""
    base: Optional[str]
    """Registered method the config comes from (None for an external method)."""
    external: Optional[str]
    """External method name, if any."""
    overrides: Tuple[Tuple[str, Any], ...]
    """Dotted config overrides of this run, in order: size profile, protocol, method, condition, sweep."""
    seed: int
    """Machine seed of the run."""
    iterations: int
    """Training iterations."""
    sweep: Optional[Tuple[str, str, Any]] = None
    """(sweep name, field, value) for ablation runs."""
    condition: Optional[str] = None
    """Name of the protocol condition of the training depth, if any."""

    @property
    def run_id(self) -> str:
        """Folder name under ``runs/``: scene/method/seedN, or scene/condition/method/seedN."""
        safe = self.method.replace("/", "_").replace("=", "-")
        middle = f"{self.condition}/" if self.condition else ""
        return f"{self.scene}/{middle}{safe}/seed{self.seed}"

    def fingerprint(self) -> str:
        """Hash of everything that determines the run; a finished run is reused only if it matches. (A run without
        a condition hashes exactly as before conditions existed, so earlier results stay reusable.)"""
        fields = dataclasses.asdict(self)
        if fields["condition"] is None:
            del fields["condition"]
        payload = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


DEGRADATIONS_FIELD = "pipeline.datamanager.depth_degradations"
"""The config field a condition sets."""
DEGRADATION_SEED_FIELD = "pipeline.datamanager.degradation_seed"
"""The seed of a condition's degradations: the run's seed."""


def expand_runs(protocol: Protocol, only_methods: Optional[List[str]] = None) -> List[RunSpec]:
    """Every (scene, condition, method or sweep point, seed) run of the protocol; ``only_methods`` filters by name.
    Condition-free methods run once per scene and seed, without a condition."""
    sizes = list(load_size_profile(protocol.sizes).items()) if protocol.sizes else []
    common = sizes + list(protocol.overrides.items())
    methods = {m.name: m for m in protocol.methods}
    if only_methods:
        unknown = [m for m in only_methods if m not in methods]
        if unknown:
            raise ProtocolError(f"--methods: {unknown[0]!r} is not in protocol {protocol.name} ({', '.join(methods)})")
        keep = set(only_methods) | {protocol.baseline}
    else:
        keep = set(methods)
    conditions: List[Optional[ConditionSpec]] = list(protocol.conditions) or [None]
    runs: List[RunSpec] = []
    for scene in protocol.scenes:
        for seed in protocol.seeds:
            for m in protocol.methods:
                if m.name not in keep or m.name not in protocol.condition_free or not _runs_seed(m, seed):
                    continue
                runs.append(_method_run(scene.name, m, common, seed, protocol.iterations, None))
            for condition in conditions:
                for m in protocol.methods:
                    if m.name not in keep or m.name in protocol.condition_free or not _runs_seed(m, seed):
                        continue
                    runs.append(_method_run(scene.name, m, common, seed, protocol.iterations, condition))
                for sweep in protocol.sweeps:
                    if sweep.method not in keep:
                        continue
                    m = methods[sweep.method]
                    if not _runs_seed(m, seed):
                        continue
                    for value in sweep.values:
                        run = _method_run(scene.name, m, common, seed, protocol.iterations, condition)
                        runs.append(
                            dataclasses.replace(
                                run,
                                method=f"{m.name}@{sweep.name}={value}",
                                overrides=run.overrides + ((sweep.field, value),),
                                sweep=(sweep.name, sweep.field, value),
                            )
                        )
    return runs


def _runs_seed(m: MethodSpec, seed: int) -> bool:
    """Whether method ``m`` runs ``seed`` (a method with its own seeds runs those of the protocol's seeds, which
    ``ds-compare --seeds N`` may have narrowed)."""
    return m.seeds is None or seed in m.seeds


def _method_run(
    scene: str, m: MethodSpec, common: List[Tuple[str, Any]], seed: int, iterations: int,
    condition: Optional[ConditionSpec],
) -> RunSpec:
    overrides = common + list(m.overrides.items())
    if condition is not None:
        overrides += list(condition.overrides.items())
        iterations = condition.iterations or iterations
    if condition is not None and condition.degradations:
        overrides.append((DEGRADATIONS_FIELD, list(condition.degradations)))
        # one noise realisation per seed, the same for every method of that seed (a run is paired with the
        # baseline's and the other methods' runs of its seed; the seeds replicate the degradation too)
        overrides.append((DEGRADATION_SEED_FIELD, seed))
    return RunSpec(
        scene,
        m.name,
        None if m.external else (m.base or m.name),
        m.external,
        tuple(overrides),
        seed,
        iterations,
        condition=condition.name if condition is not None else None,
    )


def only_conditions(protocol: Protocol, runs: List[RunSpec], names: Tuple[str, ...]) -> List[RunSpec]:
    """The runs of the named conditions (``ds-compare --conditions``: a robustness or regime protocol one condition
    at a time, e.g. the one a finding rests on first); the condition-free runs stay, they are every condition's
    reference."""
    known = [c.name for c in protocol.conditions]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ProtocolError(f"--conditions: {unknown[0]!r} is not a condition of protocol {protocol.name} "
                            f"({', '.join(known) if known else 'it has none'})")
    return [r for r in runs if r.condition is None or r.condition in names]
