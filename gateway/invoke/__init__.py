"""The invoke path below HTTP: the loader (LRU, single flight, breaker), admission, the invoker
that runs the cascade, the typed execution record, the finisher every ending goes through,
execution records' store boundary and callbacks. May import ``functions``, ``security``,
``tiers``, ``plugins`` and ``storage``; never ``http`` or ``cli``."""
