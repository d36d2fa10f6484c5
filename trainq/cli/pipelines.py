"""Pipeline commands: ``trainq pipeline validate|run|status|list|resume|cancel|results``.

``status``, ``resume``, ``cancel`` and ``results`` take a run id, or a pipeline id meaning its
latest run (the batch-queue files trainq replaces name runs by their ``queue_id``).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trainq.cli.group import EXIT_FAILED, EXIT_OK, main
from trainq.cli.output import STATE_STYLE, console, json_option, plain, print_json, when
from trainq.inputs.durations import format_duration
from trainq.job.record import JobState
from trainq.pipelines.dag import Dag
from trainq.pipelines.pipeline import file_changed, load_pipeline, run_pipeline_file
from trainq.pipelines.runs import RunState, RunStatus, get_runs
from trainq.settings import get_settings

#: How often ``--wait`` and ``--watch`` re-read the run.
POLL_S = 0.5
RUN_STYLE = {
    RunState.RUNNING: "cyan",
    RunState.SUCCEEDED: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "magenta",
}
SYMBOL = {
    "succeeded": "✔",
    "running": "●",
    "failed": "✘",
    "dead": "✘",
    "cancelled": "✘",
    "blocked": "⊘",
    "retrying": "↻",
    "waiting": "·",
}


@main.group()
def pipeline() -> None:
    """Run DAGs of jobs from a JSON/YAML file; follow, resume, cancel them and collect results."""


@pipeline.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check FILE (``-``: standard input) without running anything; list every problem or draw the DAG."""
    planned = load_pipeline(file).validate()
    graph = Dag({job.job_id: job.depends_on for job in planned})
    kinds = {job.job_id: job.type for job in planned}
    click.echo(f"ok: {len(planned)} jobs")
    for line in graph.picture(lambda job: f"{job} [{kinds[job]}]"):
        click.echo(line)


@pipeline.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--wait", is_flag=True, help="Follow the run; exit 0 if it succeeds, 1 if not.")
@json_option
@click.pass_context
def run(ctx: click.Context, file: str, wait: bool, as_json: bool) -> None:
    """Validate FILE (``-``: standard input) and start a run of it; print the run id."""
    run_id = run_pipeline_file(file)
    if as_json and not wait:
        print_json({"run_id": run_id})
        return
    if not as_json:
        click.echo(run_id)
    if wait:
        status = follow(run_id, echo=not as_json)
        if as_json:
            print_json(status.model_dump(mode="json"))
        ctx.exit(EXIT_OK if status.state is RunState.SUCCEEDED else EXIT_FAILED)


def follow(run_id: str, echo: bool = True) -> RunStatus:
    """Poll the run until it ends, printing each job's state changes (and what holds a queued one:
    its queue paused or without a worker); return the final status."""
    runs, seen = get_runs(), dict[str, tuple[str, str | None]]()
    while True:
        status = runs.status(run_id)
        for job in status.jobs:
            if echo and seen.get(job.job_id) != (job.state, job.why_queued):
                why = f": {job.why_queued}" if job.why_queued else ""
                click.echo(f"{when(time.time())}  {job.job_id:<20} {job.state}{why}")
            seen[job.job_id] = (job.state, job.why_queued)
        if status.finished:
            if echo:
                click.echo(f"run {run_id} {status.state.value}")
            return status
        time.sleep(POLL_S)


@pipeline.command()
@click.argument("run")
@click.option("--watch", is_flag=True, help="Keep the view updated until the run ends.")
@json_option
def status(run: str, watch: bool, as_json: bool) -> None:
    """Show RUN's jobs: state, attempts, duration, exit code, what holds them; and the DAG.

    RUN is a run id, or a pipeline id for its latest run.
    """
    runs = get_runs()
    run_id = runs.find(run)
    current = runs.status(run_id)
    if not current.finished and runs.sweep(run_id, get_settings().lease_s):
        current = runs.status(run_id)
    if as_json:
        print_json(current.model_dump(mode="json"))
        return
    if not watch:
        console.print(render(current))
        return
    with Live(render(current), console=console, auto_refresh=False) as live:
        while not current.finished:
            time.sleep(POLL_S)
            current = runs.status(run_id)
            live.update(render(current), refresh=True)


