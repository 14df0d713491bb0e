"""depth-nerf-strategies: how should a NeRF use depth?

A nerfstudio plugin with four strategies (and three variants of them for depth as sensors deliver it) that share
one nerfacto-based model and differ only in how depth is used (:mod:`depth_strategies.methods`). The subpackages
follow the system (their layers: ``docs/development.md``):

* :mod:`depth_strategies.core`: the plugin that ``ns-train``, ``ns-eval``, ``ns-render`` and the viewer load;
* :mod:`depth_strategies.scenes`: the built-in scene, the room, ``ds-split-scene``, ``ds-import-rgbd``;
* :mod:`depth_strategies.study`: ``ds-compare`` and ``ds-bench``;
* :mod:`depth_strategies.viz`: figures, panels, videos, camera paths.
"""

__version__ = "0.7.0"
