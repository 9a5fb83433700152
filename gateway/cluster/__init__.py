"""Several gateway processes as one: the event log and bus, cache coherence, orphaned
executions, per-worker metrics and the periodic-task helper. May import ``invoke``,
``functions``, ``security`` and ``storage``; never ``http`` or ``cli``."""
