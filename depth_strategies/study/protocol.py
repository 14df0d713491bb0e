"""Comparison protocols as data: a YAML file under ``configs/`` declares scenes, methods, budgets, sweeps and
metrics; this module validates it against one schema (:mod:`depth_strategies.study.runs` expands it into runs).

Schema (every key optional unless marked; unknown keys are errors that name the key path)::

    name: quick                       # required: used in messages and results.json
    description: "..."
    scenes:                           # required; each exactly one of generate / room / path / split / rgbd
      - name: builtin
        generate: {resolution: 64, views_train: 30, views_val: 1, views_test: 4, seed: 0}   # ds-make-scene
      - name: lego
        path: ../shared/data/lego     # an existing Blender-format folder (relative: see below)
      - name: lego-100
        split: {source: ../shared/data/lego, from_split: test, n_train: 100, n_val: 5, n_test: 20, seed: 0}
      - name: kitchen
        rgbd: {source: ../shared/data/redkitchen, downscale: 4, test_every: 8}   # ds-import-rgbd
    methods:                          # required: registered names, variants, or nerfstudio's depth-nerfacto
      - depth-baseline
      - {name: depth-soft-dsnerf, base: depth-soft, overrides: {pipeline.model.soft_depth_loss: ds-nerf}}
      - {name: depth-nerfacto, external: depth-nerfacto}
    baseline: depth-baseline          # what every method is compared with
    sizes: cpu                        # size profile of configs/sizes.yaml
    overrides: {}                     # dotted config paths applied to every method
    iterations: 300                   # training iterations per run
    seeds: 1                          # number of seeds (0..n-1) or an explicit list
    device: auto                      # auto | cpu | cuda
    eval_every: 100                   # periodic test-view evaluation for the curves (0: only at the end)
    curve_views: 2                    # test views used by the periodic evaluation
    panel_views: 3                    # test views shown in the comparison panels (or a list of test-view indices)
    sweeps:                           # grids over config fields of one method -> ablation table and plot
      - {name: lambda_soft, method: depth-soft, field: pipeline.model.soft_depth_mult, values: [0.003, 0.03, 0.3]}
    metrics: {psnr: higher, ssim: higher, lpips: lower, depth_l1: lower}   # reported metrics and direction
    primary_metrics: [psnr, depth_l1] # the declared test family: primary_metrics x compared methods (Holm)
    compared: []                      # methods tested against the baseline (empty: all but the baseline)
    # a method outside `compared` may run fewer seeds: {name: depth-hard-nomask, base: depth-hard, seeds: 3, ...}

Relative scene paths (``path``, ``split.source``, ``rgbd.source``) are resolved from the data root:
``ds-compare --data-root DIR``, by default the current directory (the repository root for the shipped lego and
redkitchen protocols, whose data lies in ``../shared/data``). Shipped protocols are package data
(``depth_strategies/configs/``), found by name from any directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, List, Literal, Mapping, Optional, Tuple, Union

import yaml

from depth_strategies.core.degradation import parse_degradation
from depth_strategies.core.metrics import DEFAULT_PRIMARY_METRICS, METRICS
from depth_strategies.methods import (
    METHOD_FIELDS,
    SIZES_FILE,
    SPEEDS_FILE,
    load_size_profile,
    shipped_config,
    shipped_configs,
)
from depth_strategies.scenes.builtin import PROTOCOL_DEFAULTS
from depth_strategies.scenes.room import Room as RoomSpec

EXTERNAL_METHODS = ("depth-nerfacto", "depth-nerfacto-nerfstudio-data")
"""nerfstudio methods the comparison can run as external references (on our datamanager): ``depth-nerfacto`` on
the scene as it is; ``depth-nerfacto-nerfstudio-data`` as shipped on the scene converted to nerfstudio-data, with
a white background (:func:`depth_strategies.methods.depth_nerfacto_on_nerfstudio_data`)."""


class ProtocolError(ValueError):
    """A protocol file does not match the schema; the message names the file and the key path."""


@dataclass(frozen=True)
class GenerateSpec:
    """A built-in scene made by ``ds-make-scene``; a key left out takes its value from
    :data:`depth_strategies.scenes.builtin.PROTOCOL_DEFAULTS` (supersampling: ds-make-scene's default)."""

    resolution: int = PROTOCOL_DEFAULTS.resolution
    """Image width and height in pixels."""
    views_train: int = PROTOCOL_DEFAULTS.views_train
    """Training views."""
    views_val: int = PROTOCOL_DEFAULTS.views_val
    """Validation views (nerfstudio's periodic evaluation)."""
    views_test: int = PROTOCOL_DEFAULTS.views_test
    """Held-out test views that are scored."""
    seed: int = PROTOCOL_DEFAULTS.seed
    """Camera seed of ds-make-scene."""
    scene: str = PROTOCOL_DEFAULTS.scene
    """Which object ds-make-scene renders (``--scene``): "builtin" or "thin"."""


@dataclass(frozen=True)
class SplitSpec:
    """A ``ds-split-scene`` recipe over a scene with depth in one split."""

    source: str
    """Source Blender-format folder (relative to the repository root, or absolute)."""
    from_split: str = "test"
    """Split of the source whose views have depth."""
    n_train: Optional[int] = None
    """Training views (evenly spread over the even views; all when null)."""
    n_val: int = 5
    """Validation views."""
    n_test: Optional[int] = None
    """Test views (evenly spread over the remaining odd views; all when null)."""
    seed: int = 0
    """Seed of the spread offsets."""


@dataclass(frozen=True)
class RgbdSpec:
    """A real RGB-D capture (7-Scenes or TUM RGB-D layout) imported by ``ds-import-rgbd``
    (:func:`depth_strategies.scenes.rgbd.import_rgbd`); a key left out takes the importer's default."""

    source: str
    """The capture's folder (relative to the data root, or absolute); read in place, never copied."""
    stride: int = 1
    """Import every Nth frame."""
    downscale: int = 1
    """Integer factor for images, depth and intrinsics."""
    test_every: int = 8
    """Every Kth frame along the trajectory is a test view, never trained on (>= 2)."""
    max_depth: Optional[float] = None
    """Depth beyond this many metres is unknown (null: keep every reading)."""
    depth_scale: Optional[float] = None
    """Depth PNG units per metre (null: the layout's default, 1000 for 7-Scenes, 5000 for TUM)."""


@dataclass(frozen=True)
class SceneSpec:
    """One scene of the protocol: exactly one of ``generate``, ``room``, ``path``, ``split`` and ``rgbd``."""

    name: str
    """Name of the scene in results and tables."""
    generate: Optional[GenerateSpec] = None
    """Make the built-in scene."""
    room: Optional[RoomSpec] = None
    """Make the built-in room capture (nerfstudio-data)."""
    path: Optional[str] = None
    """Use an existing folder: Blender format (``transforms_train.json``) or nerfstudio-data (``transforms.json``,
    e.g. ``ns-process-data record3d|polycam`` output, with a ``depth_file_path`` per frame)."""
    split: Optional[SplitSpec] = None
    """Make a ds-split-scene of a source folder."""
    rgbd: Optional[RgbdSpec] = None
    """Import a real RGB-D capture with ds-import-rgbd."""


@dataclass(frozen=True)
class MethodSpec:
    """A method of the comparison."""

    name: str
    """Name in results and tables (a registered method, or a new name for a variant)."""
    base: Optional[str] = None
    """Registered method a variant starts from (defaults to ``name``)."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Dotted config paths replaced for this method only."""
    external: Optional[str] = None
    """An external nerfstudio method run as a reference (``depth-nerfacto``)."""
    seeds: Optional[Tuple[int, ...]] = None
    """Seeds of this method, a count (0..n-1) or a list, within the protocol's (None: all of the protocol's): fewer
    seeds for a method outside the declared family, e.g. an ablation variant at 3 seeds, reported as exploratory,
    while the family runs 5. The baseline and the methods of ``compared`` run every seed of the protocol."""


@dataclass(frozen=True)
class SweepSpec:
    """A grid over one config field of one method: an ablation table and plot."""

    name: str
    """Name of the ablation."""
    method: str
    """Method (by its protocol name) whose field is varied."""
    field: str
    """Dotted config path (e.g. ``pipeline.model.soft_depth_mult``)."""
    values: Tuple[Any, ...]
    """Values of the field; the method's own value is marked in the table."""


@dataclass(frozen=True)
class ConditionSpec:
    """A condition every method is trained under, one level of one kind: of the training depth (a robustness study:
    the degradations every method's training depth goes through, :mod:`depth_strategies.core.degradation`) or of
    the training regime (a factor study: config fields and iterations every method gets, e.g. nerfacto's NeRF
    samples per ray on top of the ``cpu`` profile). Every method is compared with the baseline under the same
    condition."""

    name: str
    """Name in results and tables (e.g. ``noise-3``)."""
    kind: str
    """The kind this condition is a level of (e.g. ``noise``, ``nerf_samples``), grouping conditions into one table
    and plot; ``clean`` for the reference condition (the exact depth, the protocol's own regime), which every
    kind's table starts from."""
    level: float
    """Where the condition lies on its kind's axis (e.g. sigma as a fraction of depth; the density kept; samples
    per ray)."""
    degradations: Tuple[str, ...] = ()
    """``pipeline.datamanager.depth_degradations`` of the condition, each ``kind(key=value, ...)``."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Dotted config paths set for every method under this condition, applied after the method's own (a regime
    factor: ``pipeline.model.num_nerf_samples_per_ray: 48``)."""
    iterations: Optional[int] = None
    """Training iterations of every run under this condition (None: the protocol's ``iterations``)."""


@dataclass(frozen=True)
class Protocol:
    """A whole comparison."""

    name: str
    """Protocol name."""
    scenes: Tuple[SceneSpec, ...]
    """Scenes to train and test on."""
    methods: Tuple[MethodSpec, ...]
    """Methods to compare."""
    description: str = ""
    """One paragraph for the report."""
    baseline: str = "depth-baseline"
    """Method every other is compared with (must be in ``methods``)."""
    sizes: Optional[str] = "cpu"
    """Size profile of configs/sizes.yaml, or null for the method defaults (GPU sizes)."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Dotted config paths applied to every method."""
    iterations: int = 300
    """Training iterations per run."""
    seeds: Tuple[int, ...] = (0,)
    """Seeds; every (scene, method, seed) is one run."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device for every run."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """What each run asks of the executor: ``cpus`` (default 1), ``gpus`` (default 1 on CUDA, else 0) and
    ``memory_gb`` (Ray only; default none reserved)."""
    executor: Literal["local", "ray"] = "local"
    """Who runs the runs (ds-compare --executor overrides it): this machine, or Ray
    (:mod:`depth_strategies.study.executors`)."""
    eval_every: int = 100
    """Evaluate curve views every this many iterations (0: only at the end)."""
    curve_views: int = 2
    """Test views in the periodic evaluation (the first ones)."""
    panel_views: Union[int, Tuple[int, ...]] = 3
    """Test views whose renders are kept for the comparison panels: a count (the first N test views), or a list of
    test-view indices (0-based, in the scene's test order), e.g. the views where an earlier run differed most."""
    sweeps: Tuple[SweepSpec, ...] = ()
    """Ablations."""
    metrics: Mapping[str, Literal["higher", "lower"]] = field(
        default_factory=lambda: {name: spec.better for name, spec in METRICS.items()}
    )
    """Reported metrics and whether higher or lower is better."""
    primary_metrics: Tuple[str, ...] = DEFAULT_PRIMARY_METRICS
    """The metrics of the declared test family: Holm's correction runs over primary_metrics x compared methods
    against the baseline, fixed by this file (a missing run counts as p = 1), so adding or losing a run elsewhere
    never changes a mark. Other metrics get raw p-values, reported as exploratory."""
    compared: Tuple[str, ...] = ()
    """Methods of the declared test family (empty: every method of the protocol but the baseline)."""
    conditions: Tuple[ConditionSpec, ...] = ()
    """Conditions of the training depth (a robustness study): every method runs under each, and each gets its own
    tables; empty: the depth as stored."""
    condition_free: Tuple[str, ...] = ()
    """Methods that never read training depth (the RGB-only baseline): run once per scene and seed, without a
    condition, and reported under every condition (the worker refuses a condition-free run that reads depth)."""
    source: Optional[str] = None
    """File the protocol was read from."""


# ------------------------------------------------------------------------------------------- parsing
def _fail(source: str, path: str, message: str) -> ProtocolError:
    return ProtocolError(f"{source}: {path.removeprefix('.') or '<top level>'}: {message}")


def _expect(value: Any, kind: Union[type, Tuple[type, ...]], source: str, path: str, what: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise _fail(source, path, f"expected {what}, got {value!r}")
    if not isinstance(value, kind):
        raise _fail(source, path, f"expected {what}, got {type(value).__name__} {value!r}")
    return value


def _parse_dataclass(cls: type, data: Any, source: str, path: str) -> Any:
    """Build ``cls`` from a mapping, rejecting unknown keys and missing required ones."""
    _expect(data, dict, source, path, "a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        allowed = ", ".join(name for name in fields if not (cls is Protocol and name == "source"))
        raise _fail(source, f"{path}.{sorted(unknown)[0]}", f"unknown key; allowed: {allowed}")
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise _fail(source, f"{path}.{missing[0]}", "required key is missing")
    kwargs = {}
    for name, value in data.items():
        sub = f"{path}.{name}"
        if cls is GenerateSpec and name == "scene":
            from depth_strategies.scenes.geometry import SCENES

            if value not in SCENES:
                raise _fail(source, sub, f"unknown scene {value!r}; use one of {', '.join(SCENES)}")
        elif cls is RgbdSpec and name in ("max_depth", "depth_scale"):
            if value is not None:
                _expect(value, (int, float), source, sub, "a number")
                if value <= 0:
                    raise _fail(source, sub, f"must be > 0, got {value}")
        elif cls is RgbdSpec and name == "test_every":
            _expect(value, int, source, sub, "an integer")
            if value < 2:
                raise _fail(source, sub, f"must be >= 2 (every Kth frame is a test view), got {value}")
        elif cls in (GenerateSpec, RoomSpec, RgbdSpec) and name != "source" or (
                cls is SplitSpec and name not in ("source", "from_split")):
            if value is not None or name not in ("n_train", "n_test"):
                _expect(value, int, source, sub, "an integer")
                if value < (0 if name == "seed" else 1):
                    raise _fail(source, sub, f"must be >= {0 if name == 'seed' else 1}, got {value}")
        elif name in ("name", "source", "from_split", "path", "base", "external", "method", "field"):
            if value is not None:
                _expect(value, str, source, sub, "a string")
        kwargs[name] = value
    return cls(**kwargs)


def protocol_from_results(data: Mapping[str, Any], source: str) -> Protocol:
    """The protocol as a study ran it, from its ``results.json`` (``dataclasses.asdict`` of the :class:`Protocol`:
    every scene lists all its kinds, the unused ones null)."""
    data = {k: v for k, v in data.items() if k != "source"}
    data["scenes"] = [{k: v for k, v in scene.items() if v is not None} for scene in data.get("scenes", [])]
    return parse_protocol(data, source)


def _parse_scene(data: Any, source: str, path: str) -> SceneSpec:
    _expect(data, dict, source, path, "a mapping with name and one of generate / room / path / split / rgbd")
    data = dict(data)
    if "generate" in data:
        data["generate"] = _parse_dataclass(GenerateSpec, data["generate"] or {}, source, f"{path}.generate")
    if "split" in data:
        data["split"] = _parse_dataclass(SplitSpec, data["split"], source, f"{path}.split")
    if "room" in data:
        data["room"] = _parse_dataclass(RoomSpec, data["room"] or {}, source, f"{path}.room")
    if "rgbd" in data:
        data["rgbd"] = _parse_dataclass(RgbdSpec, data["rgbd"], source, f"{path}.rgbd")
    scene = _parse_dataclass(SceneSpec, data, source, path)
    chosen = [k for k in ("generate", "room", "path", "split", "rgbd") if getattr(scene, k) is not None]
    if len(chosen) != 1:
        raise _fail(source, path, f"give exactly one of generate, room, path, split, rgbd (got {chosen or 'none'})")
    return scene


def _parse_seeds(seeds: Any, source: str, path: str) -> Tuple[int, ...]:
    """A count (seeds 0..n-1) or a list of distinct integers."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise _fail(source, path, f"need at least one seed, got {seeds}")
        seeds = list(range(seeds))
    _expect(seeds, (list, tuple), source, path, "a count or a list of integers")
    for i, s in enumerate(seeds):
        _expect(s, int, source, f"{path}[{i}]", "an integer")
    if len(set(seeds)) != len(seeds):
        raise _fail(source, path, f"seeds must be distinct, got {list(seeds)}")
    return tuple(seeds)


def _parse_method(data: Any, source: str, path: str) -> MethodSpec:
    if isinstance(data, str):
        data = {"name": data}
    if isinstance(data, dict) and data.get("seeds") is not None:
        data = {**data, "seeds": _parse_seeds(data["seeds"], source, f"{path}.seeds")}
    method = _parse_dataclass(MethodSpec, data, source, path)
    _expect(method.overrides, dict, source, f"{path}.overrides", "a mapping of dotted config paths")
    if method.external is not None:
        if method.external not in EXTERNAL_METHODS:
            raise _fail(source, f"{path}.external", f"unknown external method; known: {', '.join(EXTERNAL_METHODS)}")
        if method.base is not None:
            raise _fail(source, path, "an external method has no base")
    else:
        base = method.base or method.name
        if base not in METHOD_FIELDS:
            raise _fail(
                source,
                f"{path}.{'base' if method.base else 'name'}",
                f"unknown method {base!r}; registered: {', '.join(METHOD_FIELDS)} (or set external / base)",
            )
    return dataclasses.replace(method, overrides=dict(method.overrides))


def parse_protocol(data: Any, source: str) -> Protocol:
    """Validate a protocol mapping (as loaded from YAML) and build a :class:`Protocol`."""
    _expect(data, dict, source, "", "a mapping")
    data = dict(data)
    for key in ("scenes", "methods"):
        if key in data:
            _expect(data[key], list, source, key, "a list")
            if not data[key]:
                raise _fail(source, key, "must not be empty")
    if "scenes" in data:
        data["scenes"] = tuple(_parse_scene(s, source, f"scenes[{i}]") for i, s in enumerate(data["scenes"]))
    if "methods" in data:
        data["methods"] = tuple(_parse_method(m, source, f"methods[{i}]") for i, m in enumerate(data["methods"]))
    if "seeds" in data:
        data["seeds"] = _parse_seeds(data["seeds"], source, "seeds")
    if "sweeps" in data:
        _expect(data["sweeps"], list, source, "sweeps", "a list")
        sweeps = []
        for i, s in enumerate(data["sweeps"]):
            sweep = _parse_dataclass(SweepSpec, s, source, f"sweeps[{i}]")
            _expect(sweep.values, list, source, f"sweeps[{i}].values", "a list")
            if not sweep.values:
                raise _fail(source, f"sweeps[{i}].values", "must not be empty")
            sweeps.append(dataclasses.replace(sweep, values=tuple(sweep.values)))
        data["sweeps"] = tuple(sweeps)
    if "conditions" in data:
        _expect(data["conditions"], list, source, "conditions", "a list")
        conditions = []
        for i, c in enumerate(data["conditions"]):
            condition = _parse_dataclass(ConditionSpec, c, source, f"conditions[{i}]")
            _expect(condition.kind, str, source, f"conditions[{i}].kind", "a string")
            _expect(condition.level, (int, float), source, f"conditions[{i}].level", "a number")
            _expect(condition.degradations, (list, tuple), source, f"conditions[{i}].degradations", "a list of strings")
            for j, text in enumerate(condition.degradations):
                try:
                    parse_degradation(text)
                except ValueError as err:
                    raise _fail(source, f"conditions[{i}].degradations[{j}]", str(err)) from None
            _expect(condition.overrides, dict, source, f"conditions[{i}].overrides",
                    "a mapping of dotted config paths")
            if condition.iterations is not None:
                _expect(condition.iterations, int, source, f"conditions[{i}].iterations", "an integer")
                if condition.iterations < 1:
                    raise _fail(source, f"conditions[{i}].iterations", f"must be >= 1, got {condition.iterations}")
            conditions.append(dataclasses.replace(condition, degradations=tuple(condition.degradations),
                                                  overrides=dict(condition.overrides)))
        data["conditions"] = tuple(conditions)
    if isinstance(data.get("panel_views"), list):
        indices = data["panel_views"]
        for i, index in enumerate(indices):
            _expect(index, int, source, f"panel_views[{i}]", "a test-view index (an integer)")
            if index < 0:
                raise _fail(source, f"panel_views[{i}]", f"must be >= 0, got {index}")
        if len(set(indices)) != len(indices):
            raise _fail(source, "panel_views", f"test-view indices must be unique, got {indices}")
        data["panel_views"] = tuple(indices)
    for key in ("iterations", "eval_every", "curve_views", "panel_views"):
        if key in data and not (key == "panel_views" and isinstance(data[key], tuple)):
            _expect(data[key], int, source, key, "an integer")
            if data[key] < (1 if key == "iterations" else 0):
                raise _fail(source, key, f"must be >= {1 if key == 'iterations' else 0}, got {data[key]}")
    if "device" in data and data["device"] not in ("auto", "cpu", "cuda"):
        raise _fail(source, "device", f"expected auto, cpu or cuda, got {data['device']!r}")
    if "resources" in data:
        _expect(data["resources"], dict, source, "resources", "a mapping of cpus / gpus / memory_gb")
        for key, value in data["resources"].items():
            if key not in ("cpus", "gpus", "memory_gb"):
                raise _fail(source, f"resources.{key}", "unknown key; allowed: cpus, gpus, memory_gb")
            if _expect(value, (int, float), source, f"resources.{key}", "a number") < 0:
                raise _fail(source, f"resources.{key}", f"must be >= 0, got {value}")
    if "executor" in data and data["executor"] not in ("local", "ray"):
        raise _fail(source, "executor", f"expected local or ray, got {data['executor']!r}")
    for key in ("overrides",):
        if key in data:
            _expect(data[key], dict, source, key, "a mapping of dotted config paths")
    if "metrics" in data:
        _expect(data["metrics"], dict, source, "metrics", "a mapping metric: higher|lower")
        for name, better in data["metrics"].items():
            if name not in METRICS:
                raise _fail(source, f"metrics.{name}", f"unknown metric; known: {', '.join(METRICS)}")
            if better != METRICS[name].better:
                raise _fail(source, f"metrics.{name}", f"{name} is {METRICS[name].better}-is-better, not {better!r}")
    for key in ("primary_metrics", "compared", "condition_free"):
        if key in data:
            _expect(data[key], list, source, key, "a list of names")
            data[key] = tuple(data[key])
    protocol = _parse_dataclass(Protocol, {**data, "source": source}, source, "")
    for i, metric in enumerate(protocol.primary_metrics):
        if metric not in protocol.metrics:
            raise _fail(source, f"primary_metrics[{i}]", f"{metric!r} is not a reported metric of this protocol")
    names = [m.name for m in protocol.methods]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise _fail(source, "methods", f"duplicate method name {sorted(duplicates)[0]!r}")
    if protocol.baseline not in names:
        raise _fail(source, "baseline", f"{protocol.baseline!r} is not one of the methods ({', '.join(names)})")
    scene_names = [s.name for s in protocol.scenes]
    if len(set(scene_names)) != len(scene_names):
        raise _fail(source, "scenes", "scene names must be unique")
    for i, method in enumerate(protocol.compared):
        if method not in names or method == protocol.baseline:
            raise _fail(source, f"compared[{i}]", f"{method!r} is not one of the methods other than the baseline")
    for i, method in enumerate(protocol.methods):
        if method.seeds is None:
            continue
        where = f"methods[{i}].seeds"
        outside = [s for s in method.seeds if s not in protocol.seeds]
        if outside:
            raise _fail(source, where, f"seeds {outside} are not among the protocol's seeds {list(protocol.seeds)}")
        if method.name == protocol.baseline:
            raise _fail(source, where, "the baseline runs every seed of the protocol (each run is paired with its "
                                       "seed's baseline run)")
        if method.name in protocol.compared or not protocol.compared:
            raise _fail(source, where, "a method of the declared family runs every seed of the protocol; list the "
                                       "family in `compared` and leave this method out of it (it is then exploratory)")
    condition_names = [c.name for c in protocol.conditions]
    if len(set(condition_names)) != len(condition_names):
        raise _fail(source, "conditions", "condition names must be unique")
    for i, method in enumerate(protocol.condition_free):
        if method not in names:
            raise _fail(source, f"condition_free[{i}]", f"{method!r} is not one of the methods")
    if protocol.condition_free and not protocol.conditions:
        raise _fail(source, "condition_free", "only meaningful with conditions")
    for i, sweep in enumerate(protocol.sweeps):
        if sweep.method not in names:
            raise _fail(source, f"sweeps[{i}].method", f"{sweep.method!r} is not one of the methods")
    if protocol.sizes is not None:
        try:
            load_size_profile(protocol.sizes)
        except KeyError as err:
            raise _fail(source, "sizes", str(err.args[0])) from None
    return protocol


def shipped_protocols() -> List[str]:
    """Names of the protocols shipped with the package (``quick``, ``lego``, ...)."""
    return [name.removesuffix(".yaml") for name in shipped_configs()
            if name not in (SIZES_FILE, SPEEDS_FILE)]


def load_protocol(name_or_path: str) -> Protocol:
    """Read and validate a protocol: an existing YAML file, or the name of a shipped one (``quick``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        source: Union[Path, Traversable] = path
    elif name_or_path in shipped_protocols():
        source = shipped_config(f"{name_or_path}.yaml")
    else:
        raise ProtocolError(
            f"no protocol {name_or_path!r}: not a file, and not a shipped protocol ({', '.join(shipped_protocols())})"
        )
    try:
        data = yaml.safe_load(source.read_text())
    except yaml.YAMLError as err:
        raise ProtocolError(f"{source}: not valid YAML: {err}") from None
    return parse_protocol(data, str(source))


def resolve_path(path: str, data_root: Path) -> Path:
    """A protocol's scene path: absolute, or relative to ``data_root``; it must exist."""
    p = Path(path).expanduser()
    resolved = p if p.is_absolute() else (data_root / p).resolve()
    if not resolved.exists():
        raise ProtocolError(
            f"{path}: no such folder (looked at {resolved}); relative scene paths are resolved from the data root "
            f"({data_root.resolve()}): run from the folder they are relative to or pass --data-root DIR"
        )
    return resolved
