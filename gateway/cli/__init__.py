"""The ``tiergate`` command line: ``serve`` and ``runtimes`` (``main``) and the client commands
that speak the HTTP API (``commands``, ``client``). Imports ``http`` only to serve."""
