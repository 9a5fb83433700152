"""The ``tiergate`` command line: ``serve`` and ``runtimes`` here, client commands in
``commands`` and the ``*_commands`` modules, ``new`` and ``completion`` in ``local_commands``;
plugins may add commands through ``tiergate_register_commands``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway import logformat, tracing
from gateway.cli import (
    compose_commands,
    function_commands,
    graph_commands,
    local_commands,
    task_commands,
)
from gateway.cli.client import ClientError, environ
from gateway.cli.commands import register_client_commands, render_table
from gateway.functions.runtimes import runtime_registry, sandbox, worker_budget
from gateway.settings import Settings, SettingsError, workers
from plugins.manager import create_plugin_manager
from storage.urls import StorageURLError, check_urls, redis_url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tiergate")
def cli() -> None:
    """tiergate: deploy functions and invoke them through a code → LLM → agent → human cascade."""


@cli.command()
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to bind (default 8080).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where embedded storage lives.")
@click.option(
    "--deploy",
    "preload",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Deploy every function file under this directory at startup (repeatable).",
)
@click.option(
    "--workers",
    callback=lambda ctx, param, value: _workers(value),
    help="Processes serving the port together: a number, or auto (the default: one per core). "
    "State is shared through the stores.",
)
@click.option("--access-log/--no-access-log", default=False, help="Log every request.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="text (the default) or json: one object per line (else TIERGATE_LOG_FORMAT).",
)
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    preload: tuple[Path, ...],
    workers: int | None,
    access_log: bool,
    log_format: str | None,
) -> None:
    """Run the gateway (embedded storage unless TIERGATE_OBJECT_STORE / TIERGATE_KV say so)."""
    try:
        settings = Settings.from_env(
            environ(),
            host=host,
            port=port,
            data_dir=data_dir,
            preload=preload or None,
            workers=workers,
            log_format=log_format,
        )
        check_urls(settings.object_store, settings.kv)
        tracing.check_installed(settings)
    except (SettingsError, StorageURLError, tracing.TracingUnavailable) as exc:
        raise ClientError(f"error: {exc}") from None
    if redis_url(settings.kv) and not settings.secret_key:
        raise ClientError(
            "error: TIERGATE_KV is shared (Redis): set TIERGATE_SECRET_KEY, the same on every"
            " instance, so that each can read the function secrets the others stored"
        )
    if settings.processes > 1 and settings.port == 0:
        raise ClientError("error: --workers needs a fixed --port (port 0 picks one per process)")
    from gateway.http.server import ServeFailed, run

    logformat.configure(settings.log_level, settings.log_format)
    try:
        run(settings, access_log=access_log)
    except ServeFailed as exc:
        raise ClientError(f"error: {exc}") from None


def _workers(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return workers("--workers", value)
    except SettingsError as exc:
        raise click.BadParameter(str(exc).removeprefix("--workers: ")) from None


@cli.command()
def runtimes() -> None:
    """List installed runtimes and where each came from."""
    settings = Settings.from_env(environ())
    box = sandbox(settings)
    box.probe()
    registry = runtime_registry(settings, box, worker_budget(settings))
    rows = [("NAME", "STATUS", "SOURCE", "DESCRIPTION")]
    for state in registry.states():
        rows.append((state.name, state.label(), state.source, state.description))
    click.echo(render_table(rows))
    click.echo(f"\nsandbox for function code: {box.describe()}")


def build_cli() -> click.Group:
    register_client_commands(
        cli,
        *function_commands.COMMANDS,
        *task_commands.COMMANDS,
        *compose_commands.COMMANDS,
        *graph_commands.COMMANDS,
        *local_commands.COMMANDS,
    )
    try:
        pm, _ = create_plugin_manager()
        pm.hook.tiergate_register_commands(cli=cli)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"warning: plugin commands unavailable: {exc}", err=True)
    return cli


def main() -> None:
    try:
        build_cli()(prog_name="tiergate")
    except KeyboardInterrupt:
        sys.exit(130)
