"""Old module path of :mod:`depth_strategies.core.training`, kept because runs made before version 0.2 name it in
their ``config.yml`` (nerfstudio stores class paths there): ``ns-eval``, ``ns-render`` and ``ns-viewer`` load
those runs through it. It re-exports exactly the classes such a file names; new code imports
:mod:`depth_strategies.core.training`.

Deprecated: importing it warns (``DeprecationWarning``), and it is removed in version 1.0."""

import warnings

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

warnings.warn(
    "depth_strategies.training is deprecated and will be removed in version 1.0: import from "
    "depth_strategies.core.training instead (this old path is kept only so that runs made before version 0.2 load)",
    DeprecationWarning,
    stacklevel=2,
)
