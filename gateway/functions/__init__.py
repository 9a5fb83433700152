"""Deployed functions: manifests and their checks, quotas and ceilings, typed function and version
records and the registry that stores them, deploying and loading, the deploy/rollback/delete
service, moving code between stores, preloading, and runtime plugin setup. May import
``security``, ``tiers``, ``plugins`` and ``storage``; never ``http``, ``invoke`` or ``cli``."""
