"""Storage: small async interfaces (object store, KV, execution records) and their backends."""
