"""depth-nerf-strategies: how should a NeRF use depth?

A nerfstudio plugin with four methods that share one nerfacto-based model and differ only in how
depth is used (see ``methods.py``). The modules follow the pipeline:

``scene`` (built-in data) -> ``depth_io`` / ``data`` (depth maps into batches) -> ``sampling`` (depth-guided
samples) -> ``losses`` -> ``model`` -> ``methods`` (the registered TrainerConfigs) -> ``evaluation`` /
``compare`` (the study).
"""

__version__ = "0.2.0"
