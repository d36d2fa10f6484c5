"""``trainq limits``: list, set and delete the limits of concurrency keys (docs/sharing.md)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from trainq.cli.group import main
from trainq.cli.output import console, json_option, plain, print_json
from trainq.job.limit import MAX_RUNNING_MAX, MAX_WEIGHT
from trainq.sharing.fair import AUTO, parse_window
from trainq.sharing.policy import delete_fair, delete_limit, fair_uses, key_uses, set_fair, set_limit
from trainq.store.sharing import FairUse, KeyUse

#: What ``--rate`` and ``--supersede`` take to clear the field.
NONE = "none"


@main.group()
def limits() -> None:
    """Concurrency keys and fair queues: their limits, rates and how many jobs run and wait."""


def use_row(use: KeyUse) -> dict[str, Any]:
    """One key as ``limits list --json`` and ``status --json`` print it."""
    return {"key": use.key, **use.policy, "running": use.running, "waiting": use.waiting}


def limits_table(uses: list[KeyUse]) -> Table:
    """Keys with their limits, running and waiting jobs."""
    table = Table(title="limits", title_justify="left")
    for column in ("key", "running", "max running", "waiting", "rate", "weight", "supersede"):
        table.add_column(column, justify="left" if column == "key" else "right")
    for use in uses:
        policy = use.policy
        table.add_row(
            plain(use.key),
            str(use.running),
            str(policy.get("max_running", "")),
            str(use.waiting),
            plain(policy.get("rate", "")),
            str(policy.get("weight", 1)),
            plain(policy.get("supersede", "")),
        )
    return table


def fair_row(use: FairUse) -> dict[str, Any]:
    """One fair queue as ``limits list --json`` prints it (after the keys)."""
    return {
        "queue": use.queue,
        "fair": True,
        "window": use.window or AUTO,
        "capacity": use.capacity,
        "in_flight": use.inflight,
    }


def fair_table(uses: list[FairUse]) -> Table:
    """Fair queues with their window, live capacity and jobs in flight."""
    table = Table(title="fair queues", title_justify="left")
    for column in ("queue", "window", "capacity", "in flight"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for use in uses:
        table.add_row(use.queue, str(use.window or AUTO), str(use.capacity), str(use.inflight))
    return table


@limits.command("list")
@json_option
def list_limits(as_json: bool) -> None:
    """Every key with a limit or jobs (its limits, running and waiting jobs), then the fair queues."""
    uses, fair = key_uses(), fair_uses()
    if as_json:
        print_json([*(use_row(u) for u in uses), *(fair_row(u) for u in fair)])
    else:
        console.print(limits_table(uses))
        if fair:
            console.print(fair_table(fair))


@limits.command("set")
@click.argument("key")
@click.argument("max_running", required=False, type=click.IntRange(1, MAX_RUNNING_MAX))
@click.option("--rate", help="Starts allowed, e.g. 10/m (s, m, h, d); 'none' clears it.")
@click.option("--weight", type=click.IntRange(1, MAX_WEIGHT), help="Share in the turns between keys.")
@click.option(
    "--supersede",
    type=click.Choice(["cancel", "refuse", NONE]),
    help="A newer job cancels the older ones, or is refused while one is active.",
)
def set_command(
    key: str, max_running: int | None, rate: str | None, weight: int | None, supersede: str | None
) -> None:
    """Set KEY's limit to MAX_RUNNING jobs at once (and rate, weight, supersede); takes effect now."""
    changes: dict[str, Any] = {}
    for field, value in (("max_running", max_running), ("rate", rate), ("weight", weight)):
        if value is not None:
            changes[field] = value
    if rate == NONE:
        changes["rate"] = None
    if supersede is not None:
        changes["supersede"] = None if supersede == NONE else supersede
    if not changes:
        raise click.UsageError("give MAX_RUNNING, --rate, --weight or --supersede")
    policy = set_limit(key, changes)
    shown = ", ".join(f"{k} {v}" for k, v in policy.stored().items()) or "no limit"
    click.echo(f"{key}: {shown}")


@limits.command("fair")
@click.argument("queue")
@click.option(
    "--window",
    default=AUTO,
    show_default=True,
    help="Most jobs of the queue in the broker or running at once; 'auto': its live workers' processes.",
)
def fair_command(queue: str, window: str) -> None:
    """Make QUEUE fair: its ready jobs of different keys start in turns; takes effect within a second."""
    set_fair(queue, parse_window(window))
    click.echo(f"{queue}: fair, window {window.strip().lower()}")


@limits.command("delete")
@click.argument("key")
@click.option("--queue", "is_queue", is_flag=True, help="KEY names a fair queue: make it plain again.")
def delete_command(key: str, is_queue: bool) -> None:
    """Forget KEY's limit: its waiting jobs start now (with --queue: QUEUE is no longer fair)."""
    if is_queue:
        delete_fair(key)
        click.echo(f"{key}: no longer fair")
        return
    delete_limit(key)
    click.echo(f"{key}: limit deleted")
