"""Runs made before the package layout changed still load.

nerfstudio writes the module path of every config and model class into a run's ``config.yml``. Version 0.1 had a
flat package (``depth_strategies.training``, ``.data``, ``.model``, ``.reference``); the classes now live in
``depth_strategies.core``. ``tests/data/pre_layout_runs`` holds the ``config.yml`` of two runs made with the old
layout (its README says how); these tests load them as nerfstudio's tools do. The old paths are deprecated: importing
one warns, naming its new home and version 1.0, which removes them.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from nerfstudio.engine.trainer import TrainerConfig

from depth_strategies.core.data import DepthDataManager, DepthDataManagerConfig
from depth_strategies.core.model import DepthStrategyModel, DepthStrategyModelConfig
from depth_strategies.core.reference import OfflineDepthNerfactoModel, OfflineDepthNerfactoModelConfig
from depth_strategies.core.training import (
    DepthStrategyTrainerConfig,
    FloatExponentialDecaySchedulerConfig,
    TrainingLoop,
)
from depth_strategies.methods import REFERENCE_NAME
from tests.conftest import TEST_DATA, console_script, free_port, run_cli, stop, wait_for_http

OLD_RUNS = TEST_DATA / "pre_layout_runs"
OLD_MODULES = {f"depth_strategies.{name}": f"depth_strategies.core.{name}"
               for name in ("model", "data", "training", "reference")}
"""Each old module path and the module that now holds its classes."""
MODELS = {
    "depth-hybrid": (DepthStrategyModelConfig, DepthStrategyModel),
    "depth-nerfacto-object": (OfflineDepthNerfactoModelConfig, OfflineDepthNerfactoModel),
}


def old_config_text(name: str, data: Path, output_dir: Path) -> str:
    """The old run's ``config.yml`` with its data and output folders filled in."""
    text = (OLD_RUNS / f"{name}.config.yml").read_text()
    assert text.count("- DATA_DIR") == 1 and text.count("- OUTPUT_DIR") == 1
    return text.replace("- DATA_DIR", f"- {data}").replace("- OUTPUT_DIR", f"- {output_dir}")


def renamed_reference(text: str) -> str:
    """The one edit an old reference run needs (docs/development.md, "Layout"): nerfstudio's ``eval_setup`` swaps in the
    datamanager registered under the run's ``method_name``, and under nerfstudio's own ``depth-nerfacto`` that is
    a dataset that downloads ZoeDepth; the reference is now registered as ``depth-nerfacto-reference``."""
    old = "\nmethod_name: depth-nerfacto\n"
    assert text.count(old) == 1
    return text.replace(old, f"\nmethod_name: {REFERENCE_NAME}\n")


def load(text: str) -> TrainerConfig:
    """As nerfstudio's ``eval_setup`` reads a config.yml."""
    return yaml.load(text, Loader=yaml.Loader)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_old_config_names_the_old_module_paths_and_loads_into_the_current_classes(name, tmp_path):
    text = old_config_text(name, tmp_path / "data", tmp_path / "out")
    for old in ("depth_strategies.training.", "depth_strategies.data.", "depth_strategies.model."
                if name == "depth-hybrid" else "depth_strategies.reference."):
        assert old in text, f"the fixture should name {old} (made before the move)"
    assert "depth_strategies.core" not in text
    config = load(text)
    model_config, model = MODELS[name]
    assert type(config) is DepthStrategyTrainerConfig
    assert type(config.pipeline.datamanager) is DepthDataManagerConfig
    assert config.pipeline.datamanager._target is DepthDataManager
    assert type(config.pipeline.model) is model_config and config.pipeline.model._target is model
    assert all(type(o["scheduler"]) is FloatExponentialDecaySchedulerConfig for o in config.optimizers.values()
               if o["scheduler"] is not None)
    assert config.pipeline.datamanager.data == tmp_path / "data"


@pytest.mark.parametrize("old", sorted(OLD_MODULES))
def test_the_old_module_paths_warn_and_name_their_new_home(old, monkeypatch):
    """Importing an old path warns, naming the new module and the version that removes the old one, and still
    gives the very classes of the new module (so old runs' config.yml files load)."""
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning) as record:
        module = importlib.import_module(old)
    messages = [str(w.message) for w in record if issubclass(w.category, DeprecationWarning)]
    assert any(old in m and OLD_MODULES[old] in m and "removed in version 1.0" in m for m in messages), messages
    new = importlib.import_module(OLD_MODULES[old])
    assert module.__all__ and all(getattr(module, name) is getattr(new, name) for name in module.__all__)


def test_the_package_itself_never_imports_the_old_module_paths():
    """Every other module of the package imports without touching an old path, so only old runs' config files
    trigger the deprecation warning (a fresh interpreter: this test session may have imported them already)."""
    code = (
        "import importlib, pkgutil, sys, depth_strategies\n"
        f"old = {sorted(OLD_MODULES)!r}\n"
        "for info in pkgutil.walk_packages(depth_strategies.__path__, 'depth_strategies.'):\n"
        "    if info.name not in old:\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(name for name in old if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_ns_eval_ns_render_and_ns_viewer_load_a_run_made_before_the_move(name, tiny_scene, tmp_path):
    """The old run's config.yml (old module paths) with a checkpoint of its architecture: nerfstudio's tools load
    it by those paths. The checkpoint holds only tensors and plain state, which the move does not touch."""
    text = old_config_text(name, tiny_scene, tmp_path / "run")
    if name == "depth-nerfacto-object":
        text = renamed_reference(text)
    config = load(text)
    torch.manual_seed(0)
    loop = TrainingLoop(config, "cpu")
    loop.run(2)
    config_path = loop.save()
    config_path.write_text(text)  # the file on disk names the old module paths, as the old run's did

    run_cli(["ns-eval", "--load-config", str(config_path), "--output-path", str(tmp_path / "eval.json")], cwd=tmp_path)
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert 0 < results["psnr"] < 60 and results["depth_l1"] == results["depth_l1"]

    run_cli(["ns-render", "dataset", "--load-config", str(config_path), "--output-path", str(tmp_path / "render"),
             "--split", "test", "--rendered-output-names", "rgb", "depth"], cwd=tmp_path)
    assert len(list((tmp_path / "render").rglob("*.png"))) + len(list((tmp_path / "render").rglob("*.jpg"))) >= 2

    port = free_port()
    proc = subprocess.Popen([console_script("ns-viewer"), "--load-config", str(config_path),
                             "--viewer.websocket-port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", proc)  # it serves only after loading config and checkpoint
    finally:
        stop(proc)
