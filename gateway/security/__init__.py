"""Who may do what: API keys and principals, tenant checks, function secrets, rate limits and
the audit log. May import ``storage``; never another gateway package but the root modules."""
