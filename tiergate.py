"""The public plugin API, so plugin authors write ``import tiergate`` and ``@tiergate.hookimpl``.

The names and their list live in ``plugins/__init__.py``; this module only gives them the
project's name."""

from plugins import *  # noqa: F403
from plugins import __all__  # noqa: F401
