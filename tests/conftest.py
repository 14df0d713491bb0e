"""Shared fixtures: tiny generated scenes, the real lego scene (skipped only where absent), and a runner
for ``ns-*`` command lines as a user types them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List, Sequence

import pytest
from nerfstudio.engine.trainer import TrainerConfig

from depth_strategies.methods import apply_overrides, load_size_profile, method_config, ns_train_flags
from depth_strategies.scenes.builtin import make_scene

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
LEGO = SHARED_DATA / "lego"
REDKITCHEN = SHARED_DATA / "redkitchen"
KITCHEN_FRAMES = range(0, 60, 5)
"""The real kitchen frames the tests import (12 files; with --stride 2: 6 frames, 10 original frames apart)."""
TEST_DATA = Path(__file__).resolve().parent / "data"
"""Files the tests read: protocols, config.yml of old runs."""


def pytest_configure(config):
    """Under pytest-xdist (the README's test command runs two workers) each worker trains with its share of the
    CPU cores as torch threads, and so do the command lines it starts (``ns-train``, ``ds-compare``: they inherit
    ``OMP_NUM_THREADS``), so that the workers share the cores instead of oversubscribing them: two processes with
    two OpenMP threads each on two cores ran a training step 10x slower than one thread each."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)  # this test process only: its children inherit it


@pytest.fixture(scope="session")
def lego_dir() -> Path:
    """The real NeRF-synthetic lego scene (200x200, depth for the test split), read in place."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (tests on lego need ../shared/data/lego)")
    assert LEGO.is_dir(), f"{SHARED_DATA} exists but holds no lego/ folder"
    return LEGO


@pytest.fixture(scope="session")
def kitchen_src(tmp_path_factory) -> Path:
    """A 7-Scenes folder of links to 12 real frames of the kitchen (nothing copied)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (the real capture lies in its redkitchen/)")
    assert REDKITCHEN.is_dir(), f"{SHARED_DATA} exists but holds no redkitchen/ folder"
    src = tmp_path_factory.mktemp("kitchen") / "src"
    src.mkdir()
    (src / "camera-intrinsics.txt").symlink_to(REDKITCHEN / "camera-intrinsics.txt")
    for i in KITCHEN_FRAMES:
        for kind in ("color.jpg", "depth.png", "pose.txt"):
            (src / f"frame-{i:06d}.{kind}").symlink_to(REDKITCHEN / f"frame-{i:06d}.{kind}")
    return src


@pytest.fixture(scope="session")
def kitchen_tiny(kitchen_src) -> Path:
    """The 12 real frames with --stride 2 --downscale 8: 6 frames of 80 x 60, frame 0 the test view."""
    from depth_strategies.scenes.rgbd import ImportOptions, import_rgbd

    out = kitchen_src.parent / "ns-tiny"
    import_rgbd(kitchen_src, out, ImportOptions(stride=2, downscale=8))
    return out


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """A 32x32 built-in scene: 6 train, 2 val, 2 test views, depth everywhere."""
    return make_scene(
        tmp_path_factory.mktemp("scene") / "tiny",
        resolution=32,
        views_train=6,
        views_val=2,
        views_test=2,
        seed=0,
        supersample=1,
    )


@pytest.fixture(scope="session")
def tiny_capture(tmp_path_factory) -> Path:
    """A small generated room capture (``ds-make-room``): nerfstudio-data, 64x48 RGB images without alpha, 16-bit
    millimetre depth at 16x12 with confidence maps, 12 frames of which 2 are test views."""
    from depth_strategies.scenes.room import Room, make_room

    room = Room(width=64, height=48, views=12, test_every=6, depth_factor=4, seed=0)
    return make_room(tmp_path_factory.mktemp("capture") / "room", room, supersample=1)


def capture_config(name: str, capture: Path, **overrides) -> TrainerConfig:
    """A registered method at the 'tiny' size profile on a nerfstudio-data capture, on the CPU."""
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    return tiny_config(name, capture, **{"pipeline.datamanager.dataparser": NerfstudioDataParserConfig(data=capture),
                                         **overrides})


@pytest.fixture
def scene_copy(tiny_scene, tmp_path) -> Path:
    """A private copy of the tiny scene that a test may break."""
    return Path(shutil.copytree(tiny_scene, tmp_path / "scene"))


NOISY = {"pipeline.datamanager.depth_degradations": ("noise(a=0.02, b=0.05)",)}
"""Training depth with range noise sigma = 0.02 + 0.05 D (reported per pixel): on the tiny scene (D in [2, 6]) the
uncertainty-aware windows 3 sigma fall on both sides of its trusted limit, and the variant draws which rays follow
their trust."""


def tiny_config(name: str, data: Path, **overrides) -> TrainerConfig:
    """A registered method at the 'tiny' size profile, on ``data``, on the CPU."""
    cfg = apply_overrides(method_config(name), load_size_profile("tiny"))
    return apply_overrides(cfg, {"pipeline.datamanager.data": data, "machine.device_type": "cpu", **overrides})


def tiny_flags() -> List[str]:
    """ns-train flags of the 'tiny' size profile (configs/sizes.yaml)."""
    return ns_train_flags(load_size_profile("tiny"))


def console_script(name: str) -> str:
    """Path of a console script installed next to this Python (the venv's bin/)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run a console script as a user would; on failure show its output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    proc = subprocess.run(
        [console_script(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
            f"--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


# ------------------------------------------------------------------------ servers (the viewer)
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the viewer process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"no viewer at {url} after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
