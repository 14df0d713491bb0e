"""The console scripts as a user types them (``depth_strategies/cli.py``): their first output is theirs, not a page
of third-party deprecation warnings, and the package changes no warning filter when it is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import warnings

from depth_strategies.cli import KNOWN_THIRD_PARTY_WARNINGS, quiet_third_party_warnings
from tests.conftest import REPO, console_script

SCRIPTS = tuple(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
"""Every console script the package declares."""


def user_env() -> dict:
    """The environment of a user's shell: no PYTHONWARNINGS (the test helpers set it to ignore)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


def test_help_of_every_console_script_prints_no_third_party_warning(tmp_path):
    procs = {script: subprocess.Popen([console_script(script), "--help"], cwd=tmp_path, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=user_env()) for script in SCRIPTS}
    for script, proc in procs.items():  # started together: each spends seconds importing torch
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (script, err[-3000:])
        assert "usage" in out.lower(), script
        assert "Warning" not in err, (script, err[-3000:])


def test_the_same_import_outside_a_console_script_still_warns(tmp_path):
    """The filter belongs to the console scripts: a program importing the package sees torch's warnings."""
    code = "import depth_strategies.study.compare"
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=user_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "`torch.jit.script` is deprecated" in proc.stderr


def test_importing_the_package_changes_no_warning_filter(tmp_path):
    code = (
        "import warnings, torch, nerfstudio.engine.trainer, nerfstudio.utils.eval_utils\n"
        "before = list(warnings.filters)\n"
        "import depth_strategies.cli, depth_strategies.methods, depth_strategies.study.compare, "
        "depth_strategies.study.bench, depth_strategies.viz.figures, depth_strategies.viz.video, "
        "depth_strategies.viz.ray_figures, depth_strategies.scenes.builtin\n"
        "assert list(warnings.filters) == before, 'a module edited the warning filters at import'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env=user_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_quiet_third_party_warnings_hides_only_the_known_messages_and_only_inside_the_block():
    known = "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_third_party_warnings():
            warnings.warn(known, FutureWarning)
            warnings.warn("something else is deprecated", FutureWarning)
            warnings.warn(known, UserWarning)  # same text, another category
        warnings.warn(known, FutureWarning)
    shown = [(w.category, str(w.message)) for w in caught]
    assert shown == [(FutureWarning, "something else is deprecated"), (UserWarning, known), (FutureWarning, known)]
    assert len(KNOWN_THIRD_PARTY_WARNINGS) >= 2
