"""Stack commands: ``trainq up`` runs the whole local stack, ``trainq demo`` runs the ML pipeline on it,
``trainq down`` stops the embedded Redis earlier commands left running."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
from rich.live import Live
from rich.table import Table

import trainq
from trainq.cli.group import EXIT_FAILED, main
from trainq.cli.output import console, plain, progress_bar, state_text
from trainq.errors import ConfigError, InvalidInput
from trainq.inputs.durations import format_duration
from trainq.job.record import JobRecord, JobState
from trainq.ops import embedded
from trainq.ops.stack import Stack, live_queues, stack_queues
from trainq.settings import get_settings, redacted

if TYPE_CHECKING:
    from trainq.pipelines.runs import RunStatus

#: The demo pipeline, shipped inside the package so ``trainq demo`` runs from any directory.
DEMO_FILE = ("examples", "ml-pipeline.yaml")
REFRESH_S = 0.5


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (Ctrl-C) while the block runs, instead of dying mid-start."""
    stopping = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopping
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start_stack(stack: Stack, stopping: threading.Event) -> None:
    """Start ``stack``'s processes and wait for its pools; if one fails, stop all and exit 1."""
    stack.start()
    click.echo(f"starting pools for {', '.join(stack.queues)}; logs in {stack.log_dir}")
    missing = stack.wait_ready()
    if stopping.is_set() or not (missing or stack.exited()):
        return
    gone = ", ".join(c.name for c in stack.exited())
    stack.stop()
    problem = f"pools for {', '.join(missing)} did not answer" if missing else f"{gone} exited"
    click.echo(f"error: {problem}; see the logs in {stack.log_dir}", err=True)
    sys.exit(EXIT_FAILED)


def serve(stack: Stack, stopping: threading.Event) -> None:
    """Keep the stack up until a stop signal; if a process of it exits, stop all and exit 1."""
    click.echo(f"{describe(stack)}\nCtrl-C to stop.")
    while not stopping.wait(REFRESH_S):
        if stack.exited():
            names = ", ".join(c.name for c in stack.exited())
            stack.stop()
            click.echo(f"error: {names} exited; stack stopped (logs in {stack.log_dir})", err=True)
            sys.exit(EXIT_FAILED)


def describe(stack: Stack) -> str:
    """One line saying what runs, on which broker, and where Flower is."""
    broker = redacted(stack.settings.broker_url or "") or f"embedded Redis in {stack.settings.home / 'redis'}"
    parts = [f"{len(stack.queues)} worker pools", *(["Beat"] if stack.beat else [])]
    parts += [f"Flower at {stack.flower_url}"] if stack.flower_url else []
    parts += [f"web at {stack.web_url}"] if stack.web_url else []
    return f"stack up: {', '.join(parts)}; broker: {broker}"


def flower_port_option(command: Any) -> Any:
    """The shared ``--flower-port`` / ``--no-flower`` options of ``up`` and ``demo``."""
    command = click.option("--no-flower", is_flag=True, help="Do not start Flower.")(command)
    port = click.option(
        "--flower-port", type=click.IntRange(1, 65535), help="Default: TRAINQ_FLOWER_PORT (5555)."
    )
    return port(command)


def web_port_option(command: Any) -> Any:
    """The shared ``--web-port`` / ``--no-web`` options of ``up`` and ``demo``."""
    command = click.option("--no-web", is_flag=True, help="Do not start trainq web.")(command)
    port = click.option("--web-port", type=click.IntRange(1, 65535), help="Default: TRAINQ_WEB_PORT (5580).")
    return port(command)


@main.command()
@click.option("--queue", "queues", multiple=True, help="Start pools for these queues only (default: all).")
@flower_port_option
@web_port_option
@click.option("--no-beat", is_flag=True, help="Do not start Beat (schedules).")
def up(
    queues: tuple[str, ...],
    flower_port: int | None,
    no_flower: bool,
    web_port: int | None,
    no_web: bool,
    no_beat: bool,
) -> None:
    """Run the local stack until Ctrl-C or SIGTERM: broker, one pool per queue, Beat, Flower, web."""
    settings = get_settings()
    port = None if no_flower else flower_port or settings.flower_port
    web = None if no_web else web_port or settings.web_port
    stack = Stack(settings, list(queues), flower_port=port, beat=not no_beat, web_port=web)
    with stop_signals() as stopping:
        try:
            stack.start_broker()
            start_stack(stack, stopping)
            serve(stack, stopping)
            click.echo("stopping the stack ...")
        finally:
            stack.stop()
    click.echo("stack stopped")


