"""The comparison study: ``ds-compare`` (protocols, one subprocess per run, evaluation, statistics, reports) and
``ds-bench``. Built on :mod:`depth_strategies.core` and :mod:`depth_strategies.methods`; never imported by
``ns-train``."""
