"""Several gateway processes as one: the event log and bus, cache coherence, orphaned
executions and per-worker metrics. May import ``invoke``, ``functions``, ``security`` and
``storage``; never ``http`` or ``cli``."""
