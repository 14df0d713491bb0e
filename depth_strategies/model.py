"""Old module path of :mod:`depth_strategies.core.model`, kept because runs made before version 0.2 name it in
their ``config.yml`` (nerfstudio stores class paths there): ``ns-eval``, ``ns-render`` and ``ns-viewer`` load
those runs through it. It re-exports exactly the classes such a file names; new code imports
:mod:`depth_strategies.core.model`."""

from depth_strategies.core.model import DepthStrategyModel, DepthStrategyModelConfig

__all__ = ["DepthStrategyModel", "DepthStrategyModelConfig"]
