"""The plugin as nerfstudio sees it: registered methods, configs as data, checkpoints that reload, offline."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import warnings

import pytest
import torch
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.registry import discover_methods

from depth_strategies import methods
from depth_strategies.core.data import DepthDataManager
from depth_strategies.core.offline import LpipsUnavailableWarning, build_lpips, lpips_weights_path
from depth_strategies.core.training import FloatExponentialDecaySchedulerConfig, TrainingLoop, exponential_decay_factor

from .conftest import run_cli, tiny_config, tiny_flags

METHODS = ("depth-baseline", "depth-soft", "depth-hard", "depth-hybrid")
STRATEGY_FIELDS = {"guided_fraction", "soft_depth_mult", "hard_depth_mult", "empty_space_mult"}


def test_entry_points_register_the_four_methods_as_trainer_configs():
    found, descriptions = discover_methods()
    for name in METHODS:
        assert name in found, f"{name} is not registered through nerfstudio.method_configs"
        assert isinstance(found[name], TrainerConfig)
        assert found[name].method_name == name
        assert descriptions[name]


def test_runs_of_every_method_and_the_reference_keep_our_datamanager_under_eval_setup():
    """nerfstudio's ``eval_setup`` (ns-eval, ns-render, ns-viewer) replaces a run's datamanager with the one
    registered under its ``method_name``; the reference once ran as nerfstudio's ``depth-nerfacto``, whose
    datamanager downloads ZoeDepth."""
    found, _ = discover_methods()
    reference = methods.depth_nerfacto_reference()
    assert reference.method_name == methods.REFERENCE_NAME
    for name in (*METHODS, methods.REFERENCE_NAME):
        assert found[name].pipeline.datamanager._target is DepthDataManager, name
    assert type(found[methods.REFERENCE_NAME].pipeline.model) is type(reference.pipeline.model)


def test_nerfstudio_loads_only_the_plugin_core_never_the_study_figures_or_scenes(tmp_path):
    """The layout's boundary: what nerfstudio imports to train, evaluate and render our methods is
    ``depth_strategies.methods`` and ``depth_strategies.core``; ``study``, ``viz`` and ``scenes`` are for ds-*."""
    code = (
        "import sys\n"
        "from nerfstudio.configs.method_configs import all_methods\n"
        "from nerfstudio.utils.eval_utils import eval_setup\n"
        "assert 'depth-hybrid' in all_methods and 'depth-nerfacto-reference' in all_methods\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('depth_strategies'))))\n"
    )
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = proc.stdout.split()
    assert "depth_strategies.methods" in loaded and "depth_strategies.core.model" in loaded
    outside = [m for m in loaded if m not in ("depth_strategies", "depth_strategies.methods")
               and not m.startswith("depth_strategies.core")]
    assert not outside, f"nerfstudio's path imports {outside}"


def test_ns_train_help_lists_the_methods(tmp_path):
    out = run_cli(["ns-train", "--help"], cwd=tmp_path).stdout
    for name in METHODS:
        assert name in out


def test_methods_differ_only_in_their_strategy_fields():
    base = dataclasses.asdict(methods.method_config("depth-baseline").pipeline.model)
    for name in METHODS:
        cfg = methods.method_config(name)
        model = dataclasses.asdict(cfg.pipeline.model)
        differing = {k for k in model if model[k] != base[k]}
        assert differing <= STRATEGY_FIELDS, f"{name} also changes {differing - STRATEGY_FIELDS}"
        assert cfg.pipeline.datamanager.train_depth == ("ignored" if name == "depth-baseline" else "required")


def test_variants_are_registered_and_differ_from_their_strategy_only_in_their_declared_fields():
    found, descriptions = discover_methods()
    for name, (base, fields) in methods.VARIANTS.items():
        assert name in found and descriptions[name], f"{name} is not registered through nerfstudio.method_configs"
        variant = dataclasses.asdict(methods.method_config(name).pipeline.model)
        strategy = dataclasses.asdict(methods.method_config(base).pipeline.model)
        assert {k for k in variant if variant[k] != strategy[k]} <= set(fields), name
        assert all(variant[k] == v for k, v in fields.items()), name
        assert methods.method_config(name).pipeline.datamanager.train_depth == "required"


def test_method_configs_are_independent_copies():
    a, b = methods.method_config("depth-soft"), methods.method_config("depth-soft")
    a.optimizers["fields"]["optimizer"].lr = 123.0
    assert b.optimizers["fields"]["optimizer"].lr != 123.0
    assert methods.BASE_CONFIG.optimizers["fields"]["optimizer"].lr != 123.0


def test_default_device_is_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert methods.method_config("depth-baseline").machine.device_type == expected
    assert methods.method_config("depth-baseline").mixed_precision == torch.cuda.is_available()


def test_apply_overrides_replaces_nested_fields_and_rejects_unknown_paths():
    cfg = methods.apply_overrides(
        methods.method_config("depth-hard"),
        {"pipeline.model.num_proposal_samples_per_ray": [8, 4], "pipeline.datamanager.train_num_rays_per_batch": 7},
    )
    assert cfg.pipeline.model.num_proposal_samples_per_ray == (8, 4)
    assert cfg.pipeline.datamanager.train_num_rays_per_batch == 7
    assert methods.method_config("depth-hard").pipeline.datamanager.train_num_rays_per_batch == 4096
    with pytest.raises(KeyError, match="pipeline.model.no_such_field"):
        methods.apply_overrides(cfg, {"pipeline.model.no_such_field": 1})


def test_size_profile_flags_are_ns_train_flags():
    flags = methods.ns_train_flags(
        {"pipeline.model.num_proposal_samples_per_ray": [64, 32], "pipeline.model.max_res": 512}
    )
    assert flags == ["--pipeline.model.num-proposal-samples-per-ray", "64", "32", "--pipeline.model.max-res", "512"]


# ------------------------------------------------------------------------------------ checkpoints
def test_exponential_decay_factor_matches_the_formula_and_is_a_python_float():
    lr_init, lr_final, max_steps = 1e-2, 1e-4, 200
    f = exponential_decay_factor(100, lr_init, lr_final, max_steps=max_steps)
    assert type(f) is float
    # halfway in log space: sqrt(1e-2 * 1e-4) / 1e-2
    assert f == pytest.approx((1e-2 * 1e-4) ** 0.5 / 1e-2)
    assert exponential_decay_factor(0, lr_init, lr_final, max_steps=max_steps) == pytest.approx(1.0)
    assert exponential_decay_factor(10**6, lr_init, lr_final, max_steps=max_steps) == pytest.approx(lr_final / lr_init)


def test_scheduler_state_reloads_with_weights_only(tmp_path):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1e-2)
    scheduler = FloatExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=10).setup().get_scheduler(optimizer, 1e-2)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    path = tmp_path / "state.pt"
    torch.save({"opt": optimizer.state_dict(), "sched": scheduler.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    assert type(loaded["opt"]["param_groups"][0]["lr"]) is float


# ------------------------------------------------------------------------------------ offline
@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection and name lookup fails, as on a machine without internet."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_builds_and_trains_with_every_socket_refused(name, tiny_scene, no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        timer = TrainingLoop(tiny_config(name, tiny_scene), "cpu")
    assert timer.pipeline.model.lpips is None
    assert any(issubclass(w.category, LpipsUnavailableWarning) for w in caught)
    seconds = timer.run(2)
    assert seconds > 0
    params = torch.cat([p.detach().flatten() for p in timer.pipeline.model.field.parameters()])
    assert torch.isfinite(params).all()


def test_lpips_is_built_from_cached_weights_without_network(no_network, monkeypatch, tmp_path):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = lpips_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    assert build_lpips() is not None


# ------------------------------------------------------------------------------------ end to end, CLI
def test_baseline_trains_on_cpu_and_ns_eval_reloads_its_checkpoint(tiny_scene, tmp_path):
    run_cli(
        [
            "ns-train",
            "depth-baseline",
            *tiny_flags(),
            "--max-num-iterations",
            "4",
            "--vis",
            "tensorboard",
            "--output-dir",
            str(tmp_path / "out"),
            "--experiment-name",
            "e2e",
            "--timestamp",
            "run",
            "blender-data",
            "--data",
            str(tiny_scene),
        ],
        cwd=tmp_path,
    )
    run_dir = tmp_path / "out" / "e2e" / "depth-baseline" / "run"
    checkpoints = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    assert checkpoints, "training wrote no checkpoint"
    state = torch.load(checkpoints[-1], map_location="cpu", weights_only=True)
    assert state["step"] == 3
    run_cli(
        ["ns-eval", "--load-config", str(run_dir / "config.yml"), "--output-path", str(tmp_path / "eval.json")],
        cwd=tmp_path,
    )
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    for key in ("psnr", "ssim", "depth_l1", "depth_rmse", "depth_abs_rel", "depth_delta1"):
        assert key in results and results[key] == results[key], key  # present and not NaN
    assert 0 < results["psnr"] < 60
    # resuming from the checkpoint (weights_only loading) continues training
    run_cli(
        [
            "ns-train",
            "depth-baseline",
            *tiny_flags(),
            "--max-num-iterations",
            "2",
            "--vis",
            "tensorboard",
            "--output-dir",
            str(tmp_path / "out"),
            "--experiment-name",
            "e2e",
            "--timestamp",
            "resumed",
            "--load-dir",
            str(run_dir / "nerfstudio_models"),
            "blender-data",
            "--data",
            str(tiny_scene),
        ],
        cwd=tmp_path,
    )
    resumed = sorted((tmp_path / "out" / "e2e" / "depth-baseline" / "resumed" / "nerfstudio_models").glob("*.ckpt"))
    assert torch.load(resumed[-1], map_location="cpu", weights_only=True)["step"] == 5


def test_ns_train_with_no_flags_uses_the_cpu_and_exits(tiny_scene, tmp_path):
    """The user's command: no size, device or viewer flags (only a short run and a private output folder)."""
    proc = run_cli(
        [
            "ns-train",
            "depth-baseline",
            "--max-num-iterations",
            "1",
            "--output-dir",
            str(tmp_path / "out"),
            "blender-data",
            "--data",
            str(tiny_scene),
        ],
        cwd=tmp_path,
        timeout=900,
    )
    config = next((tmp_path / "out").rglob("config.yml"))
    assert "device_type: cpu" in config.read_text() or torch.cuda.is_available()
    assert next(config.parent.glob("nerfstudio_models/step-*.ckpt"))
    assert "Training Finished" in proc.stdout + proc.stderr


