"""Every change trainq web makes, shared by the API and the pages: the same library calls as the
CLI (so the same validation), plus who may do it and the audit of who did.

Job changes are audited in the job's events (``cancelled via web by alice``); a pipeline run
records ``web by alice`` as its source; schedule and queue changes are logged. Whatever would start
a shell ``command`` job (a submit, a pipeline, a schedule created, run or enabled, a retry, a
resume) needs ``TRAINQ_WEB_ALLOW_COMMANDS`` and a caller who authenticated (``check_commands``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC
from pathlib import PurePath
from typing import Any

from trainq import schedules
from trainq.errors import CommandRefused, InvalidInput, ScheduleError
from trainq.inputs.durations import parse_duration, start_options
from trainq.inputs.tags import parse_tags
from trainq.job.record import JobRecord, JobState
from trainq.job.types import TASK_PREFIX
from trainq.ops import control
from trainq.pipelines import dag
from trainq.pipelines.runs import get_runs
from trainq.settings import Settings
from trainq.web.auth import Caller

log = logging.getLogger("trainq.web")
COMMAND_TYPE = "command"
INLINE_PIPELINES_ONLY = (
    "give the pipeline's definition inline (a mapping, as posted to /api/v1/pipelines); "
    "a file path is not accepted over HTTP"
)


def check_commands(caller: Caller, settings: Settings, what: str, job_types: Iterable[str]) -> None:
    """Raise CommandRefused if ``job_types`` (those of the jobs an operation would start) hold a shell
    command and the caller may not start one: commands over HTTP are off, or the caller is anonymous.

    The one rule for every way a request can start jobs, nothing changed when it refuses.
    """
    if COMMAND_TYPE not in job_types:
        return
    if not settings.web_allow_commands:
        raise CommandRefused(f"{what}: shell command jobs over HTTP are off (TRAINQ_WEB_ALLOW_COMMANDS)")
    if not caller.authenticated:
        raise CommandRefused(f"{what}: shell command jobs over HTTP need an authenticated caller")


def submit_options(
    *,
    name: str | None = None,
    priority: int | None = None,
    tags: list[str] | None = None,
    queue: str | None = None,
    delay: str | None = None,
    at: str | None = None,
    timeout: str | None = None,
    retries: int | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """``apply_async`` options from the submit parameters ``trainq submit`` also takes."""
    options: dict[str, Any] = {"tags": parse_tags(tags or [], "tag")}
    if timeout:
        parse_duration(timeout)
    for option, value in (("job_name", name), ("priority", priority), ("queue", queue), ("timeout", timeout)):
        if value is not None:
            options[option] = value
    if key:
        options["key"] = key
    if retries is not None:
        options["retry"] = {"max_retries": retries}
    return {**options, **start_options(delay, at, ("delay", "at"), naive=UTC)}


def submit(caller: Caller, settings: Settings, job_type: str, payload: Any, options: dict[str, Any]) -> str:
    """Validate and enqueue one job as ``trainq submit`` does; return its id."""
    check_commands(caller, settings, f"job type {job_type}", [job_type])
    if not isinstance(payload, dict):
        raise InvalidInput(f"the payload must be a JSON object, got {type(payload).__name__}")
    return control.submit(job_type, payload, audit=f"submitted {caller.via}", **options)


def start_pipeline(caller: Caller, settings: Settings, data: Any) -> str:
    """Validate a posted pipeline (every problem at once) and start a run; return the run id.

    Its jobs run in ``<home>/work``; without command rights a job's ``result_files`` must stay
    inside it (relative, no ``..``).
    """
    work = settings.home / "work"  # on the shared TRAINQ_HOME in deploy/, so workers have it too
    pipeline_id, planned = dag.plan(data, work)
    _check_pipeline(caller, settings, planned, "pipeline")
    work.mkdir(parents=True, exist_ok=True)
    run_id = get_runs().start(pipeline_id, planned, f"web by {caller.name}")
    log.info("pipeline run %s started %s", run_id, caller.via)
    return run_id


def _check_pipeline(caller: Caller, settings: Settings, planned: list[dag.PlannedJob], what: str) -> None:
    """Refuse a posted pipeline's shell commands (unless allowed) and result files outside its work dir."""
    types = [job.type for job in planned]
    check_commands(caller, settings, what, types)
    if COMMAND_TYPE in types:  # a caller who may run any shell command may write files anywhere too
        return
    if escaping := [
        f"job {job.job_id!r}: result file {pattern!r} is outside the work directory"
        for job in planned
        for pattern in job.options.get("result_files", [])
        if PurePath(pattern).is_absolute() or ".." in PurePath(pattern).parts
    ]:
        raise InvalidInput("; ".join(escaping))


