"""core/training.py's TrainingLoop: the step ds-bench times and the tests train with is nerfstudio's own
``Trainer.train_iteration``, as ns-train runs it."""

from __future__ import annotations

import dataclasses

import torch
from nerfstudio.engine.trainer import Trainer

from depth_strategies.core.training import TrainingLoop, nerfstudio_trainer
from tests.conftest import tiny_config


def test_every_step_is_nerfstudios_own_train_iteration_with_its_precision_and_scaler(tiny_scene, monkeypatch):
    steps = []
    original = Trainer.train_iteration

    def recorded(self, step):
        steps.append((type(self), step))
        return original(self, step)

    monkeypatch.setattr(Trainer, "train_iteration", recorded)
    loop = TrainingLoop(tiny_config("depth-hybrid", tiny_scene), "cpu")
    before = [p.detach().clone() for p in loop.pipeline.get_param_groups()["fields"]]
    loop.run(2)
    assert steps == [(Trainer, 0), (Trainer, 1)] and loop.step == 2
    after = loop.pipeline.get_param_groups()["fields"]
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "the optimizers stepped"
    # ns-train on the CPU: no autocast, no scaling (nerfstudio switches mixed precision off on the CPU)
    assert loop.trainer.mixed_precision is False and not loop.grad_scaler.is_enabled()
    assert loop.trainer.pipeline is loop.pipeline and loop.trainer.optimizers is loop.optimizers


def test_the_trainer_decides_mixed_precision_from_the_device_as_ns_train_does(tiny_scene):
    """A config that asks for mixed precision gets it on CUDA and not on the CPU (only the trainer is built here:
    the pipeline itself would need a GPU)."""
    config = dataclasses.replace(tiny_config("depth-baseline", tiny_scene), mixed_precision=True)
    on_gpu, on_cpu = nerfstudio_trainer(config, "cuda:0"), nerfstudio_trainer(config, "cpu")
    assert on_gpu.mixed_precision is True and on_gpu.use_grad_scaler is True
    assert on_cpu.mixed_precision is False
    assert on_gpu.config.machine.device_type == "cuda"
