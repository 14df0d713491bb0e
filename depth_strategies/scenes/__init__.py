"""Data without a download: the built-in analytic scene (``ds-make-scene``: ``geometry`` -> ``render`` ->
``builtin``) and ``ds-split-scene`` (train/test splits of a scene with depth in one split)."""
