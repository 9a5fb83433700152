"""The whole plugin surface of tiergate: hook specifications and the ``hookimpl`` marker."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from .runtime import PluginContext, RuntimeSpec

PROJECT_NAME = "tiergate"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def tiergate_runtimes(context: PluginContext) -> Iterable[RuntimeSpec]:
    """Declare the language runtimes this plugin provides.

    Called once at startup (and by ``tiergate runtimes``). Return or yield one ``RuntimeSpec`` per
    language. Names must be unique across installed plugins; a clash is reported with both sources.

    Example::

        @tiergate.hookimpl
        def tiergate_runtimes(context):
            yield tiergate.RuntimeSpec(name="reverse", factory=ReverseRuntime,
                                       description="returns its input reversed")
    """
    raise NotImplementedError  # a hookspec: pluggy calls the plugins' implementations


@hookspec
def tiergate_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``tiergate`` CLI (e.g. ``tiergate javascript doctor``).

    Example::

        @tiergate.hookimpl
        def tiergate_register_commands(cli):
            @cli.command()
            def doctor():
                click.echo("all good")
    """
