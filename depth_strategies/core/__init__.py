"""The plugin proper: everything ``ns-train``, ``ns-eval``, ``ns-render`` and the viewer import.

``depth_io`` (depth files) -> ``data`` (depth and per-pixel state into batches) -> ``sampling`` (depth-guided
samples) -> ``losses`` (per-ray depth losses) -> ``model`` (the one model behind every method), with ``metrics``,
``colour`` (the one colour rule for depth images), ``training`` (float LR schedule, atomic checkpoints),
``offline`` (LPIPS without a download), ``reference`` (nerfstudio's depth-nerfacto as it runs in the study) and
``atomic`` (the one atomic-write helper). Nothing here imports the study tooling, the figures or the scene
generator.
"""
