"""Human review: durable review tasks, claims, expiry and answers. May import ``invoke``,
``functions``, ``security``, ``tiers`` and ``storage``; never ``http`` or ``cli``."""
