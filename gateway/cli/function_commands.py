"""Client commands for a function's versions and aliases: ``versions``, ``rollback``, ``delete``,
``alias set|list|delete``. Each speaks to the gateway through the SDK (``sdk_client``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import click

from gateway.cli.client import EXIT_CODES, ClientError
from gateway.cli.commands import (
    connection_options,
    json_option,
    pretty_json,
    render_table,
    sdk_client,
    short_time,
)

SHA_SHOWN = 12


@click.command()
@click.argument("function_id", metavar="ID")
@json_option
@connection_options
def versions(function_id: str, as_json: bool, url: str | None, key: str | None) -> None:
    """List a function's versions.

    Oldest first; * marks the latest, the one the calls of ID run."""
    with sdk_client(url, key) as client:
        fn = client.function(function_id)
    if as_json:
        click.echo(pretty_json([version.raw for version in fn.versions]))
        return
    rows = [("", "VERSION", "RUNTIME", "DEPLOYED", "SIZE", "SHA256", "DESCRIPTION")]
    for version in fn.versions:
        rows.append(
            (
                "*" if version.version == fn.latest_version else "",
                str(version.version),
                version.runtime or "-",
                short_time(version.deployed_at),
                size(version.code_size),
                (version.code_sha256 or "-")[:SHA_SHOWN],
                (version.description or "")[:60],
            )
        )
    click.echo(render_table(rows))


def size(count: int | None) -> str:
    if count is None:
        return "-"
    if count < 1024:
        return f"{count}B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f}KiB"
    return f"{count / (1024 * 1024):.1f}MiB"


@click.command()
@click.argument("function_id", metavar="ID")
@click.argument("version", type=click.IntRange(1))
@json_option
@connection_options
def rollback(
    function_id: str, version: int, as_json: bool, url: str | None, key: str | None
) -> None:
    """Make an earlier version the latest.

    The calls of function ID run VERSION from now on; aliases and calls pinned to a version
    (ID@N) are not affected."""
    with sdk_client(url, key) as client:
        fn = client.rollback(function_id, version)
    if as_json:
        click.echo(pretty_json(fn.raw))
        return
    click.echo(f"rolled back {fn.id}: calls now run version {fn.latest_version}")


@click.command()
@click.argument("function_id", metavar="ID")
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Delete without asking. Needed when stdin is not a terminal: without it the command "
    "refuses (exit 2) rather than delete unasked.",
)
@connection_options
def delete(function_id: str, yes: bool, url: str | None, key: str | None) -> None:
    """Delete a function, every version and alias.

    Asks first, unless --yes; refuses when it cannot ask (stdin is not a terminal) and --yes is
    not given. The records of its executions stay until they expire."""
    if not yes and not sys.stdin.isatty():
        raise ClientError(
            f"error: not deleting {function_id} unasked: stdin is not a terminal, so pass --yes",
            EXIT_CODES["usage"],
        )
    with sdk_client(url, key) as client:
        if not yes:
            fn = client.function(function_id)  # unknown: exit 3 before asking
            count = len(fn.versions)
            aliases = len(client.aliases(function_id))
            question = (
                f"Delete {function_id}: {count} version{'' if count == 1 else 's'} and "
                f"{aliases} alias{'' if aliases == 1 else 'es'}?"
            )
            if not click.confirm(question, default=False, err=True):
                raise ClientError(f"error: {function_id} not deleted: you did not confirm")
        client.delete(function_id)
    click.echo(f"deleted {function_id}")


# ---- aliases -------------------------------------------------------------------------------


@click.group()
def alias() -> None:
    """Set, list and delete a function's aliases.

    An alias is a name (ID:prod) that points at a version, with shares of its calls sent to
    other versions (canary releases)."""


@alias.command("set")
@click.argument("function_id", metavar="ID")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="V=SHARE",
    help="Send SHARE (0-1) of the calls of ID:NAME to version V (repeatable, at most 4); the "
    "rest go to VERSION.",
)
@click.option("--description", help="What the alias is for.")
@json_option
@connection_options
def set_alias(
    function_id: str,
    name: str,
    version: int,
    weights: tuple[str, ...],
    description: str | None,
    as_json: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Point alias NAME of function ID at VERSION.

    Creates the alias or moves it. A set replaces the whole alias: leave --weight out to send
    every call to VERSION again."""
    shares = dict(_weight(value) for value in weights)
    with sdk_client(url, key) as client:
        made = client.set_alias(
            function_id, name, version, shares or None, description=description
        )
    if as_json:
        click.echo(pretty_json(made.raw))
        return
    click.echo(f"alias {made.function_id}:{made.name} points at version {made.version}"
               f"{_shares(made.weights)}")


def _weight(value: str) -> tuple[int, float]:
    version, _, share = value.partition("=")
    try:
        number, part = int(version), float(share)
    except ValueError:
        raise ClientError(
            f"error: --weight {value!r}: write VERSION=SHARE, as 3=0.1", EXIT_CODES["usage"]
        ) from None
    return number, part


def _shares(weights: Mapping[str, float]) -> str:
    if not weights:
        return ""
    parts = [f"{share:g} to version {v}" for v, share in _by_version(weights)]
    return f" ({', '.join(parts)})"


def _by_version(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(weights.items(), key=lambda item: int(item[0]) if item[0].isdigit() else 0)


@alias.command("list")
@click.argument("function_id", metavar="ID")
@json_option
@connection_options
def list_aliases(function_id: str, as_json: bool, url: str | None, key: str | None) -> None:
    """List the aliases of function ID."""
    with sdk_client(url, key) as client:
        found = client.aliases(function_id)
    if as_json:
        click.echo(pretty_json([made.raw for made in found]))
        return
    if not found:
        click.echo(f"no aliases of {function_id} (try: tiergate alias set {function_id} prod N)")
        return
    rows = [("NAME", "VERSION", "WEIGHTS", "UPDATED", "DESCRIPTION")]
    for made in found:
        weights = ", ".join(f"{v}={share:g}" for v, share in _by_version(made.weights))
        rows.append(
            (
                made.name,
                str(made.version),
                weights or "-",
                short_time(made.updated_at),
                (made.description or "")[:60],
            )
        )
    click.echo(render_table(rows))


@alias.command("delete")
@click.argument("function_id", metavar="ID")
@click.argument("name")
@connection_options
def delete_alias(function_id: str, name: str, url: str | None, key: str | None) -> None:
    """Delete alias NAME of function ID."""
    with sdk_client(url, key) as client:
        client.delete_alias(function_id, name)
    click.echo(f"deleted alias {function_id}:{name}")


COMMANDS = (versions, rollback, delete, alias)
