"""Storage: small async interfaces (object store, KV, execution records, events between
processes) and their backends."""
