"""Several gateway processes as one: cache coherence (what events mean; ``storage/events``
carries them), orphaned executions, per-worker metrics and the periodic-task helper. May import
``invoke``, ``functions``, ``security`` and ``storage``; never ``http`` or ``cli``."""
