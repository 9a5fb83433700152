"""Client commands for human review: ``tasks list|show|claim|release|answer|reject`` (plain
``tiergate tasks`` lists, as it did before it had subcommands). Each speaks to the gateway
through the SDK (``sdk_client``)."""

from __future__ import annotations

from typing import Any

import click
import orjson

from gateway.cli.commands import (
    connection_options,
    input_data,
    json_option,
    pretty_json,
    render_table,
    sdk_client,
    short_time,
)

TASK_STATUSES = ["pending", "completed", "rejected", "expired", "cancelled", "all"]
LOG_LINES = 20


class ListByDefault(click.Group):
    """``tiergate tasks [OPTIONS]`` is ``tiergate tasks list [OPTIONS]``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first is None and not ctx.resilient_parsing:  # completing: offer the subcommands
            args = ["list"]
        elif first is not None and first.startswith("-") and first not in ctx.help_option_names:
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=ListByDefault)
def tasks() -> None:
    """Human review tasks: list, answer, reject.

    Read one, claim it, answer or reject it (or do so in the reviewer page, <url>/ui/).
    `tiergate tasks` alone lists the pending ones, as `tiergate tasks list`."""


@tasks.command("list")
@click.option("--status", default="pending", show_default=True, type=click.Choice(TASK_STATUSES))
@json_option
@connection_options
def list_tasks(status: str, as_json: bool, url: str | None, key: str | None) -> None:
    """List review tasks.

    Answer them with `tiergate tasks answer`, or in the reviewer page (<url>/ui/)."""
    with sdk_client(url, key) as client:
        found = client.tasks(status)
    if as_json:
        click.echo(pretty_json([task.raw for task in found]))
        return
    rows = [("TASK", "FUNCTION", "STATUS", "CREATED", "EXPIRES", "CLAIMED BY")]
    for task in found:
        rows.append(
            (
                task.id,
                task.function_id or "-",
                task.status or "-",
                short_time(task.created_at),
                short_time(task.expires_at),
                task.claimed_by or "-",
            )
        )
    if len(rows) == 1:
        click.echo(f"no {status} tasks" if status != "all" else "no tasks")
        return
    click.echo(render_table(rows))


@tasks.command("show")
@click.argument("task_id", metavar="ID")
@json_option
@connection_options
def show_task(task_id: str, as_json: bool, url: str | None, key: str | None) -> None:
    """Show a task: what a reviewer needs.

    Its input, the instructions, the output schema an answer must fit, the earlier attempts
    and the end of their logs."""
    with sdk_client(url, key) as client:
        task = client.task(task_id)
    doc = task.raw
    if as_json:
        click.echo(pretty_json(doc))
        return
    click.echo(
        f"task {task.id} of {task.function_id} (execution {task.execution_id}): {task.status}"
    )
    claimed = (
        f", claimed by {task.claimed_by} until {short_time(task.claimed_until)}"
        if task.claimed_by
        else ""
    )
    click.echo(
        f"created {short_time(task.created_at)}, expires {short_time(task.expires_at)}{claimed}"
    )
    for label, value in (("answered by", doc.get("answered_by")), ("reason", doc.get("reason"))):
        if value:
            click.echo(f"{label}: {value}")
    if doc.get("description"):
        click.echo(f"function: {doc['description']}")
    if task.instructions:
        click.echo(f"instructions: {task.instructions}")
    _block("input", task.input)
    if doc.get("output_schema") is not None:
        _block("output schema (an answer must fit it)", doc["output_schema"])
    if task.attempts:
        click.echo("attempts:")
        for attempt in task.attempts:
            why = " ".join((attempt.error or "").split())
            click.echo(f"  {attempt.tier}  {attempt.status}  {why[:120]}".rstrip())
    lines: list[Any] = doc.get("logs") or []
    if lines:
        total = doc.get("logs_total") or len(lines)
        shown = lines[-LOG_LINES:]
        click.echo(f"logs (the last {len(shown)} of {total}):")
        for line in shown:
            click.echo(f"  [{line.get('stream')}] {line.get('message')}")
    if task.status == "pending":
        click.echo(
            f"answer: tiergate tasks answer {task.id} -d JSON "
            f"(or reject: tiergate tasks reject {task.id} --reason TEXT)"
        )


def _block(label: str, value: Any) -> None:
    click.echo(f"{label}:")
    for line in pretty_json(value).splitlines():
        click.echo(f"  {line}")


@tasks.command("claim")
@click.argument("task_id", metavar="ID")
@json_option
@connection_options
def claim_task(task_id: str, as_json: bool, url: str | None, key: str | None) -> None:
    """Reserve a task while you work on it.

    Other keys cannot answer task ID until it is released or the claim runs out."""
    with sdk_client(url, key) as client:
        task = client.claim(task_id)
    if as_json:
        click.echo(pretty_json(task.raw))
        return
    click.echo(f"claimed task {task.id} until {short_time(task.claimed_until)}")


@tasks.command("release")
@click.argument("task_id", metavar="ID")
@json_option
@connection_options
def release_task(task_id: str, as_json: bool, url: str | None, key: str | None) -> None:
    """Give back a task this key claimed."""
    with sdk_client(url, key) as client:
        task = client.release(task_id)
    if as_json:
        click.echo(pretty_json(task.raw))
        return
    click.echo(f"released task {task.id}")


@tasks.command("answer")
@click.argument("task_id", metavar="ID")
@click.option(
    "--data",
    "-d",
    required=True,
    help="The answer (JSON, fitting the function's output schema), @FILE, or @- for stdin.",
)
@json_option
@connection_options
def answer_task(
    task_id: str, data: str, as_json: bool, url: str | None, key: str | None
) -> None:
    """Answer a task: its execution's output.

    --data becomes the output of task ID's execution, which completes by the human tier. An
    answer that breaks the function's output schema is refused (exit 1, naming the fields at
    fault)."""
    output = orjson.loads(input_data(data))
    with sdk_client(url, key) as client:
        execution = client.complete(task_id, output)
    if as_json:
        click.echo(pretty_json(execution.raw))
        return
    click.echo(
        f"answered task {task_id}: execution {execution.execution_id} {execution.status}"
        f" (tier {execution.tier or '-'})"
    )


@tasks.command("reject")
@click.argument("task_id", metavar="ID")
@click.option("--reason", required=True, help="Why (kept as the execution's error).")
@json_option
@connection_options
def reject_task(
    task_id: str, reason: str, as_json: bool, url: str | None, key: str | None
) -> None:
    """Reject a task: its execution fails."""
    with sdk_client(url, key) as client:
        execution = client.reject(task_id, reason)
    if as_json:
        click.echo(pretty_json(execution.raw))
        return
    click.echo(f"rejected task {task_id}: execution {execution.execution_id} {execution.status}")


COMMANDS = (tasks,)
