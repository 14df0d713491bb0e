"""The console scripts (``ds-compare``, ``ds-flags``, ...), each a thin wrapper that imports and runs its command
inside :func:`quiet_third_party_warnings`.

torch and nerfstudio emit deprecation warnings when they are imported (``torch.jit.script``,
``torch.cuda.amp.custom_fwd``); a user would otherwise read a page of them before the first line of the
command's own output. They are silenced only while a console script runs, by exact message, never by category
alone, and never at import: a program or a test that imports this package sees every warning as before.
"""

from __future__ import annotations

import importlib
import warnings
from contextlib import contextmanager
from typing import Iterator, Tuple, Type

KNOWN_THIRD_PARTY_WARNINGS: Tuple[Tuple[Type[Warning], str], ...] = (
    (FutureWarning, r"`torch\.jit\.script` is deprecated"),
    (FutureWarning, r"`torch\.cuda\.amp\.custom_(fwd|bwd)\(args\.\.\.\)` is deprecated"),
    (FutureWarning, r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated"),
    (UserWarning, r"This DataLoader will create \d+ worker processes in total"),
)
"""(category, message regex) of warnings raised inside torch and nerfstudio 1.1.5 that a user can do nothing
about: deprecations of torch APIs that nerfstudio calls, and nerfstudio's DataLoader worker count on small
machines."""


@contextmanager
def quiet_third_party_warnings() -> Iterator[None]:
    """Ignore :data:`KNOWN_THIRD_PARTY_WARNINGS` inside the block; the previous filters come back after it."""
    with warnings.catch_warnings():
        for category, message in KNOWN_THIRD_PARTY_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def _run(module: str, function: str = "entrypoint") -> None:
    with quiet_third_party_warnings():
        getattr(importlib.import_module(module), function)()


def compare() -> None:
    """``ds-compare``, with the plots and panels of :mod:`depth_strategies.viz` drawn into its output: the study sits
    a layer below ``viz`` and never imports it, so the figure maker is handed to it here (docs/development.md,
    Layers)."""
    with quiet_third_party_warnings():
        from depth_strategies.study.compare import entrypoint
        from depth_strategies.viz.figures import make_all_figures

        entrypoint(figures=make_all_figures)


def bench() -> None:
    """``ds-bench``."""
    _run("depth_strategies.study.bench")


def flags() -> None:
    """``ds-flags``."""
    _run("depth_strategies.methods", "flags_entrypoint")


def make_scene() -> None:
    """``ds-make-scene``."""
    _run("depth_strategies.scenes.builtin")


def make_room() -> None:
    """``ds-make-room``."""
    _run("depth_strategies.scenes.room")


def split_scene() -> None:
    """``ds-split-scene``."""
    _run("depth_strategies.scenes.split")


def to_nerfstudio_data() -> None:
    """``ds-to-nerfstudio-data``."""
    _run("depth_strategies.scenes.nerfstudio_data")


def camera_path() -> None:
    """``ds-camera-path``."""
    _run("depth_strategies.viz.camera_path")


def video() -> None:
    """``ds-video``."""
    _run("depth_strategies.viz.video", "video_entrypoint")


def figures() -> None:
    """``ds-figures``."""
    _run("depth_strategies.viz.ray_figures", "figures_entrypoint")


def inspect() -> None:
    """``ds-inspect``."""
    _run("depth_strategies.inspect.command")
