"""depth-nerf-strategies: how should a NeRF use depth?

A nerfstudio plugin with four methods that share one nerfacto-based model and differ only in how depth is used
(:mod:`depth_strategies.methods`). The subpackages follow the system:

* :mod:`depth_strategies.core`: the plugin that ``ns-train``, ``ns-eval``, ``ns-render`` and the viewer load;
* :mod:`depth_strategies.study`: ``ds-compare`` and ``ds-bench``;
* :mod:`depth_strategies.viz`: figures, panels, videos, camera paths;
* :mod:`depth_strategies.scenes`: the built-in scene and ``ds-split-scene``.
"""

__version__ = "0.5.0"
