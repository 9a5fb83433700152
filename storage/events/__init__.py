"""Events between gateway processes sharing stores: a log in the KV that every process polls,
and on Redis a pub/sub channel that carries each event at once. Storage delivers events; what
they mean is the gateway's business (``gateway/cluster/coherence.py``)."""
