"""Job commands: submit, list, show, logs, cancel, retry, dead, clean."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from trainq.broker.quarantine import get_quarantine
from trainq.cli.group import main
from trainq.cli.output import (
    console,
    cut,
    due,
    jobs_table,
    json_option,
    plain,
    print_json,
    printable,
    progress_bar,
    state_text,
    when,
)
from trainq.errors import DocumentError, InvalidInput, UnknownJobType
from trainq.inputs import documents
from trainq.inputs.durations import parse_duration, start_options
from trainq.inputs.limits import (
    LIST_MAX,
    LIST_OFFSET_MAX,
    MAX_CONFIG_BYTES,
    MAX_RETRIES,
    SHOW_VALUE_MAX_CHARS,
)
from trainq.inputs.tags import parse_tags
from trainq.job.limit import MAX_RUNNING_MAX
from trainq.job.record import JobState
from trainq.job.types import job_types
from trainq.ops import control
from trainq.pipelines.runs import get_runs
from trainq.sharing.gate import wait_reasons
from trainq.store.registry import get_registry
from trainq.store.sharing import get_sharing

#: How often ``logs -f`` looks whether a pipeline job that has not started yet has started.
UNSTARTED_POLL_S = 0.5


def parse_config(text: str | None) -> dict[str, Any]:
    """A payload from ``--config``: inline JSON or ``@file.json``, within the document limits. Only a
    ``--config`` left out means the defaults: an empty one is a shell variable that was not set."""
    if text is None:
        return {}
    if not text:
        raise InvalidInput("--config is empty: give a JSON object ('{}': the defaults) or leave it out")
    if text.startswith("@"):
        source = text[1:]
        value = documents.read_file(Path(source), "config file", MAX_CONFIG_BYTES, "json")
    else:
        source = "--config"
        try:
            value = documents.parse(text, source, "json", MAX_CONFIG_BYTES)
        except DocumentError:
            if _names_a_file(text):
                raise DocumentError(f"--config is not JSON; to read a file, write --config @{text}") from None
            raise
    if not isinstance(value, dict):
        raise InvalidInput(f"{source} must be a JSON object, got {type(value).__name__}")
    return value


def _names_a_file(text: str) -> bool:
    """True if ``text`` reads as a file's name (an existing file, or a name ending .json)."""
    if text.lstrip().startswith(("{", "[")):
        return False
    try:
        return Path(text).suffix.lower() == ".json" or Path(text).is_file()
    except (OSError, ValueError):  # a name too long, or holding a NUL
        return False


@main.command()
@click.argument("job_type")
@click.option("--config", "config_text", help="Payload as JSON, or @file.json.")
@click.option("--priority", type=click.IntRange(0, 9), help="0-9, 9 most urgent.")
@click.option("--name", help="A name to find the job by.")
@click.option("--tag", "tags", multiple=True, help="key=value, repeatable.")
@click.option("--queue", help="Send to this queue instead of the type's own.")
@click.option("--delay", help="Start after this long (e.g. 10m).")
@click.option("--at", "at_text", help="Start at this time (ISO, local unless zoned).")
@click.option("--timeout", help="Soft time limit (e.g. 1h 30m).")
@click.option("--retries", type=click.IntRange(0, MAX_RETRIES), help="Override the type's max_retries.")
@click.option("--key", help="Idempotency key: a repeat of this job type returns the first job's id.")
@click.option("--limit-key", help="Concurrency key, a template such as 'project={tags[project]}'.")
@click.option(
    "--max-running",
    type=click.IntRange(1, MAX_RUNNING_MAX),
    help="At most this many jobs of --limit-key at once (unless the key has a limit set).",
)
@click.option("--rate", help="Starts allowed for --limit-key, e.g. 10/m (unless the key has a limit set).")
def submit(
    job_type: str,
    config_text: str | None,
    priority: int | None,
    name: str | None,
    tags: tuple[str, ...],
    queue: str | None,
    delay: str | None,
    at_text: str | None,
    timeout: str | None,
    retries: int | None,
    key: str | None,
    limit_key: str | None,
    max_running: int | None,
    rate: str | None,
) -> None:
    """Validate and enqueue a JOB_TYPE job; print its id."""
    options: dict[str, Any] = {"tags": parse_tags(tags, "--tag")}
    if limit_key is not None:
        options["limit"] = {"key": limit_key, "max_running": max_running, "rate": rate}
    elif max_running is not None or rate is not None:
        raise InvalidInput("--max-running and --rate need --limit-key")
    if timeout:
        parse_duration(timeout, positive=True)
    for option, value in (
        ("priority", priority),
        ("job_name", name),
        ("queue", queue),
        ("timeout", timeout),
        ("key", key),
    ):
        if value is not None:
            options[option] = value
    if retries is not None:
        options["retry"] = {"max_retries": retries}
    options.update(start_options(delay, at_text, ("--delay", "--at")))  # a time without a zone is local
    job_id = control.submit(job_type, parse_config(config_text), **options)
    click.echo(job_id)
    if due_at := due(get_registry().get(job_id)):
        click.echo(f"due {due_at}", err=True)  # stderr: a script reads the id alone from stdout


