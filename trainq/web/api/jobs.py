"""Jobs over HTTP: submit any type, list with ``trainq list``'s filters, show, logs (JSON, or
followed as Server-Sent Events), cancel, retry; dead jobs; the job types and their payload schemas."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from trainq.inputs.limits import JOB_NAME_MAX_CHARS, LIST_OFFSET_MAX, MAX_RETRIES, WEB_PAGE_MAX
from trainq.job.record import JobState, eta_s
from trainq.job.types import job_types
from trainq.pipelines.runs import get_runs
from trainq.store.registry import get_registry
from trainq.web import actions, queries
from trainq.web.api.body import json_body
from trainq.web.app import settings_of
from trainq.web.auth import caller_of

router = APIRouter(tags=["jobs"])
#: How long one wait for new log lines blocks, and how often an idle stream says it is alive.
FOLLOW_BLOCK_MS = 500
KEEPALIVE_S = 15.0

Limit = Annotated[int, Query(ge=1, le=WEB_PAGE_MAX)]
Offset = Annotated[int, Query(ge=0, le=LIST_OFFSET_MAX)]


@router.get("/health", tags=["health"])
def health() -> dict[str, str]:
    """``ok`` when the registry answers (503 otherwise); needs no credentials."""
    get_registry().ping()
    return {"status": "ok"}


@router.get("/types")
def types() -> dict[str, Any]:
    """Every job type: its queue and the JSON schema of its payload (the submit body)."""
    return {
        name: {"queue": task.queue or name, "payload_schema": task.input_model.model_json_schema()}
        for name, task in sorted(job_types().items())
    }


@router.get("/jobs")
def list_jobs(
    state: JobState | None = None,
    type: str | None = None,
    queue: str | None = None,
    tag: Annotated[str | None, Query(description="key=value", pattern="^[^=]+=")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Jobs newest first, filtered like ``trainq list``; ``next_offset`` is null on the last page;
    ``data_loss`` says when the registry's Redis restarted without its data (null if it did not lately)."""
    records, more = queries.list_jobs(
        state=state, job_type=type, queue=queue, tag=tag, limit=limit, offset=offset
    )
    return {
        "jobs": [queries.listed_job(r) for r in records],
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit if more else None,
        "data_loss": get_registry().data_loss(),
    }


