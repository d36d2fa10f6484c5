"""The pages: runs (with the DAG drawn live), jobs, dead jobs, schedules and queues.

Server-rendered with Jinja2 (autoescaped: a job named ``<script>`` is shown as text); forms
post with the page's CSRF token and redirect back; the only script polls the API for live state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile

from trainq.errors import TrainqError
from trainq.inputs.durations import format_duration
from trainq.inputs.limits import MAX_DOCUMENT_BYTES, WEB_LOG_TAIL
from trainq.job.record import JobState
from trainq.store.registry import get_registry
from trainq.web import actions, layout, queries
from trainq.web.api.body import parse_definition
from trainq.web.api.jobs import Offset
from trainq.web.app import HERE, problems, settings_of, status_of
from trainq.web.auth import CSRF_COOKIE, caller_of, csrf_token, guard

router = APIRouter(dependencies=[Depends(guard)], include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["when"] = lambda ts: (
    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""
)
templates.env.filters["took"] = lambda s: format_duration(s) if s is not None else ""
PAGE = 50
Next = Annotated[str, Form()]


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """Render page ``name``, under a banner while the registry's Redis is known to have lost its data
    (not on an error page: it may be the registry that failed); set the CSRF cookie the page's forms
    carry if the browser has none."""
    settings = settings_of(request)
    token = csrf_token(request)
    context = {
        "csrf": token,
        "caller": caller_of(request),
        "states": [s.value for s in JobState],
        "data_loss": get_registry().data_loss() if status < 400 else None,
        **context,
    }
    context["flower"] = lambda job_id: queries.flower_link(
        settings, request.url.hostname or "127.0.0.1", job_id
    )
    response = templates.TemplateResponse(request, name, context, status_code=status)
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
    return response


def error_page(request: Request, status: int, detail: str, errors: list[str]) -> Response:
    """A page saying what went wrong (every problem listed)."""
    return render(request, "error.html", {"status": status, "detail": detail, "errors": errors}, status)


def back(to: str) -> RedirectResponse:
    """Redirect (303) to a path of this site after a form post; anywhere else goes home."""
    safe = to if to.startswith("/") and not to.startswith("//") and "\\" not in to else "/"
    return RedirectResponse(safe, 303)


@router.get("/")
def home() -> RedirectResponse:
    """The runs page is the front page."""
    return RedirectResponse("/runs", 303)


@router.get("/runs")
def runs(request: Request) -> Response:
    """Recent pipeline runs, and a form to start one."""
    return render(request, "runs.html", {"runs": queries.recent_runs(PAGE)})


@router.post("/runs")
async def start_run(request: Request) -> Response:
    """Start a pipeline from the pasted definition or the uploaded file; the problems if invalid."""
    form = await request.form(max_part_size=MAX_DOCUMENT_BYTES + 1)  # a pasted file may be as large
    upload, text = form.get("file"), str(form.get("definition") or "")
    body = text.encode()
    if isinstance(upload, UploadFile) and upload.filename:
        body = await upload.read(MAX_DOCUMENT_BYTES + 1)
    try:
        data = parse_definition(body, "application/yaml")  # YAML reads JSON too
        caller, settings = caller_of(request), settings_of(request)
        run_id = await run_in_threadpool(actions.start_pipeline, caller, settings, data)
    except TrainqError as exc:
        context = {"runs": queries.recent_runs(PAGE), "definition": text, "errors": problems(exc)}
        return render(request, "runs.html", context, status_of(exc))
    return back(f"/runs/{run_id}")


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str) -> Response:
    """A run: its DAG drawn left to right, coloured by state, updated live."""
    status = queries.run_status(run_id, settings_of(request))
    picture = layout.layout(status.graph())
    jobs = {job.job_id: job for job in status.jobs}
    return render(request, "run.html", {"run": status, "picture": picture, "jobs": jobs})


@router.post("/runs/{run_id}/{action}")
def run_action(request: Request, run_id: str, action: str) -> Response:
    """Cancel or resume a run."""
    caller = caller_of(request)
    operations: dict[str, Callable[[], object]] = {
        "cancel": lambda: actions.cancel_run(caller, run_id),
        "resume": lambda: actions.resume_run(caller, settings_of(request), run_id),
    }
    if action not in operations:
        return error_page(request, 404, f"no run action {action!r}", [])
    operations[action]()
    return back(f"/runs/{run_id}")


@router.get("/jobs")
def jobs(
    request: Request,
    state: JobState | None = None,
    type: str | None = None,
    queue: str | None = None,
    tag: str | None = None,
    offset: Offset = 0,
) -> Response:
    """Jobs newest first, filtered like ``trainq list``."""
    records, more = queries.list_jobs(
        state=state,
        job_type=type or None,
        queue=queue or None,
        tag=tag or None,
        limit=PAGE,
        offset=max(offset, 0),
    )
    shown = {
        "state": state.value if state else "",
        "type": type or "",
        "queue": queue or "",
        "tag": tag or "",
    }
    context = {"records": records, "filters": shown, "offset": offset, "more": more, "page": PAGE}
    return render(request, "jobs.html", context)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    """One job: record, progress, transitions, error and log tail."""
    return render(request, "job.html", _job_context(request, job_id))


@router.get("/fragments/jobs/{job_id}")
def job_fragment(request: Request, job_id: str) -> Response:
    """The job panel alone, for the run page."""
    return render(request, "job_panel.html", _job_context(request, job_id))


def _job_context(request: Request, job_id: str) -> dict[str, Any]:
    """A job's panel: its record, or for a pipeline job that has not started none (``job`` then says
    what holds it, as ``trainq show`` does); raises JobNotFound."""
    job = queries.job_detail(job_id, settings_of(request), request.url.hostname or "127.0.0.1")
    record = get_registry().find(job_id)
    return {"job": job, "record": record, "log": queries.log_tail(job_id, WEB_LOG_TAIL) if record else []}


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: str, next: Next = "/") -> Response:
    """Cancel a job, then go back."""
    actions.cancel_job(caller_of(request), job_id)
    return back(next)


@router.post("/jobs/{job_id}/retry")
def retry_job(request: Request, job_id: str, next: Next = "/") -> Response:
    """Re-queue a job, then go back."""
    actions.retry_job(caller_of(request), settings_of(request), job_id)
    return back(next)


@router.get("/dead")
def dead(request: Request, offset: Offset = 0) -> Response:
    """Dead jobs with their error and a retry button."""
    records, more = queries.list_jobs(state=JobState.DEAD, limit=PAGE, offset=offset)
    return render(request, "dead.html", {"records": records, "offset": offset, "more": more, "page": PAGE})


@router.get("/schedules")
def schedule_page(request: Request) -> Response:
    """Schedules with their next run, enable/disable and run-now buttons."""
    return render(request, "schedules.html", {"schedules": queries.schedule_list()})


@router.post("/schedules/{name}/{action}")
def schedule_action(request: Request, name: str, action: str) -> Response:
    """Enable, disable, run or delete a schedule, then go back."""
    caller, settings = caller_of(request), settings_of(request)
    operations: dict[str, Callable[[], object]] = {
        "enable": lambda: actions.set_schedule_enabled(caller, settings, name, True),
        "disable": lambda: actions.set_schedule_enabled(caller, settings, name, False),
        "run": lambda: actions.run_schedule(caller, settings, name),
        "delete": lambda: actions.delete_schedule(caller, name),
    }
    if action not in operations:
        return error_page(request, 404, f"no schedule action {action!r}", [])
    operations[action]()
    return back("/schedules")


@router.get("/queues")
def queue_page(request: Request) -> Response:
    """Queues with their depth, workers and health; pause and resume."""
    from trainq.ops import control
    from trainq.web.api.queues import INSPECT_TIMEOUT_S

    return render(
        request, "queues.html", {"report": control.worker_report(get_registry(), INSPECT_TIMEOUT_S)}
    )


@router.post("/queues/{queue}/{action}")
def queue_action(request: Request, queue: str, action: str) -> Response:
    """Pause or resume a queue, then go back."""
    if action not in ("pause", "resume"):
        return error_page(request, 404, f"no queue action {action!r}", [])
    actions.set_queue_paused(caller_of(request), queue, action == "pause")
    return back("/queues")