def cancel_job(caller: Caller, job_id: str) -> JobState:
    """Cancel a job; its events say who did."""
    return control.cancel(job_id, reason=f"cancelled {caller.via}")


def retry_job(caller: Caller, settings: Settings, job_id: str) -> JobRecord:
    """Re-queue a finished job; its events say who did. A pipeline job's retry may also release the
    stopped jobs it holds back: the command rule covers them too."""
    runs = get_runs()
    record, owner = runs.registry.find(job_id), runs.owner(job_id)
    types = ([record.type] if record else []) + (_rerun_types(*owner) if owner else [])
    check_commands(caller, settings, f"job {job_id!r}", types)
    return control.retry(job_id, reason=f"re-queued {caller.via}")


def cancel_run(caller: Caller, run_id: str) -> int:
    """Cancel a pipeline run (or a pipeline id's latest); each stopped job's events say who did."""
    runs = get_runs()
    return runs.cancel(runs.find(run_id), by=caller.via)


def resume_run(caller: Caller, settings: Settings, run_id: str) -> list[str]:
    """Resume a pipeline run (or a pipeline id's latest); each re-queued job's events say who did."""
    runs = get_runs()
    run_id = runs.find(run_id)
    check_commands(caller, settings, f"pipeline run {run_id!r}", _rerun_types(run_id))
    return runs.resume(run_id, by=caller.via)


def _rerun_types(run_id: str, job: str = "") -> list[str]:
    """The types of the jobs of a run that a resume (or a retry of ``job``) may run again."""
    runs = get_runs()
    specs = runs.specs(run_id)
    return [specs[name]["type"] for name in runs.stopped(run_id, job)]


def create_schedule(caller: Caller, settings: Settings, name: str, spec: dict[str, Any]) -> str:
    """Validate and store a schedule as ``trainq schedule create`` does; return its name.

    A pipeline must come inline and is checked like a posted one: a path would let the caller
    read or bind any file on this server.
    """
    if spec.get("pipeline") is not None and not isinstance(spec["pipeline"], dict):
        raise ScheduleError(name, INLINE_PIPELINES_ONLY)
    entry = schedules.build_entry(name, spec)
    if entry.task == schedules.PIPELINE_TASK:
        planned = schedules.schedule_pipeline(entry).validate()
        _check_pipeline(caller, settings, planned, f"schedule {name!r}")
    else:
        check_commands(caller, settings, f"schedule {name!r}", _schedule_types(entry))
    schedules.create(name, spec)
    log.info("schedule %s created %s", name, caller.via)
    return name


def set_schedule_enabled(caller: Caller, settings: Settings, name: str, enabled: bool) -> None:
    """Enable or disable a schedule (a change is logged with the caller; none if it already was).
    Enabling one of shell commands lets Beat submit them: the command rule applies, as to running it now."""
    if enabled:
        check_commands(caller, settings, f"schedule {name!r}", _schedule_types(schedules.get(name)))
    if schedules.set_enabled(name, enabled):
        log.info("schedule %s %s %s", name, "enabled" if enabled else "disabled", caller.via)


def delete_schedule(caller: Caller, name: str) -> None:
    """Delete a schedule (logged with the caller)."""
    schedules.delete(name)
    log.info("schedule %s deleted %s", name, caller.via)


def run_schedule(caller: Caller, settings: Settings, name: str) -> str:
    """Submit one run of a schedule now; a job's events say who asked. Returns the job or run id.

    Running a schedule of shell commands now is submitting them over HTTP: the same rule applies.
    """
    entry = schedules.get(name)
    check_commands(caller, settings, f"schedule {name!r}", _schedule_types(entry))
    return schedules.submit_run(entry, audit=f"submitted by schedule {name} {caller.via}")


def _schedule_types(entry: schedules.ScheduleEntry) -> list[str]:
    """The types of the jobs a run of ``entry`` submits: its pipeline's, or its one job's."""
    if entry.task == schedules.PIPELINE_TASK:
        return [job.type for job in schedules.schedule_pipeline(entry).validate()]
    return [entry.task.removeprefix(TASK_PREFIX)]


def set_queue_paused(caller: Caller, queue: str, paused: bool) -> None:
    """Pause or resume a queue (logged with the caller)."""
    (control.pause if paused else control.resume)(queue)
    log.info("queue %s %s %s", queue, "paused" if paused else "resumed", caller.via)
