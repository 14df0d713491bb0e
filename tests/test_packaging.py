"""A non-editable install: the wheel carries the size profiles and protocols (package data read through
``importlib.resources``), and its commands work from a directory that is not the source tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from depth_strategies.methods import load_size_profile, ns_train_flags
from tests.conftest import REPO, TEST_DATA

SHIPPED = tuple(sorted(p.name for p in (REPO / "depth_strategies" / "configs").glob("*.yaml")))
"""Every YAML file of the source tree's configs/: the wheel must ship each one."""

pytestmark = pytest.mark.slow


def run(args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with the project's wheel installed (not editable). Its dependencies come from this
    environment's site-packages, listed after the venv's own, so nerfstudio is not installed a second time."""
    root = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ into the source tree and would reuse stale files from it
    source = shutil.copytree(REPO, root / "source", ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "results", "outputs", "__pycache__", ".pytest_cache"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source],
        cwd=root)
    (wheel,) = (root / "dist").glob("depth_nerf_strategies-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in SHIPPED:
        assert f"depth_strategies/configs/{name}" in names, f"the wheel does not ship configs/{name}"
    assert not any(n.startswith("tests/") for n in names)
    venv = root / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=root)
    site = Path(run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=root).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=root)
    return venv


def test_the_installed_package_is_the_wheel_and_finds_its_protocols_from_elsewhere(wheel_venv, tmp_path):
    code = (
        "import depth_strategies\n"
        "from depth_strategies.study.protocol import load_protocol, shipped_protocols\n"
        "print(depth_strategies.__file__)\n"
        "print(sorted(shipped_protocols()))\n"
        "print(load_protocol('lego').source)\n"
    )
    module, protocols, lego = run([wheel_venv / "bin" / "python", "-c", code], cwd=tmp_path).stdout.splitlines()
    assert module.startswith(str(wheel_venv)), f"imported {module}, not the installed wheel"
    not_protocols = ("sizes.yaml", "speeds.yaml")
    expected = sorted(n.removesuffix(".yaml") for n in SHIPPED if n not in not_protocols)
    assert protocols == str(expected).replace('"', "'")
    assert lego.startswith(str(wheel_venv)) and lego.endswith("configs/lego.yaml")


def test_ds_flags_and_the_tiny_protocol_run_from_another_directory(wheel_venv, tmp_path):
    flags = run([wheel_venv / "bin" / "ds-flags", "cpu"], cwd=tmp_path).stdout.split()
    assert flags == ns_train_flags(load_size_profile("cpu"))
    run([wheel_venv / "bin" / "ds-compare", TEST_DATA / "tiny_protocol.yaml", "--output", tmp_path / "out"],
        cwd=tmp_path)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["runs"] and all(r["status"] == "ok" for r in results["runs"])
    assert (tmp_path / "out" / "results.md").is_file()
