"""``ds-blender-render SCENE.blend OUT [options]`` (or ``--demo OUT``): the console script.

It checks that ``bpy`` can run here (the ``blender`` extra, Python 3.11 only) and runs
:mod:`depth_strategies.blender.render_scene` with this Python in a process of its own (Blender's state, its
output and a crash of a render engine stay out of the caller's process). Where ``bpy`` cannot run it says how to get
it, and how to run the same file with a stock Blender instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

from depth_strategies.blender import render_scene, views
from depth_strategies.blender.views import PROG, RenderError

BPY_PYTHON: Tuple[int, int] = (3, 11)
"""The Python version that ``bpy==5.0.1`` has wheels for (PyPI)."""
SCRIPT = Path(render_scene.__file__).resolve()
"""The file that runs inside Blender."""


def stock_blender_command(scene: Optional[str], out: str, script: Path = SCRIPT) -> str:
    """The same render with a stock Blender (its own Python and bpy)."""
    if scene is None:
        return f"blender -b -P {script} -- {out} --demo [options]"
    return f"blender -b {scene} -P {script} -- {out} [options]"


def bpy_problem(version: Tuple[int, int], find_spec: Callable[[str], object], scene: Optional[str], out: str) -> \
        Optional[str]:
    """Why ``bpy`` cannot run with this Python (``version``, ``find_spec`` as ``importlib.util.find_spec``), with
    what to do; None when it can."""
    stock = stock_blender_command(scene, out)
    if tuple(version[:2]) != BPY_PYTHON:
        return (f"the bpy package (Blender as a Python module, bpy==5.0.1) has wheels for Python "
                f"{BPY_PYTHON[0]}.{BPY_PYTHON[1]} only, and this is Python {version[0]}.{version[1]}. Install the "
                f"package in a Python {BPY_PYTHON[0]}.{BPY_PYTHON[1]} venv with pip install -e \".[blender]\", or "
                f"render with a stock Blender (blender.org, 5.0): {stock}")
    if find_spec("bpy") is None:
        return ("the bpy package (Blender as a Python module) is not installed: pip install -e \".[blender]\" "
                f"(bpy==5.0.1, about 370 MB), or render with a stock Blender (blender.org, 5.0): {stock}")
    return None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Render a .blend scene with depth for every split into OUT, a Blender-format dataset that "
                    "ns-train depth-* blender-data --data OUT trains on with no other flag. Resumable: views already "
                    "in OUT are kept.")
    p.add_argument("paths", nargs="+", metavar="SCENE.blend OUT", help="the scene and the output folder (with "
                   "--demo: the output folder only)")
    p.add_argument("--demo", action="store_true", help="render a small scene built from primitives instead of a .blend")
    views.add_options(p)
    return p


def entrypoint(argv: Optional[Sequence[str]] = None) -> None:
    """Console script ``ds-blender-render``."""
    p = parser()
    args = p.parse_args(argv)
    if len(args.paths) != (1 if args.demo else 2):
        p.error("give SCENE.blend OUT, or --demo OUT")
    scene, out = (None, args.paths[0]) if args.demo else (args.paths[0], args.paths[1])
    try:
        options = views.options_from(args)
    except RenderError as err:
        raise SystemExit(f"{PROG}: error: {err}") from None
    problem = bpy_problem(sys.version_info[:2], importlib.util.find_spec, scene, out)
    if problem is not None:
        raise SystemExit(f"{PROG}: error: {problem}")
    if scene is not None and not Path(scene).is_file():
        raise SystemExit(f"{PROG}: error: {scene} does not exist")
    source = ["--demo"] if scene is None else ["--blend", str(Path(scene).resolve())]
    command = [sys.executable, str(SCRIPT), "--", str(out), *source, *views.options_argv(options)]
    code = subprocess.call(command)
    if code < 0:
        print(f"{PROG}: error: Blender crashed (signal {-code}); its output is in {Path(out) / render_scene.LOG_FILE}; "
              "with --engine eevee, render with --engine cycles, which runs on any CPU", file=sys.stderr)
        code = 2
    raise SystemExit(code)
