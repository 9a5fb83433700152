"""``python -m gateway`` is the ``tiergate`` command."""

from gateway.cli.main import main

main()
