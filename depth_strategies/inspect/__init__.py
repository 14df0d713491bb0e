"""``ds-inspect``: what a dataset's depth is worth, measured before any training, and the study's pick for it.

``load`` reads a dataset exactly as ``ns-train depth-* ... --data DATA`` does (the methods' datamanager and
dataparser); ``measure`` holds the measurements (pure functions over depth maps and cameras); ``verdict`` names
the kind and level of the depth and looks its pick up in the shipped mapping (``configs/depth-kinds.json``), which
``mapping`` generates from the committed study results; ``report`` writes the terminal summary, ``inspect.json``
and the contact sheet; ``command`` is the console script."""