@main.command()
@click.argument("pipeline_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@flower_port_option
@web_port_option
@click.option("--keep-up", is_flag=True, help="Keep the stack this command started running until Ctrl-C.")
@click.option("--print", "print_file", is_flag=True, help="Print the pipeline file and exit (to copy it).")
def demo(
    pipeline_file: Path | None,
    flower_port: int | None,
    no_flower: bool,
    web_port: int | None,
    no_web: bool,
    keep_up: bool,
    print_file: bool,
) -> None:
    """Run the ML demo pipeline (or PIPELINE_FILE), starting the stack if it is not up."""
    from trainq.pipelines.pipeline import load_pipeline

    if print_file:
        click.echo((pipeline_file or demo_file()).read_text(), nl=False)
        return
    settings = get_settings()
    stack = Stack(settings, flower_port=None if no_flower else flower_port or settings.flower_port)
    stack.web_port = None if no_web else web_port or settings.web_port
    with stop_signals() as stopping:
        try:
            stack.start_broker()
            pipeline = load_pipeline(pipeline_file or demo_file())
            planned = pipeline.validate()
            needed = {job.options.get("queue") or trainq.get_job_type(job.type).queue for job in planned}
            live = live_queues()
            if needed <= live:
                click.echo(f"using the running workers for {', '.join(sorted(needed))}")
            else:
                stack.queues = sorted(set(stack_queues()) - live)
                stack.flower_port = None if live else stack.flower_port
                stack.web_port = None if live else stack.web_port
                start_stack(stack, stopping)
                click.echo(describe(stack))
            run_id = pipeline.run()
            click.echo(f"pipeline run {run_id} started")
            if stack.web_url:
                click.echo(f"watch it at {stack.web_url}runs/{run_id}")
            ok = follow(run_id, stopping)
            if stopping.is_set():
                click.echo(f"interrupted; see trainq pipeline status {run_id} (resume it on a running stack)")
                sys.exit(EXIT_FAILED)
            summarize(run_id)
            if keep_up and stack.children:
                serve(stack, stopping)
        finally:
            stack.stop()
    if not ok:
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--force", is_flag=True, help="Stop it even while workers or other processes use it.")
def down(force: bool) -> None:
    """Stop the embedded Redis (the default broker) left running by earlier commands; its data stays."""
    settings = get_settings()
    if settings.broker_url is not None:
        raise InvalidInput("trainq down stops the embedded Redis, and TRAINQ_BROKER_URL names another broker")
    place = settings.home / "redis"
    if not embedded.is_running(settings.home):
        click.echo(f"the embedded Redis in {place} is not running")
        return
    others = embedded.other_clients(settings.home)
    if others and not force:
        raise ConfigError(
            f"the embedded Redis in {place} still serves {others} other connection(s) (workers, Beat, "
            "Flower, a trainq up): stop them first, or use --force"
        )
    embedded.stop(settings.home)
    click.echo(f"stopped the embedded Redis in {place} (its queue and records stay on disk)")


def demo_file() -> Path:
    """The demo pipeline file installed with trainq (``trainq/examples/ml-pipeline.yaml``)."""
    return Path(str(resources.files(trainq).joinpath(*DEMO_FILE)))


def follow(run_id: str, stopping: threading.Event) -> bool:
    """Show each job's state and progress until the run ends (or a stop signal); True if it succeeded.

    On a terminal the table redraws in place; otherwise (CI, a pipe) a line is printed each
    time a job's state, attempt or progress step changes.
    """
    from trainq.pipelines.runs import get_runs

    shown: dict[str, tuple[Any, ...]] = {}
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    with live or nullcontext():
        while True:
            status = get_runs().status(run_id)
            records = {r.pipeline_job: r for r in run_records(status)}
            table = Table(title=f"{status.pipeline_id} ({run_id}): {status.state.value}")
            for column in ("job", "type", "state", "attempt", "progress", "took"):
                table.add_column(column)
            for job in status.jobs:
                record = records.get(job.job_id)
                row = _row(job.job_id, job.state, record)
                table.add_row(*row)
                key = (
                    job.state,
                    record and record.attempt,
                    record and record.progress and record.progress.step,
                )
                if live is None and shown.get(job.job_id) != key:
                    console.print("  ".join(cell for cell in row if cell), soft_wrap=True)
                    shown[job.job_id] = key
            if live is not None:
                live.update(table, refresh=True)
            if status.finished or stopping.wait(REFRESH_S):
                return status.state.value == "succeeded"


def run_records(status: RunStatus) -> list[JobRecord]:
    """The job records of a run's released jobs."""
    return trainq.get_registry().get_many(job.job for job in status.jobs if job.job)


def _row(job_id: str, state: str, record: JobRecord | None) -> list[str]:
    if record is None:
        return [job_id, "", state, "", "", ""]
    took = format_duration(record.duration_s) if record.duration_s is not None else ""
    bar = progress_bar(record, 15)
    return [job_id, record.type, state_text(record.state), str(record.attempt), plain(bar), took]


def summarize(run_id: str) -> None:
    """Print every job's numeric results (the metrics table), the files the jobs wrote and the error of
    each job that failed."""
    from trainq.pipelines.runs import get_runs

    status = get_runs().status(run_id)
    records = run_records(status)
    metrics = Table(title="metrics")
    for column in ("job", "metric", "value"):
        metrics.add_column(column)
    files: list[str] = []
    for record in records:
        result = record.result if isinstance(record.result, dict) else {}
        for name, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.add_row(record.pipeline_job or record.id, plain(name), f"{value:.4g}")
            elif isinstance(value, str) and Path(value).is_file():
                files.append(value)
    console.print(metrics)
    console.print("[bold]artifacts[/]")
    for path in files:
        console.print(f"  {plain(path)}", soft_wrap=True)
    failed = [r for r in records if r.state in (JobState.FAILED, JobState.DEAD) and r.error]
    if failed:
        console.print("[bold]errors[/]")
    for record in failed:  # one line each, as `trainq show` prints it (stored with its secrets masked)
        console.print(f"  {plain(record.pipeline_job or record.id)}  {plain(record.error)}", soft_wrap=True)
    took = (status.finished_at or time.time()) - status.created_at
    console.print(f"pipeline {status.state.value} in {format_duration(took)}", soft_wrap=True)
