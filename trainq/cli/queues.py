"""Queue commands: stats, pause, resume, purge, and ``worker`` to start a pool."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
from rich.table import Table

from trainq.broker.names import CELERY_QUEUE
from trainq.cli.group import main
from trainq.cli.jobs import note_unknown_queue, warn_of_data_loss
from trainq.cli.output import console, json_option, print_json
from trainq.inputs.durations import format_duration
from trainq.job.record import JobState
from trainq.ops import control
from trainq.ops.worker import worker_command
from trainq.store.registry import get_registry

#: ``trainq worker``'s arguments: queue names, then options passed to ``celery worker``.
WORKER_ARGS = "QUEUE... [CELERY_OPTION...]"


@main.command()
@click.option(
    "--scan",
    is_flag=True,
    help="Also list queues only the broker knows (a name a client misspelled); reads every key of a "
    "Redis broker, about a second per 300,000 keys.",
)
@json_option
def stats(scan: bool, as_json: bool) -> None:
    """Jobs per state and per queue, messages waiting in each queue, and whether a live worker reads it."""
    registry = get_registry()
    registry.ping()
    report = control.stats_report(registry, scan=scan)
    warn_of_data_loss()
    if as_json:
        print_json(report)
        return
    table = Table(title="jobs by state")
    for state in JobState:
        table.add_column(state.value)
    table.add_row(*(str(report["states"][s.value]) for s in JobState))
    console.print(table)
    queues = Table(title="queues")
    for column in ("queue", "pending messages", "paused", "worker", *(s.value for s in JobState)):
        queues.add_column(column)
    for queue, shown in report["queues"].items():
        queues.add_row(
            queue,
            str(shown["pending"]),
            "yes" if shown["paused"] else "",
            "live" if shown["live_worker"] else "[bold red]none[/]",
            *(str(shown["states"].get(s.value, 0)) for s in JobState),
        )
    console.print(queues)
    if report["quarantined"]:
        console.print(f"{report['quarantined']} message(s) set aside: see `trainq quarantine`")
    for queue, shown in report["queues"].items():
        if shown["pending"] and not shown["live_worker"] and not shown["paused"]:
            console.print(unread(queue, shown["pending"]), markup=False, soft_wrap=True)
    retention = report["retention_s"].items()
    kept = ", ".join(f"{s} {format_duration(t) if t else 'forever'}" for s, t in retention)
    console.print(f"redis memory used: {report['memory_used']}; finished records kept: {kept}")


def unread(queue: str, pending: int) -> str:
    """What to do about ``pending`` messages of ``queue``, which no live worker reads."""
    if queue == CELERY_QUEUE:
        return (
            f"{pending} message(s) wait in Celery's default queue {CELERY_QUEUE!r}, which no trainq worker"
            " reads: a client sent them without queue= (see docs/clients.md); to drop them:"
            f" celery -A trainq purge -Q {CELERY_QUEUE}"
        )
    return (
        f"{pending} message(s) wait in queue {queue!r}, which no live worker reads: start one"
        f" (trainq worker {queue}), or drop them (trainq purge {queue})"
    )


@main.command()
@click.argument("queue")
def pause(queue: str) -> None:
    """Stop consuming QUEUE on every worker (and on workers started later)."""
    note_unknown_queue(queue)
    control.pause(queue)
    click.echo(f"queue {queue} paused")


@main.command()
@click.argument("queue")
def resume(queue: str) -> None:
    """Let QUEUE's workers consume it again."""
    owners = control.resume(queue)
    click.echo(f"queue {queue} resumed" + (f" on {', '.join(owners)}" if owners else ""))
    if not owners:
        click.echo(
            f"no worker is recorded for {queue}: its jobs wait for one (trainq worker {queue})", err=True
        )


@main.command()
@click.argument("queue")
@click.confirmation_option(prompt="Drop every waiting job of this queue?")
def purge(queue: str) -> None:
    """Drop QUEUE's waiting jobs (they are recorded cancelled)."""
    click.echo(f"purged {control.purge(queue)} jobs from {queue}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED, metavar=WORKER_ARGS)
@click.option("--concurrency", "-c", type=int, help="Processes (default: the queue's pool setting).")
def worker(args: tuple[str, ...], concurrency: int | None) -> None:
    """Start a worker pool for the QUEUEs (a thin wrapper over ``celery worker``).

    \b
    The queues come first; the first argument starting with '-' and everything after it
    go to ``celery worker`` unchanged (a '--' before them is optional):
      trainq worker data
      trainq worker training data --pool solo -l debug
      trainq worker training -- --autoscale 4,1
    Celery's own form works too: trainq worker -Q training,data
    """
    queues, celery_args = split_worker_args(args)
    os.execv(sys.executable, worker_command(queues, concurrency=concurrency, extra=celery_args))


def split_worker_args(args: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``args`` split into the leading queue names and the celery options after them; with no leading
    queue, the queues of Celery's own ``-Q``/``--queues`` option (a Celery user's habit)."""
    first_option = next((i for i, arg in enumerate(args) if arg.startswith("-")), len(args))
    queues, celery_args = tuple(args[:first_option]), list(args[first_option:])
    if not queues:
        queues = _celery_queues(celery_args)
    if not queues:
        raise click.UsageError(f"give the queues first, then celery options: trainq worker {WORKER_ARGS}")
    return queues, tuple(celery_args)


def _celery_queues(celery_args: list[str]) -> tuple[str, ...]:
    """The queues of the first ``-Q a,b`` (``-Qa,b``, ``--queues a,b``, ``--queues=a,b``) in
    ``celery_args``, taken out of them; none without one."""
    for i, arg in enumerate(celery_args):
        name, _, attached = arg.partition("=") if arg.startswith("--") else (arg[:2], "", arg[2:])
        if name in ("-Q", "--queues"):
            value = attached or (celery_args[i + 1] if i + 1 < len(celery_args) else "")
            del celery_args[i : i + (1 if attached else 2)]
            return tuple(q for q in value.split(",") if q)
    return ()