def test_ns_train_takes_depth_degradations_as_a_user_types_them(tiny_scene, tmp_path):
    """``ns-train depth-hybrid-uncertain ... --pipeline.datamanager.depth-degradations "noise(b=0.02)"
    "sparse(lines=8)"``: the run trains on the degraded depth and its config.yml records the degradations; a bad
    one stops the run with a message naming it."""
    proc = run_cli(
        [
            "ns-train",
            "depth-hybrid-uncertain",
            *tiny_flags(),
            "--pipeline.datamanager.depth-degradations",
            "noise(b=0.02)",
            "sparse(lines=8)",
            "--pipeline.datamanager.degradation-seed",
            "3",
            "--max-num-iterations",
            "2",
            "--output-dir",
            str(tmp_path / "out"),
            "--viewer.quit-on-train-completion",
            "True",
            "blender-data",
            "--data",
            str(tiny_scene),
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert "Training Finished" in proc.stdout + proc.stderr
    text = next((tmp_path / "out").rglob("config.yml")).read_text()
    assert "noise(b=0.02)" in text and "sparse(lines=8)" in text and "degradation_seed: 3" in text
    bad = run_cli(
        ["ns-train", "depth-hybrid", *tiny_flags(), "--pipeline.datamanager.depth-degradations", "noise(sd=1)",
         "--max-num-iterations", "1", "--output-dir", str(tmp_path / "bad"), "blender-data", "--data",
         str(tiny_scene)],
        cwd=tmp_path,
        timeout=900,
        check=False,
    )
    assert bad.returncode != 0
    assert "depth degradation 'noise(sd=1)': noise has no parameter 'sd'" in bad.stdout + bad.stderr


def test_ns_train_on_a_nerfstudio_data_capture_needs_no_extra_flag_and_ns_render_renders_it(tiny_capture, tmp_path):
    """``ns-train depth-hybrid nerfstudio-data --data CAPTURE`` (only the CPU sizes and a short run): the unbounded
    preset is chosen from the data, and ns-render renders the run's test views."""
    run_cli(["ns-train", "depth-hybrid", *tiny_flags(), "--max-num-iterations", "2", "--output-dir",
             str(tmp_path / "out"), "--viewer.quit-on-train-completion", "True", "nerfstudio-data", "--data",
             str(tiny_capture)], cwd=tmp_path, timeout=900)
    config = next((tmp_path / "out").rglob("config.yml"))
    assert "NerfstudioDataParserConfig" in config.read_text()
    run_cli(["ns-render", "dataset", "--load-config", str(config), "--output-path", str(tmp_path / "render"),
             "--split", "test", "--rendered-output-names", "rgb", "depth"], cwd=tmp_path, timeout=900)
    assert len(list((tmp_path / "render").rglob("*.png"))) + len(list((tmp_path / "render").rglob("*.jpg"))) >= 2


@pytest.mark.parametrize("stock_name", ["nerfacto", "depth-nerfacto"])
def test_a_reference_config_shares_no_sub_config_with_the_base_or_with_nerfstudio(stock_name):
    """nerfstudio writes the pixel sampler's num_rays_per_batch into the datamanager's sub-config while it sets up a
    run: a reference config that shared it with BASE_CONFIG (or its optimizers with nerfstudio's method_configs)
    would change every later config built from them."""
    from nerfstudio.configs.method_configs import method_configs

    base_rays = methods.BASE_CONFIG.pipeline.datamanager.pixel_sampler.num_rays_per_batch
    stock_lr = method_configs[stock_name].optimizers["fields"]["optimizer"].lr
    first, second = methods.nerfstudio_reference(stock_name), methods.nerfstudio_reference(stock_name)
    first.pipeline.datamanager.pixel_sampler.num_rays_per_batch = base_rays + 7
    first.optimizers["fields"]["optimizer"].lr = 123.0
    assert second.pipeline.datamanager.pixel_sampler.num_rays_per_batch == base_rays
    assert methods.BASE_CONFIG.pipeline.datamanager.pixel_sampler.num_rays_per_batch == base_rays
    assert methods.nerfstudio_reference(stock_name).pipeline.datamanager.pixel_sampler.num_rays_per_batch == base_rays
    assert second.optimizers["fields"]["optimizer"].lr == stock_lr
    assert method_configs[stock_name].optimizers["fields"]["optimizer"].lr == stock_lr
