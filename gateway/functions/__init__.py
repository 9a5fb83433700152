"""Deployed functions: manifests and their checks, quotas and ceilings, the registry of versions,
the deploy/rollback/delete service, preloading, and runtime plugin setup. May import
``security``, ``tiers``, ``plugins`` and ``storage``; never ``http``, ``invoke`` or ``cli``."""
