"""Old module path of :mod:`depth_strategies.core.data`, kept because runs made before version 0.2 name it in
their ``config.yml`` (nerfstudio stores class paths there): ``ns-eval``, ``ns-render`` and ``ns-viewer`` load
those runs through it. It re-exports exactly the classes such a file names; new code imports
:mod:`depth_strategies.core.data`.

Deprecated: importing it warns (``DeprecationWarning``), and it is removed in version 1.0."""

import warnings

from depth_strategies.core.data import DepthDataManager, DepthDataManagerConfig

__all__ = ["DepthDataManager", "DepthDataManagerConfig"]

warnings.warn(
    "depth_strategies.data is deprecated and will be removed in version 1.0: import from "
    "depth_strategies.core.data instead (this old path is kept only so that runs made before version 0.2 load)",
    DeprecationWarning,
    stacklevel=2,
)
