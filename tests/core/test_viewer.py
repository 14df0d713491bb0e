"""nerfstudio's viewer with our methods, in a real headless browser (Debian's chromium, installed by .ci/run)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest
from PIL import Image

from depth_strategies.core.training import TrainingLoop, seed_everything
from tests.conftest import capture_config, console_script, free_port, stop, tiny_config, tiny_flags, wait_for_http

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
"""Flags for a sandbox without network (see the project's notes on headless Chromium)."""
EXTRA_OUTPUTS = ("depth", "weight_variance", "weight_entropy", "expected_depth", "accumulation")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt install chromium)"),
]


def rendered_width(page) -> int:
    """Width in pixels of the last image the viewer received (its "Resolution: W×Hpx" line; 0 before the first)."""
    match = re.search(r"Resolution: (\d+)\D(\d+)px", page.get_by_text("Resolution:").first.inner_text())
    return int(match.group(1)) if match else 0


def browse(url: str, user_data_dir: Path, screenshot: Path, min_width: int = 0) -> List[str]:
    """Open the viewer, wait for the first render (and, with ``min_width``, for a render at least that wide: the
    viewer first sends a coarse image while the camera settles, then refines it), screenshot it; return the output
    names it offers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1000, "height": 700},
        )
        try:
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("canvas", timeout=120_000)
            page.get_by_text("Resolution:").wait_for(timeout=120_000)  # the first rendered image has arrived
            deadline = time.monotonic() + 180
            while rendered_width(page) < min_width:
                assert time.monotonic() < deadline, (
                    f"the viewer sent no render at least {min_width} px wide within 3 min "
                    f"(last: {rendered_width(page)} px)"
                )
                time.sleep(1)
            time.sleep(3)
            page.locator("canvas").first.screenshot(path=str(screenshot))
            return output_options(page)
        finally:
            context.close()


def output_options(page, timeout_s: float = 120.0) -> List[str]:
    """The names in the viewer's "Output type" dropdown, once the viewer has filled it in.

    While training, the viewer shows the placeholder "not set" until its first render has reported the model's
    outputs (CI caught the dropdown in that state once), so reopen the dropdown until real names appear.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        page.get_by_label("Output type").first.click()
        page.get_by_role("option").first.wait_for(timeout=30_000)
        options = page.get_by_role("option").all_inner_texts()
        if options != ["not set"] or time.monotonic() > deadline:
            return options
        page.keyboard.press("Escape")
        time.sleep(2)


def assert_render_not_blank(screenshot: Path) -> None:
    image = np.asarray(Image.open(screenshot).convert("RGB")).astype(np.float64)
    render_area = image[:, : int(image.shape[1] * 0.6)]  # left of the control panel
    assert render_area.std() > 5.0, f"the render canvas is blank (std {render_area.std():.2f} over its pixels)"
    assert len(np.unique(render_area.reshape(-1, 3), axis=0)) > 50


@pytest.mark.parametrize("data", ["object scene", "capture", "real kitchen"])
def test_ns_viewer_renders_a_finished_run_in_a_browser(data, tiny_scene, tmp_path, request):
    make = tiny_config if data == "object scene" else capture_config
    folder = {"object scene": tiny_scene, "capture": "tiny_capture", "real kitchen": "kitchen_tiny"}[data]
    folder = folder if isinstance(folder, Path) else request.getfixturevalue(folder)  # the kitchen skips alone
    config = make("depth-hybrid", folder, output_dir=tmp_path / "out", experiment_name="v", timestamp="t",
                  vis="viewer")
    seed_everything(0)  # torch, NumPy and Python: the same 30-step model every time
    loop = TrainingLoop(config, "cpu")
    loop.run(30)
    config_path = loop.save()
    port = free_port()
    proc = subprocess.Popen([console_script("ns-viewer"), "--load-config", str(config_path),
                             "--viewer.websocket-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", proc)
        # a finished run with a still camera: the viewer refines its first coarse (about 30 px) image
        outputs = browse(f"http://127.0.0.1:{port}/", tmp_path / "chromium-profile", tmp_path / "viewer.png",
                         min_width=100)
    finally:
        stop(proc)
    assert_render_not_blank(tmp_path / "viewer.png")
    for name in ("rgb", *EXTRA_OUTPUTS):
        assert name in outputs, f"the viewer does not offer {name}: {outputs}"


def test_ns_train_with_the_viewer_shows_outputs_while_training_on_the_cpu(tiny_scene, tmp_path):
    port = free_port()
    proc = subprocess.Popen([console_script("ns-train"), "depth-hybrid", *tiny_flags(), "--max-num-iterations", "3000",
                             "--vis", "viewer", "--viewer.websocket-port", str(port), "--output-dir", str(tmp_path),
                             "blender-data", "--data", str(tiny_scene)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", proc)
        outputs = browse(f"http://127.0.0.1:{port}/", tmp_path / "chromium-profile", tmp_path / "training.png")
        assert proc.poll() is None, "training stopped while the browser was connected"
    finally:
        stop(proc)
    assert_render_not_blank(tmp_path / "training.png")
    for name in ("rgb", *EXTRA_OUTPUTS):
        assert name in outputs
