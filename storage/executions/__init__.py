"""Execution records: one per invocation, listable per function, purged after retention."""
