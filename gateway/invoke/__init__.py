"""The invoke path below HTTP: the loader (LRU, single flight, breaker), admission, the invoker
that runs the cascade and ends every execution, execution records and callbacks. May import
``functions``, ``security``, ``tiers``, ``plugins`` and ``storage``; never ``http`` or ``cli``."""
