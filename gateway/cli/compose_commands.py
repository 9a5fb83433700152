"""Client commands for composition: ``events send``, ``dead-letters``, ``redrive``."""

from __future__ import annotations

import click
import orjson

from gateway.cli.commands import (
    client_for,
    connection_options,
    input_data,
    json_option,
    pretty_json,
    render_table,
    short_time,
)


@click.group()
def events() -> None:
    """Publish events (they start the functions whose triggers match)."""


@events.command("send")
@click.argument("event_type", metavar="TYPE")
@click.option("--data", "-d", default=None, help="The event's data (JSON), or @FILE.")
@click.option("--idempotency-key", help="Send at most once per key (24 h).")
@json_option
@connection_options
def send(
    event_type: str,
    data: str | None,
    idempotency_key: str | None,
    as_json: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Publish an event of TYPE; prints its id and the executions it started."""
    value = orjson.loads(input_data(data))
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    result = client_for(url, key).call(
        "POST", "/events", json={"type": event_type, "data": value}, headers=headers
    )
    if as_json:
        click.echo(pretty_json(result))
        return
    started = result["started"]
    click.echo(f"event {result['event_id']} started {len(started)} execution(s)")
    for execution_id in started:
        click.echo(f"  {execution_id}")


@click.command("dead-letters")
@click.option("--function", "function_id", help="Only this function's.")
@click.option("--json", "as_json", is_flag=True, help="Print them whole, as JSON.")
@connection_options
def dead_letters(function_id: str | None, as_json: bool, url: str | None, key: str | None) -> None:
    """List asynchronous executions whose retries are spent."""
    params = {"function_id": function_id} if function_id else None
    letters = client_for(url, key).call("GET", "/dead-letters", params=params)["dead_letters"]
    if as_json:
        click.echo(pretty_json(letters))
        return
    if not letters:
        click.echo("no dead letters")
        return
    rows = [("EXECUTION", "FUNCTION", "VERSION", "RETRIES", "FAILED", "ERROR")]
    for letter in letters:
        rows.append(
            (
                letter["execution_id"],
                letter["function_id"],
                str(letter["version"]),
                str(letter["retries"]),
                short_time(letter["failed_at"]),
                (letter.get("error") or "")[:60],
            )
        )
    click.echo(render_table(rows))


@click.command()
@click.argument("execution_id")
@json_option
@connection_options
def redrive(execution_id: str, as_json: bool, url: str | None, key: str | None) -> None:
    """Run a dead letter's input again, by its function's latest version."""
    result = client_for(url, key).call("POST", f"/dead-letters/{execution_id}/redrive")
    if as_json:
        click.echo(pretty_json(result))
        return
    click.echo(f"redriven as {result['execution_id']}")


COMMANDS = (events, dead_letters, redrive)
