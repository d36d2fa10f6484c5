"""``trainq quarantine``: messages workers set aside because they could not be read or run."""

from __future__ import annotations

import click
from rich.table import Table

from trainq.broker.names import check_queue
from trainq.broker.quarantine import get_quarantine
from trainq.cli.group import main
from trainq.cli.output import console, json_option, plain, print_json, printable, when
from trainq.job import send


@main.group(invoke_without_command=True)
@click.pass_context
def quarantine(ctx: click.Context) -> None:
    """Messages workers set aside (undecodable, not a task, refused content type, unknown task)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_quarantined)


@quarantine.command("list")
@click.option("--limit", default=50, show_default=True)
@json_option
def list_quarantined(limit: int = 50, as_json: bool = False) -> None:
    """The newest set-aside messages: id, queue, time, size and why."""
    entries = get_quarantine().newest(limit)
    if as_json:
        print_json([e.model_dump(mode="json", exclude={"raw_b64"}) for e in entries])
        return
    table = Table(title="quarantined messages")
    for column in ("id", "queue", "at", "bytes", "reason"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.id, plain(e.queue), when(e.at), str(e.size), plain(e.reason))
    console.print(table)


@quarantine.command()
@click.argument("entry_id")
@json_option
def show(entry_id: str, as_json: bool) -> None:
    """One set-aside message with its raw bytes."""
    entry = get_quarantine().get(entry_id)
    if as_json:
        print_json(entry.model_dump(mode="json"))
        return
    queue, reason = printable(entry.queue), printable(entry.reason)
    click.echo(f"id:     {entry.id}\nqueue:  {queue}\nat:     {when(entry.at)}\nreason: {reason}")
    click.echo(
        f"bytes:  {entry.size}" + (f" (first {len(entry.raw)} kept)" if len(entry.raw) < entry.size else "")
    )
    click.echo(repr(entry.raw)[2:-1])


@quarantine.command()
@click.argument("entry_id")
@click.option("--queue", help="Send it to this queue instead of the one it came from.")
def requeue(entry_id: str, queue: str | None) -> None:
    """Send a set-aside message again, as it was received (once a worker knows its task), and forget it."""
    from kombu.serialization import prepare_accept_content

    from trainq.celery import app

    kept = get_quarantine()
    name = check_queue(queue or kept.get(entry_id).queue)  # an unknown id is refused here, nothing sent
    # the content types workers take, as they compare them (kombu has no types)
    accept = prepare_accept_content(app.conf.accept_content)  # type: ignore[no-untyped-call]
    with send.broker_errors(), app.producer_or_acquire() as producer:
        kept.requeue(entry_id, producer, app.amqp.queues[name], accept)
    click.echo(f"re-queued {entry_id} to queue {name}")


@quarantine.command()
@click.argument("entry_id", required=False)
@click.option("--all", "drop_all", is_flag=True, help="Drop every set-aside message.")
def drop(entry_id: str | None, drop_all: bool) -> None:
    """Forget one set-aside message (or all with --all)."""
    if bool(entry_id) == drop_all:
        raise click.UsageError("give one ENTRY_ID or --all")
    click.echo(f"dropped {get_quarantine().drop(None if drop_all else entry_id)} message(s)")
