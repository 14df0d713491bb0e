"""Training machinery shared by every method: a learning-rate schedule whose checkpoints reload under
``torch.load(weights_only=True)``, and a trainer whose checkpoints are written atomically.

Why the schedule: nerfstudio's ``ExponentialDecayScheduler`` computes its factor with numpy, so
``LambdaLR`` stores ``numpy.float64`` learning rates in the optimizer and scheduler state. torch >= 2.6
loads checkpoints with ``weights_only=True`` and refuses numpy scalars, so ``ns-eval``, ``ns-render``,
``ns-viewer`` and ``--load-dir`` resume all fail on nerfacto's checkpoints. The factor below is the same
formula computed with :mod:`math`, so every stored learning rate is a Python float.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

import numpy as np
import torch
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.engine.schedulers import Scheduler, SchedulerConfig
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch.optim import Optimizer, lr_scheduler

from depth_strategies.core.atomic import atomic_path


def exponential_decay_factor(
    step: int,
    lr_init: float,
    lr_final: float,
    warmup_steps: int = 0,
    max_steps: int = 100000,
    lr_pre_warmup: float = 1e-8,
    ramp: Literal["linear", "cosine"] = "cosine",
) -> float:
    """Multiplier of ``lr_init`` at ``step``: warm-up ramp, then log-linear decay to ``lr_final``.

    Same schedule as nerfstudio's ``ExponentialDecayScheduler``; always returns a Python ``float``.
    """
    if step < warmup_steps:
        progress = min(max(step / warmup_steps, 0.0), 1.0)
        if ramp == "cosine":
            lr = lr_pre_warmup + (lr_init - lr_pre_warmup) * math.sin(0.5 * math.pi * progress)
        else:
            lr = lr_pre_warmup + (lr_init - lr_pre_warmup) * progress
    else:
        t = min(max((step - warmup_steps) / max(max_steps - warmup_steps, 1), 0.0), 1.0)
        lr = math.exp(math.log(lr_init) * (1.0 - t) + math.log(lr_final) * t)
    return float(lr / lr_init)


@dataclass
class FloatExponentialDecaySchedulerConfig(SchedulerConfig):
    """Exponential decay with warm-up (nerfstudio's schedule) whose state holds only Python floats."""

    _target: Type = field(default_factory=lambda: FloatExponentialDecayScheduler)
    """Target class to instantiate."""
    lr_pre_warmup: float = 1e-8
    """Learning rate before warm-up."""
    lr_final: float | None = None
    """Final learning rate; ``None`` keeps the optimizer's initial rate."""
    warmup_steps: int = 0
    """Number of warm-up steps."""
    max_steps: int = 100000
    """Step at which the decay reaches ``lr_final``."""
    ramp: Literal["linear", "cosine"] = "cosine"
    """Shape of the warm-up ramp."""


class FloatExponentialDecayScheduler(Scheduler):
    """``LambdaLR`` over :func:`exponential_decay_factor`."""

    config: FloatExponentialDecaySchedulerConfig

    def get_scheduler(self, optimizer: Optimizer, lr_init: float) -> lr_scheduler.LRScheduler:
        lr_final = lr_init if self.config.lr_final is None else self.config.lr_final
        cfg = self.config

        def factor(step: int) -> float:
            return exponential_decay_factor(
                step, lr_init, lr_final, cfg.warmup_steps, cfg.max_steps, cfg.lr_pre_warmup, cfg.ramp
            )

        return lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


@dataclass
class DepthStrategyTrainerConfig(TrainerConfig):
    """nerfstudio's ``TrainerConfig`` with atomically written checkpoints."""

    _target: Type = field(default_factory=lambda: DepthStrategyTrainer)
    """Target class to instantiate."""


class DepthStrategyTrainer(Trainer):
    """nerfstudio's trainer; checkpoints are written to a temporary file and renamed into place, so an
    interrupted save never leaves a truncated ``step-*.ckpt`` that ``--load-dir`` would pick up."""

    def save_checkpoint(self, step: int) -> None:
        pipeline = self.pipeline.module if hasattr(self.pipeline, "module") else self.pipeline
        path = write_checkpoint(self.checkpoint_dir, step, pipeline, self.optimizers, self.grad_scaler)  # type: ignore
        if self.config.save_only_latest_checkpoint:
            for old in self.checkpoint_dir.glob("*.ckpt"):
                if old != path:
                    old.unlink()


def write_checkpoint(checkpoint_dir: Path, step: int, pipeline, optimizers: Optimizers, grad_scaler) -> Path:
    """``step-XXXXXXXXX.ckpt`` in nerfstudio's checkpoint layout, written atomically."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_dir / f"step-{step:09d}.ckpt"
    with atomic_path(path) as tmp:
        torch.save(
            {
                "step": step,
                "pipeline": pipeline.state_dict(),
                "optimizers": {k: v.state_dict() for (k, v) in optimizers.optimizers.items()},
                "schedulers": {k: v.state_dict() for (k, v) in optimizers.schedulers.items()},
                "scalers": grad_scaler.state_dict(),
            },
            tmp,
        )
    return path


def seed_everything(seed: int) -> None:
    """Seed every generator a run draws from: Python's ``random`` (nerfstudio's pixel samplers and image
    dataloaders), NumPy's and torch's. What ``ns-train`` does with ``machine.seed`` (nerfstudio's ``train.py``),
    which a run that builds nerfstudio's ``Trainer`` itself must do too: seeding torch alone left same-seed runs
    of ``ds-compare`` apart by up to 0.7 dB."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def nerfstudio_trainer(config: TrainerConfig, device: str) -> Trainer:
    """nerfstudio's ``Trainer`` for ``config`` on ``device``, built but not set up (no pipeline, writers or viewer
    yet): its mixed precision, gradient scaler and gradient accumulation are decided as ``ns-train`` decides them,
    from the config and the device (mixed precision off on the CPU)."""
    config = dataclasses.replace(config, machine=dataclasses.replace(config.machine, device_type=device.split(":")[0]))
    with CONSOLE.capture():  # "Mixed precision is disabled for CPU training."
        return Trainer(config)


class TrainingLoop:
    """One method's pipeline and optimizers, stepped by nerfstudio's own ``Trainer.train_iteration``: the step
    ``ns-train`` runs, with its mixed precision (autocast and the gradient scaler on CUDA when the config asks for
    them, off on the CPU) and gradient accumulation, so ``ds-bench`` times the step users run.

    For benchmarks and tests that train in-process: the ``Trainer`` is built but never set up, so there are no
    writers or viewer (nerfstudio's ``Trainer.setup`` registers global event writers, which would leak from one run
    into the next); :meth:`save` writes a run that nerfstudio's tools load.
    """

    def __init__(self, config: TrainerConfig, device: str, test_mode: Literal["val", "test"] = "val"):
        self.device = device
        self.trainer = nerfstudio_trainer(config, device)
        self.config = config = self.trainer.config
        self.pipeline = config.pipeline.setup(device=device, test_mode=test_mode)
        self.optimizers = Optimizers(config.optimizers, self.pipeline.get_param_groups())
        self.trainer.pipeline, self.trainer.optimizers = self.pipeline, self.optimizers
        self.grad_scaler = self.trainer.grad_scaler
        attrs = TrainingCallbackAttributes(
            optimizers=self.optimizers,
            grad_scaler=self.grad_scaler,
            pipeline=self.pipeline,
            trainer=None,  # type: ignore
        )
        self.callbacks = self.pipeline.get_training_callbacks(attrs)
        self.step = 0

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def run(self, iterations: int) -> float:
        """Seconds per iteration over ``iterations`` training steps."""
        self._sync()
        start = time.perf_counter()
        for _ in range(iterations):
            for cb in self.callbacks:
                cb.run_callback_at_location(self.step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
            self.trainer.train_iteration(self.step)
            for cb in self.callbacks:
                cb.run_callback_at_location(self.step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
            self.step += 1
        self._sync()
        return (time.perf_counter() - start) / iterations

    def save(self) -> Path:
        """Write ``config.yml`` and a checkpoint where ``ns-train`` would, so ``ns-eval``, ``ns-render`` and
        ``ns-viewer`` load this run; returns the config path."""
        self.config.save_config()
        write_checkpoint(self.config.get_checkpoint_dir(), max(self.step - 1, 0), self.pipeline, self.optimizers,
                         self.grad_scaler)
        return self.config.get_base_dir() / "config.yml"
