"""Monitor commands: ``flower``, ``status`` (alias ``top``), ``workers`` and ``metrics``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from typing import Any

import click
from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table

from trainq.cli.group import main
from trainq.cli.limits import limits_table, use_row
from trainq.cli.output import console, json_option, metrics_text, plain, print_json
from trainq.errors import ConfigError
from trainq.inputs.durations import format_duration
from trainq.job.record import JobRecord, JobState, eta_s
from trainq.ops import control
from trainq.ops.metrics import DEFAULT_PORT, start_exporter
from trainq.ops.sockets import listening
from trainq.settings import get_settings
from trainq.sharing.policy import key_uses
from trainq.store.registry import Registry, get_registry


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--address", help="Interface to bind (default 127.0.0.1; others need authentication).")
@click.option("--port", type=int, help="Port (default 5555).")
@click.option("--basic-auth", help="user:password[,user2:password2] (default: TRAINQ_FLOWER_BASIC_AUTH).")
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(
    address: str | None, port: int | None, basic_auth: str | None, flower_args: tuple[str, ...]
) -> None:
    """Start Flower for trainq's app, with persistent history; extra arguments go to Flower."""
    from trainq.ops.flower import flower_launch

    launch = flower_launch(get_settings(), address, port, basic_auth, flower_args)
    # Tried here, released for Flower: an address in use is one line, not Flower's traceback.
    listening("Flower", launch.address, launch.port).close()
    click.echo(f"Flower on {launch.url}" + (" (basic auth)" if launch.env else ""), err=True)
    # Credentials travel in the environment (FLOWER_BASIC_AUTH), never on the visible command line.
    os.execve(launch.argv[0], launch.argv, {**os.environ, **launch.env})


def _running(registry: Registry, limit: int) -> list[JobRecord]:
    """Running jobs, grouped by queue, oldest start first."""
    records = registry.list(state=JobState.RUNNING, limit=limit)
    return sorted(records, key=lambda r: (r.queue, r.started_at or 0))


def _job_json(record: JobRecord) -> dict[str, Any]:
    progress = record.progress.model_dump(mode="json") if record.progress else None
    fields = ("id", "name", "type", "queue", "worker", "attempt")
    return {
        **{f: getattr(record, f) for f in fields},
        "progress": progress,
        "elapsed_s": record.duration_s,
        "eta_s": eta_s(record),
    }


def status_view(registry: Registry, limit: int) -> Group:
    """Queues (waiting, running, retrying, dead, broker depth), concurrency keys (running, max, waiting)
    and a table of running jobs."""
    per_queue = registry.queue_counts()
    depths = control.queue_depths(per_queue)
    queues = Table(title="queues", title_justify="left")
    for column in ("queue", "queued", "running", "retrying", "delayed", "dead", "pending messages"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for queue, counts in per_queue.items():
        states = (JobState.QUEUED, JobState.RUNNING, JobState.RETRYING, JobState.DELAYED, JobState.DEAD)
        queues.add_row(queue, *(str(counts.get(s.value, 0)) for s in states), str(depths[queue]))
    jobs = Table(title=f"running jobs ({time.strftime('%H:%M:%S')})", title_justify="left")
    for column in ("queue", "id", "name", "worker", "progress", "%", "step", "metrics", "elapsed", "eta"):
        jobs.add_column(column, no_wrap=column in ("id", "progress"))
    previous = None
    for r in _running(registry, limit):
        if previous is not None and r.queue != previous:
            jobs.add_section()
        previous = r.queue
        p = r.progress
        eta = eta_s(r)
        jobs.add_row(
            r.queue,
            plain(r.id),
            plain(r.name),
            plain(r.worker or ""),
            ProgressBar(total=100, completed=p.percent, width=24) if p else "",
            f"{p.percent:.1f}" if p else "",
            f"{p.step:g}/{p.total:g}" if p and p.total else "",
            plain(metrics_text(p.metrics)) if p else "",
            format_duration(r.duration_s or 0),
            format_duration(eta) if eta is not None else "",
        )
    uses = key_uses()
    return Group(queues, limits_table(uses), jobs) if uses else Group(queues, jobs)


@main.command()
@click.option(
    "--once", is_flag=True, help="Print one snapshot and exit (also when output is not a terminal)."
)
@click.option(
    "--interval", default=1.0, show_default=True, type=click.FloatRange(0.1), help="Seconds between redraws."
)
@click.option(
    "--limit", default=200, show_default=True, type=click.IntRange(1), help="Running jobs shown at most."
)
@json_option
def status(once: bool, interval: float, limit: int, as_json: bool) -> None:
    """Live table of running jobs per queue with progress bars and ETA (Ctrl-C quits)."""
    registry = get_registry()
    registry.ping()
    if as_json:
        print_json(
            {
                "queues": registry.queue_counts(),
                "limits": [use_row(u) for u in key_uses()],
                "running": [_job_json(r) for r in _running(registry, limit)],
            }
        )
        return
    if once or not console.is_terminal:
        console.print(status_view(registry, limit))
        return
    from rich.live import Live

    with Live(status_view(registry, limit), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(status_view(registry, limit), refresh=True)
        except KeyboardInterrupt:
            pass


main.add_command(status, "top")


def _queue_rows(queues: dict[str, Any]) -> Iterable[tuple[str, ...]]:
    for queue, q in queues.items():
        health = "[bold red]NO WORKER[/]" if q["no_worker"] else "[yellow]paused[/]" if q["paused"] else "ok"
        yield queue, plain(", ".join(q["workers"]) or "-"), str(q["waiting"]), str(q["running"]), health


@main.command()
@click.option(
    "--timeout",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds to wait for replies.",
)
@json_option
def workers(timeout: float, as_json: bool) -> None:
    """Live workers per queue with their active jobs; flags queues that have jobs but no worker."""
    registry = get_registry()
    registry.ping()
    report = control.worker_report(registry, timeout)
    if as_json:
        print_json(report)
        return
    queues = Table(title="queues", title_justify="left")
    for column in ("queue", "workers", "waiting", "running", "health"):
        queues.add_column(column)
    for row in _queue_rows(report["queues"]):
        queues.add_row(*row)
    table = Table(title="workers", title_justify="left")
    for column in ("worker", "queues", "active jobs"):
        table.add_column(column)
    for name, w in report["workers"].items():
        jobs = "\n".join(
            f"{j['id']} {j['name']}" + (f" {j['progress']:.0f}%" if j["progress"] is not None else "")
            for j in w["active"]
        )
        table.add_row(plain(name), plain(", ".join(w["queues"])), plain(jobs, lines=True) or "idle")
    console.print(queues, table)
    if not report["workers"]:
        console.print("[bold red]no live worker answered[/] (start one: trainq worker QUEUE)")


@main.command()
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535), help="Port to serve on."
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (0.0.0.0 for a remote Prometheus).",
)
def metrics(port: int, address: str) -> None:
    """Serve Prometheus metrics on http://ADDRESS:PORT/metrics until stopped."""
    get_registry().ping()
    try:
        _, thread = start_exporter(address, port)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {address}:{port}: {exc.strerror}") from None
    click.echo(f"trainq metrics on http://{address}:{port}/metrics", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        thread.join()