@main.command("list")
@click.option("--state", type=click.Choice([s.value for s in JobState]))
@click.option("--type", "job_type")
@click.option("--queue")
@click.option("--tag", help="key=value")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, LIST_MAX))
@click.option("--offset", default=0, type=click.IntRange(0, LIST_OFFSET_MAX))
@json_option
def list_jobs(
    state: str | None,
    job_type: str | None,
    queue: str | None,
    tag: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    if tag is not None:
        parse_tags((tag,), "--tag")
    records = get_registry().list(
        state=JobState(state) if state else None,
        job_type=job_type,
        queue=queue,
        tag=tag,
        limit=limit,
        offset=offset,
    )
    if not records:
        _unknown_filters(job_type, queue)
    warn_of_data_loss()
    reasons = wait_reasons(records)
    if as_json:
        print_json([{**r.model_dump(mode="json"), "waiting_for": reasons.get(r.id)} for r in records])
        return
    console.print(jobs_table(records))
    for job_id, reason in reasons.items():
        console.print(f"{job_id} {reason}", markup=False)


def _unknown_filters(job_type: str | None, queue: str | None) -> None:
    """Say why a list came back empty when its filter names what nothing knows, so a type or queue
    name from another system does not read as "no jobs": a job type no worker module registers and
    no job ever had is refused as ``submit`` refuses it; a queue no job, worker or job type has gets
    a note (queues are made by use, so it may be one about to be used)."""
    registry = get_registry()
    types = job_types()
    if job_type and job_type not in types and job_type not in registry.type_counts():
        raise UnknownJobType(job_type, list(types))
    if queue:
        note_unknown_queue(queue)


def warn_of_data_loss() -> None:
    """A warning on stderr while the registry's Redis is known to have restarted without its data, so
    that a short or empty listing does not read as all there is (``Registry.data_loss``)."""
    note = get_registry().data_loss()
    if note:
        click.echo(f"warning: {note}", err=True)


def note_unknown_queue(queue: str) -> None:
    """A note on stderr when no job, worker or job type has ``queue`` (a typo, most likely)."""
    registry = get_registry()
    known = {
        *registry.queue_counts(),
        *registry.paused_queues(),
        *(t.queue or n for n, t in job_types().items()),
    }
    known.update(q for queues in registry.worker_queues().values() for q in queues)
    if queue not in known:
        click.echo(
            f"note: no job, worker or job type has queue {queue!r} (known: {', '.join(sorted(known))})",
            err=True,
        )


@main.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, LIST_MAX))
@json_option
def dead(limit: int, as_json: bool) -> None:
    """List dead jobs (failed after their last retry), newest first."""
    records = get_registry().list(state=JobState.DEAD, limit=limit)
    warn_of_data_loss()
    if as_json:
        print_json([r.model_dump(mode="json") for r in records])
        return
    table = jobs_table(records, title="dead jobs")
    console.print(table)
    for r in records:
        console.print(f"[bold]{plain(r.id)}[/] {plain(r.error)}")
    quarantined = get_quarantine().count()
    if quarantined:
        console.print(f"{quarantined} message(s) could not be read or run: see `trainq quarantine`")


