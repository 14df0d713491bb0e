"""The plugin proper: everything ``ns-train``, ``ns-eval``, ``ns-render`` and the viewer import.

``depth_io`` (depth files) -> ``data`` (depth and per-pixel state into batches) -> ``colliders`` (each ray's
sampled interval, inside the scene box) -> ``sampling`` (depth-guided samples) -> ``losses`` (per-ray depth
losses) -> ``model`` (the one model behind every method), with ``metrics``, ``colour`` (the one colour rule for
depth images), ``training`` (float LR schedule, atomic checkpoints), ``offline`` (LPIPS without a download),
``reference`` (nerfstudio's nerfacto and depth-nerfacto as the study runs them) and ``atomic`` (the one
atomic-write helper). Nothing here imports the study tooling, the figures or the scene generator.
"""
