"""Where a run came from: the code and the fully resolved config that trained it (``docs/statistics.md``).

A run's fingerprint hashes its spec (:meth:`depth_strategies.study.runs.RunSpec.fingerprint`), the hash of its
resolved method config (:func:`config_hash`) and the hash of the training code (:func:`source_hash`), so a changed
method default or a changed model makes a finished run *stale*: ``ds-compare`` names it and trains it again unless
told to reuse it (``--reuse-stale``). Every ``result.json`` and ``job.json`` records the pieces (:func:`expected`).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import enum
import functools
import hashlib
import json
import re
import subprocess
import types
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import yaml
from nerfstudio.engine.trainer import TrainerConfig

from depth_strategies.methods import (
    apply_overrides,
    depth_nerfacto_on_nerfstudio_data,
    depth_nerfacto_reference,
    method_config,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
"""The ``depth_strategies`` package folder."""
TRAINING_SOURCES = (
    "core",
    "scenes",
    "methods.py",
    "data.py",
    "model.py",
    "reference.py",
    "training.py",
    "study/worker.py",
    "study/evaluation.py",
    "configs/sizes.yaml",
)
"""What trains and scores a run, relative to the package: the code whose change makes a finished run stale. The
tables, statistics, figures and the study's bookkeeping are left out: changing them changes no run."""


def _files(package_dir: Path):
    for entry in TRAINING_SOURCES:
        path = package_dir / entry
        if path.is_dir():
            found = path.rglob("*")
            yield from sorted(p for p in found if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts)
        elif path.is_file():
            yield path


def normalised_source(path: Path) -> bytes:
    """What of a training source file can change a run: a Python module's syntax tree without its docstrings (so
    comments, docstrings and formatting do not count), a YAML file's parsed content (comments and layout do not
    count); any other file's bytes."""
    text = path.read_bytes()
    if path.suffix == ".py":
        tree = ast.parse(text, filename=str(path))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
            if isinstance(node, (ast.Module, ast.ClassDef)):  # attribute docstrings: a string after a field
                node.body = [stmt for stmt in node.body if not (isinstance(stmt, ast.Expr) and isinstance(
                    stmt.value, ast.Constant) and isinstance(stmt.value.value, str))] or [ast.Pass()]
        return ast.dump(tree, annotate_fields=False).encode()
    if path.suffix in (".yaml", ".yml"):
        return json.dumps(yaml.safe_load(text), sort_keys=True, default=str).encode()
    return text


def hash_sources(package_dir: Path) -> str:
    """SHA-256 (16 hex digits) of the training code of the package at ``package_dir``, :data:`TRAINING_SOURCES`:
    each file's package-relative path and :func:`normalised_source`, in path order. An edit of docstrings or
    comments alone leaves the hash, and so every finished run, as it was."""
    digest = hashlib.sha256()
    for path in _files(package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0" + normalised_source(path) + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def source_hash() -> str:
    """:func:`hash_sources` of this package, once per process (a study's parent and each of its workers)."""
    return hash_sources(PACKAGE_DIR)


def git_state(package_dir: Path = PACKAGE_DIR) -> Dict[str, Any]:
    """The git commit of the checkout the package runs from and whether its training code differs from it
    (``dirty``); ``{}`` outside a git checkout or without git."""
    repo = package_dir.parent

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--", *(f"{package_dir.name}/{entry}" for entry in TRAINING_SOURCES))
    return {"commit": commit, "dirty": bool(status)}


def resolved_config(run: Mapping[str, Any]) -> TrainerConfig:
    """A run's method config with its overrides (``run``: a :class:`~depth_strategies.study.runs.RunSpec` as a
    dict), before the worker adds its data and bookkeeping: what decides how the run trains.

    A deep copy: configs derived with ``dataclasses.replace`` share sub-configs with the module-level base config,
    and nerfstudio writes into some of them while it sets a run up (the pixel sampler's ``num_rays_per_batch``), so
    a shared one would carry one run's setup into every config made after it in the process (the worker's recorded
    config hash of ``depth-nerfacto`` differed from the study's expectation that way)."""
    if run["external"] == "depth-nerfacto":
        config = depth_nerfacto_reference()
    elif run["external"] == "depth-nerfacto-nerfstudio-data":
        config = depth_nerfacto_on_nerfstudio_data()
    else:
        config = method_config(run["base"])
    return copy.deepcopy(apply_overrides(config, dict(run["overrides"])))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def canonical(value: Any) -> Any:
    """A JSON-able form of a config value that depends only on what it says: dataclasses by their fields (not by
    attributes set on them later), classes and functions by their qualified names, enums by their values, tensors
    by their values, anything else by its type and its repr without memory addresses."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": f"{type(value).__module__}.{type(value).__qualname__}",
                **{f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((canonical(v) for v in value), key=repr)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return f"{type(value).__module__}.{type(value).__qualname__}:{_ADDRESS.sub('', repr(value))}"


def config_hash(config: TrainerConfig) -> str:
    """SHA-256 (16 hex digits) of a config's :func:`canonical` form."""
    return hashlib.sha256(json.dumps(canonical(config), sort_keys=True).encode()).hexdigest()[:16]


def run_fingerprint(spec_fingerprint: str, config_digest: str, code_digest: str) -> str:
    """The fingerprint a finished run must carry to be reused."""
    payload = json.dumps([spec_fingerprint, config_digest, code_digest])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def expected(spec) -> Dict[str, str]:
    """What a run of ``spec`` made by this code records: its spec, config and code hashes and their fingerprint."""
    config_digest = config_hash(resolved_config(dataclasses.asdict(spec)))
    return {
        "spec_fingerprint": spec.fingerprint(),
        "config_hash": config_digest,
        "source_hash": source_hash(),
        "fingerprint": run_fingerprint(spec.fingerprint(), config_digest, source_hash()),
    }


def staleness(result: Mapping[str, Any], wanted: Mapping[str, str]) -> Optional[str]:
    """Why a finished result of the same run spec is not what this code would make (None: it is): another method
    config, other training code, or no provenance at all (made before version 0.5)."""
    made = result.get("provenance") or {}
    if not made:
        return "made before runs recorded their code and config (version 0.4 or older)"
    reasons = []
    if made.get("config_hash") != wanted["config_hash"]:
        reasons.append("another method config")
    if made.get("source_hash") != wanted["source_hash"]:
        reasons.append("other training code")
    return " and ".join(reasons) or None


def classify(result: Optional[Mapping[str, Any]], wanted: Mapping[str, str]) -> Tuple[Optional[str], Optional[str]]:
    """What a run folder's ``result.json`` is to this code (``wanted``: :func:`expected` of the run's spec):
    ("current", None) for a finished run made by this code and config; ("stale", why) for a finished run of the same
    spec made by another config or other training code (or, with its fingerprint but another recorded provenance,
    by a worker whose code changed under the study); (None, None) for no finished run of this spec. The one rule of
    ``ds-compare``'s reuse and of ``--plan``."""
    if not result or result.get("status") != "ok":
        return None, None
    if result.get("fingerprint") == wanted["fingerprint"]:
        reason = staleness(result, wanted) if result.get("provenance") else None
        return ("current", None) if reason is None else ("stale", reason)
    made = (result.get("provenance") or {}).get("spec_fingerprint") or result.get("fingerprint")
    if made != wanted["spec_fingerprint"]:
        return None, None
    reason = staleness(result, wanted)
    return ("stale", reason) if reason else (None, None)
