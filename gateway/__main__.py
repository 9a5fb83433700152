"""``python -m gateway`` is the ``tiergate`` command."""

from .cli import main

main()
