"""Old module path of :mod:`depth_strategies.core.training`, kept because runs made before version 0.2 name it in
their ``config.yml`` (nerfstudio stores class paths there): ``ns-eval``, ``ns-render`` and ``ns-viewer`` load
those runs through it. It re-exports exactly the classes such a file names; new code imports
:mod:`depth_strategies.core.training`."""

from depth_strategies.core.training import (
    DepthStrategyTrainer,
    DepthStrategyTrainerConfig,
    FloatExponentialDecayScheduler,
    FloatExponentialDecaySchedulerConfig,
)

__all__ = [
    "DepthStrategyTrainer",
    "DepthStrategyTrainerConfig",
    "FloatExponentialDecayScheduler",
    "FloatExponentialDecaySchedulerConfig",
]