@router.get("/dead")
def dead_jobs(limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Dead jobs (failed after their last retry), newest first, with their error."""
    return list_jobs(state=JobState.DEAD, limit=limit, offset=offset)


#: The submit body in the OpenAPI schema: it is read raw, so the job type's own model validates it.
PAYLOAD_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "description": "the job type's payload (see GET /api/v1/types)"}
            }
        },
    }
}


@router.post("/jobs/{job_type}", status_code=201, openapi_extra=PAYLOAD_BODY)
async def submit(
    request: Request,
    job_type: str,
    name: Annotated[str | None, Query(max_length=JOB_NAME_MAX_CHARS)] = None,
    priority: Annotated[int | None, Query(ge=0, le=9)] = None,
    tag: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None,
    queue: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    delay: Annotated[str | None, Query(description="start after this long, e.g. 10m")] = None,
    at: Annotated[str | None, Query(description="start at this ISO time (UTC unless zoned)")] = None,
    timeout: Annotated[str | None, Query(description="soft time limit, e.g. 1h 30m")] = None,
    retries: Annotated[int | None, Query(ge=0, le=MAX_RETRIES)] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, str]:
    """Validate and enqueue a ``job_type`` job; the body is its payload (see ``GET /types``).

    Bad input is 422 with each problem, and nothing is enqueued. A repeated ``Idempotency-Key``
    returns the first job's id; one held by a job of another type is 422 (the key, like a changed
    payload under the IETF idempotency-key draft, does not fit this request).
    """
    payload = await json_body(request)
    options = actions.submit_options(
        name=name,
        priority=priority,
        tags=tag,
        queue=queue,
        delay=delay,
        at=at,
        timeout=timeout,
        retries=retries,
        key=idempotency_key,
    )
    caller, settings = caller_of(request), settings_of(request)
    job_id = await run_in_threadpool(actions.submit, caller, settings, job_type, payload, options)
    return {"id": job_id}


@router.get("/jobs/{job_id}")
def show(request: Request, job_id: str) -> dict[str, Any]:
    """The job's record, transitions, progress (numbers and ETA), result, error and Flower link; for
    a pipeline job that has not started, as ``trainq show``: its step in the run and what holds it."""
    return queries.job_detail(job_id, settings_of(request), request.url.hostname or "127.0.0.1")


@router.get("/jobs/{job_id}/logs", response_model=None)
def logs(
    request: Request,
    job_id: str,
    after: str = "0-0",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    follow: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | StreamingResponse:
    """Log lines after stream id ``after``; with ``follow``, Server-Sent Events until the job ends.

    Each ``log`` event's id is the line's stream id (a reconnect resumes after it), ``progress``
    events carry the job's progress, and an ``end`` event its final state. A pipeline job that has
    not started has no lines yet; followed, ``waiting`` events say what holds it until it starts
    (or ``end``, if it is blocked or cancelled first), as ``trainq logs -f``.
    """
    if not follow:
        lines = queries.log_lines(job_id, after, limit)
        return {"lines": lines, "next": lines[-1]["id"] if lines else after}
    queries.check_job(job_id)  # an unknown job is a 404 before the stream starts, not a broken stream
    start = last_event_id or after
    return StreamingResponse(
        _follow(request, job_id, start),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _follow(request: Request, job_id: str, cursor: str) -> AsyncIterator[str]:
    registry = get_registry()
    shown: Any = None
    said = ""
    quiet_s = 0.0
    while not await request.is_disconnected():
        entries = await run_in_threadpool(registry.read_log, job_id, cursor, FOLLOW_BLOCK_MS)
        for entry, line in entries:
            yield _event("log", {"id": entry, "line": line}, entry)
        cursor = entries[-1][0] if entries else cursor
        record = await run_in_threadpool(registry.find, job_id)
        if record is None:  # a pipeline job that has not started: what holds it, until it starts
            job = await run_in_threadpool(get_runs().unstarted, job_id)
            if job.why != said:
                said = job.why
                yield _event("waiting", {"state": job.state, "why": job.why})
            if not job.may_start and await run_in_threadpool(registry.find, job_id) is None:
                yield _event("end", {"state": job.state, "error": None})
                return
        else:
            progress = record.progress.model_dump(mode="json") if record.progress else None
            if progress != shown:
                shown = progress
                yield _event(
                    "progress", {"state": record.state.value, "progress": progress, "eta_s": eta_s(record)}
                )
            if record.state.finished and not entries:
                # a line written just before the finish lands after the read above: read once more
                rest = await run_in_threadpool(registry.read_log, job_id, cursor, None)
                if not rest:
                    yield _event("end", {"state": record.state.value, "error": record.error})
                    return
                entries = rest
                for entry, line in rest:
                    yield _event("log", {"id": entry, "line": line}, entry)
                cursor = rest[-1][0]
        quiet_s = 0.0 if entries else quiet_s + FOLLOW_BLOCK_MS / 1000
        if quiet_s >= KEEPALIVE_S:
            quiet_s = 0.0
            yield ": keepalive\n\n"


def _event(kind: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n"


@router.post("/jobs/{job_id}/cancel")
def cancel(request: Request, job_id: str) -> dict[str, str]:
    """Cancel a waiting or running job (409 for a finished one, or a pipeline job that has not started:
    its run can be cancelled); the event names the caller."""
    previous = actions.cancel_job(caller_of(request), job_id)
    return {"id": job_id, "previous": previous.value}


@router.post("/jobs/{job_id}/retry")
def retry(request: Request, job_id: str) -> dict[str, Any]:
    """Re-queue a dead, failed, cancelled or blocked job with its payload (409 otherwise); 403 if it
    would run a shell command the caller may not start."""
    return queries.job_view(actions.retry_job(caller_of(request), settings_of(request), job_id))