def render(status: RunStatus) -> Group:
    """The run's header, its jobs table and the picture of its DAG."""
    took = format_duration((status.finished_at or time.time()) - status.created_at)
    header = Text.from_markup(
        f"[bold]{status.id}[/]  [{RUN_STYLE[status.state]}]{status.state.value}[/]  "
        f"{plain(status.source)}  started {when(status.created_at)}  took {took}"
    )
    table = Table()
    for column in ("job", "state", "att", "took", "exit", "note", "job id"):
        table.add_column(column)
    states = {job.job_id: job.state for job in status.jobs}
    for job in status.jobs:
        if job.blocked_by:
            note = f"blocked by {job.blocked_by}"
        elif job.waiting_for:
            note = f"waiting for {', '.join(job.waiting_for)}"
        elif job.why_queued:
            note = job.why_queued
        elif (job.unmatched_result_files or job.uncollected_result_files) and not job.error:
            uncollected = [line.split(": ", 1)[0] for line in job.uncollected_result_files]
            gaps = {"no match": job.unmatched_result_files, "not collected": uncollected}
            note = "; ".join(f"{label}: {', '.join(paths)}" for label, paths in gaps.items() if paths)
        else:
            note = job.error or ""
        table.add_row(
            job.job_id,
            _state(job.state),
            str(job.attempts or ""),
            format_duration(job.duration_s) if job.duration_s is not None else "",
            "" if job.exit_code is None else str(job.exit_code),
            plain(note),
            job.job or "",
        )
    picture = status.graph().picture(
        lambda job: f"{job} {SYMBOL.get(states[job], '○')} {_state(states[job])}"
    )
    return Group(header, table, Text.from_markup("\n".join(picture)))


def _state(state: str) -> str:
    style = STATE_STYLE[JobState(state)] if state in JobState._value2member_map_ else "dim"
    return f"[{style}]{state}[/]"


@pipeline.command("list")
@click.option("--limit", default=20, show_default=True)
@json_option
def list_runs(limit: int, as_json: bool) -> None:
    """List pipeline runs, newest first."""
    runs = get_runs().recent(limit)
    if as_json:
        print_json([{**r.model_dump(mode="json", exclude={"jobs"}), "jobs": len(r.jobs)} for r in runs])
        return
    table = Table()
    for column in ("run", "pipeline", "state", "succeeded", "started", "took"):
        table.add_column(column)
    for r in runs:
        done = sum(job.state == "succeeded" for job in r.jobs)
        took = format_duration((r.finished_at or time.time()) - r.created_at)
        state = f"[{RUN_STYLE[r.state]}]{r.state.value}[/]"
        table.add_row(r.id, r.pipeline_id, state, f"{done}/{len(r.jobs)}", when(r.created_at), took)
    console.print(table)


@pipeline.command()
@click.argument("run")
def resume(run: str) -> None:
    """Re-run the failed, dead, cancelled and blocked jobs of RUN (a run id, or a pipeline id's latest)."""
    run_id = get_runs().find(run)
    edited = file_changed(run_id)
    started = get_runs().resume(run_id)
    if edited:
        click.echo(
            f"note: {edited} changed since this run started; resume re-runs the run's own spec "
            f"(run the file again for the new one: trainq pipeline run {shlex.quote(edited)})",
            err=True,
        )
    click.echo(f"{run_id} resumed: re-running {', '.join(started)}; their dependants follow")


@pipeline.command()
@click.argument("run")
def cancel(run: str) -> None:
    """Cancel RUN (a run id, or a pipeline id's latest): waiting jobs never start, running ones stop."""
    run_id = get_runs().find(run)
    stopped = get_runs().cancel(run_id)
    click.echo(f"{run_id} cancelled ({stopped} queued or running jobs stopped)")


@pipeline.command()
@click.argument("run")
@click.option(
    "--output", "-o", type=click.Path(file_okay=False), required=True, help="Directory to copy into."
)
@click.pass_context
def results(ctx: click.Context, run: str, output: str) -> None:
    """Copy the result files of RUN's jobs into OUTPUT/<job>/ (RUN: a run id, or a pipeline id's latest).

    Lists what was declared but not collected; exits 1 when nothing was collected.
    """
    runs = get_runs()
    run_id = runs.find(run)
    files = runs.results(run_id, Path(output))
    for path in files:
        click.echo(str(path))
    gaps = runs.uncollected(run_id)
    for line in gaps:
        click.echo(f"not collected: {line}", err=True)
    if not files and not gaps:
        click.echo(f"no job of {run_id} declares result_files", err=True)
    click.echo(f"{len(files)} files from {run_id} in {output}", err=True)
    if not files:
        ctx.exit(EXIT_FAILED)
