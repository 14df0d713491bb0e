"""Pictures of results: comparison figures and panels, videos, per-ray figures and camera paths (``ds-video``,
``ds-figures``, ``ds-camera-path``). Colours come from :mod:`depth_strategies.core.colour`."""