@main.command()
@click.argument("job_id")
@json_option
def show(job_id: str, as_json: bool) -> None:
    """Show one job: record, progress, transitions and last error."""
    registry = get_registry()
    record = registry.find(job_id)
    if record is None:
        _show_unstarted(job_id, as_json)
        return
    events = registry.events(job_id, record)
    waiting_for = wait_reasons([record]).get(record.id)
    if record.state is JobState.QUEUED and not waiting_for:
        live = get_sharing().live_queues([record.queue])
        waiting_for = registry.queue_holds([record.queue], live).get(record.queue)
    if as_json:
        events_json = [e.model_dump(mode="json") for e in events]
        print_json({**record.model_dump(mode="json"), "waiting_for": waiting_for, "events": events_json})
        return
    console.print(f"[bold]{plain(record.name)}[/] {plain(record.id)}  {state_text(record.state)}")
    for label, value in (
        ("why queued", waiting_for or ""),
        ("type / queue", f"{record.type} / {record.queue}"),
        ("priority", record.priority),
        ("attempt", f"{record.attempt} (failures {record.failures}, recoveries {record.recoveries})"),
        ("worker", record.worker),
        ("tags", record.tags or ""),
        ("payload", json.dumps(record.payload)),
        ("due", due(record)),
        ("next attempt", when(record.next_attempt_at)),
        ("progress", progress_bar(record)),
        ("exit code", record.exit_code),
        ("result", json.dumps(record.result) if record.result is not None else ""),
        ("artifacts", ", ".join(record.artifacts)),
        ("no match", ", ".join(record.unmatched_result_files)),
        ("not collected", "; ".join(record.uncollected_result_files)),
        ("error", record.error or ""),
    ):
        if value not in (None, ""):
            shown = cut(str(value), SHOW_VALUE_MAX_CHARS, f"trainq show {job_id} --json")
            console.print(f"  {label:<13} {plain(shown)}")
    table = Table(title="transitions")
    for column in ("at", "state", "attempt", "worker", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(
            when(e.at), state_text(e.state), str(e.attempt), plain(e.worker or ""), plain(e.reason or "")
        )
    console.print(table)
    if record.traceback:
        traceback = cut(record.traceback, SHOW_VALUE_MAX_CHARS, f"trainq show {job_id} --json")
        console.print(plain(traceback, lines=True))


def _show_unstarted(job_id: str, as_json: bool) -> None:
    """Show a pipeline job that has not started: its step in the run and what holds it."""
    job = get_runs().unstarted(job_id)
    if as_json:
        print_json(job.model_dump(mode="json"))
        return
    console.print(f"[bold]{plain(job.pipeline_job)}[/] {plain(job_id)}  {plain(job.state)}")
    console.print(f"  {'not started':<13} {plain(job.why)}")


@main.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the job ends.")
def logs(job_id: str, follow: bool) -> None:
    """Print a job's log lines (handler logging and output); -f on a pipeline job that has not
    started waits for it to start."""
    registry = get_registry()
    if registry.find(job_id) is None and not _started(job_id, follow):
        return
    if dropped := registry.log_dropped(job_id):
        click.echo(
            f"[{dropped} earlier lines not kept: a job log keeps about its newest "
            f"{registry.log_max_lines} lines (TRAINQ_LOG_MAX_LINES)]",
            err=True,
        )
    cursor = "0-0"
    shown_progress = ""
    ended = False  # seen finished: the next read that finds nothing is the end (a last line lands late)
    while True:
        entries = registry.read_log(job_id, cursor, block_ms=500 if follow and not ended else None)
        for _, line in entries:
            click.echo(printable(line, lines=True))
        if entries:
            cursor = entries[-1][0]
        if not follow:
            if entries:
                continue  # the next page
            return
        record = registry.get(job_id)
        bar = progress_bar(record)
        if bar and bar != shown_progress:
            click.echo(f"[progress] {printable(bar)}", err=True)
            shown_progress = bar
        if ended and not entries:
            click.echo(f"[{record.state.value}]", err=True)
            return
        ended = record.state.finished


def _started(job_id: str, follow: bool) -> bool:
    """Whether pipeline job ``job_id``, which had no record, has started: with ``follow``, once it does
    (False if it is blocked or cancelled first). Says on stderr what it waits for."""
    said = ""
    while get_registry().find(job_id) is None:
        job = get_runs().unstarted(job_id)
        if job.why != said:
            click.echo(f"[{printable(job.why)}]", err=True)
            said = job.why
        if not follow or not job.may_start:
            return False
        time.sleep(UNSTARTED_POLL_S)
    return True


@main.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job: a waiting one never starts, a running one is stopped."""
    previous = control.cancel(job_id)
    click.echo(f"{job_id} cancelled (was {previous.value})")


@main.command()
@click.argument("job_id")
def retry(job_id: str) -> None:
    """Re-queue a dead, failed, cancelled or blocked job with its payload."""
    control.retry(job_id)
    click.echo(f"{job_id} re-queued")


@main.command()
@click.option("--older-than", help="Drop finished records older than this (e.g. 7d).")
@click.option("--keep", type=click.IntRange(0), help="Keep only the newest N finished records.")
def clean(older_than: str | None, keep: int | None) -> None:
    """Drop finished job records (succeeded, failed, dead, cancelled, blocked); those of pipeline
    runs still running are kept."""
    if older_than is None and keep is None:
        raise InvalidInput("give --older-than or --keep")
    before = time.time() - parse_duration(older_than) if older_than else None
    removed = get_registry().clean(before=before, keep=keep, running_runs=get_runs().running())
    click.echo(f"removed {removed} records")
