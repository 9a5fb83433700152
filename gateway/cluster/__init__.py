"""Several gateway processes as one: cache coherence (what events mean; ``storage/events``
carries them), orphaned executions and per-worker metrics. May import ``invoke``, ``functions``,
``security`` and ``storage``; never ``http`` or ``cli``."""
