"""Composition: asynchronous work that outlives a request and functions that start each other.

Owns the durable work queue's consumer (``dispatcher``), asynchronous executions with their
retries and dead letters (``durable``, ``dead_letters``), what follows an execution's end —
chains, the gateway's ``execution.*`` events and callbacks (``followups``) — events and their
triggers (``events``), schedules (``schedules``) and idempotency keys (``idempotency``).

Sits beside ``cluster`` and ``review``: may import ``invoke``, ``functions``, ``security``,
the root modules, ``tiers``, ``plugins`` and ``storage``; ``http`` calls it.
"""
