"""How a worker and the deploy-time check bring in a function's code, inside the sandbox: a
single source file runs as the module ``function`` (file name ``function.py``); a package's entry
is imported as the module its path names (``app/main.py`` → ``app.main``) with its code directory
and then its environment first on ``sys.path``, so that its own modules (``import helpers``,
``from . import util`` inside a package) and its requirements import as anywhere else."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Sequence
from typing import Any

SOURCE_NAME = "function.py"


def run_source(source: str | bytes) -> dict[str, Any]:
    """The namespace of a single source file, run as the module ``function``."""
    module = types.ModuleType("function")
    exec(compile(source, SOURCE_NAME, "exec"), module.__dict__)
    return module.__dict__


def import_package(module: str, paths: Sequence[str]) -> dict[str, Any]:
    """The namespace of a package's entry module, imported with ``paths`` (its code directory,
    then its environment) first on the import path."""
    sys.path[:0] = list(paths)
    return vars(importlib.import_module(module))
