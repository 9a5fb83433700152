"""Who may do what: API keys and principals, tenant checks, function secrets, rate limits, the
audit log, and the service that changes them (``admin.py``). May import ``storage``; never
another gateway package but the root modules."""
