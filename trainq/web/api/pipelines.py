"""Pipelines over HTTP: run a posted or uploaded JSON/YAML definition, list runs, status (as
``trainq pipeline status --json``), resume, cancel, and the result files collected."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from trainq.errors import InvalidInput
from trainq.inputs.limits import MAX_DOCUMENT_BYTES, WEB_PAGE_MAX
from trainq.pipelines import dag
from trainq.pipelines.runs import get_runs
from trainq.web import actions, queries
from trainq.web.api.body import DEFINITION, content_type, parse_definition, read_body, refuse_past
from trainq.web.app import settings_of
from trainq.web.auth import caller_of

router = APIRouter(prefix="/pipelines", tags=["pipelines"])
UPLOAD_FIELD = "file"


async def definition(request: Request) -> Any:
    """The posted definition: a JSON or YAML body, or the ``file`` field of a multipart upload."""
    kind = content_type(request)
    if kind != "multipart/form-data":
        return parse_definition(await read_body(request, DEFINITION, MAX_DOCUMENT_BYTES), kind)
    upload = (await request.form()).get(UPLOAD_FIELD)
    if upload is None or isinstance(upload, str):
        raise InvalidInput(f"upload the pipeline file in the form field {UPLOAD_FIELD!r}")
    body = await upload.read(MAX_DOCUMENT_BYTES + 1)
    refuse_past(len(body), MAX_DOCUMENT_BYTES, DEFINITION)
    name = (upload.filename or "").lower()
    return parse_definition(body, "application/json" if name.endswith(".json") else "application/yaml")


#: The run body in the OpenAPI schema (read raw: JSON, YAML or an upload).
DEFINITION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description": "the pipeline definition"}},
            "application/yaml": {"schema": {"type": "string", "description": "the pipeline file's text"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                },
            },
        },
    }
}


@router.post("", status_code=201, openapi_extra=DEFINITION_BODY)
async def run(request: Request, validate_only: bool = False) -> dict[str, Any]:
    """Validate a definition and start a run of it; 422 lists every problem, nothing is started; 413
    past the size a pipeline file may have.

    The body is the definition as ``application/json`` or ``application/yaml``, or a multipart
    upload in the field ``file``. With ``validate_only`` nothing runs.
    """
    data = await definition(request)
    settings = settings_of(request)
    if validate_only:
        pipeline_id, planned = await run_in_threadpool(dag.plan, data, settings.home / "work")
        return {"pipeline_id": pipeline_id, "jobs": [job.job_id for job in planned]}
    run_id = await run_in_threadpool(actions.start_pipeline, caller_of(request), settings, data)
    return {"run_id": run_id}


@router.get("")
def list_runs(limit: Annotated[int, Query(ge=1, le=WEB_PAGE_MAX)] = 20) -> list[dict[str, Any]]:
    """Runs newest first, as ``trainq pipeline list --json`` (plus job counts per state)."""
    return queries.recent_runs(limit)


@router.get("/{run_id}")  # each {run_id} below may be a pipeline id, meaning its latest run
def status(request: Request, run_id: str) -> dict[str, Any]:
    """The run and each job's state, attempts, duration, exit code, progress and what holds it."""
    return queries.run_status(run_id, settings_of(request)).model_dump(mode="json")


@router.post("/{run_id}/resume")
def resume(request: Request, run_id: str) -> dict[str, Any]:
    """Re-run the failed, dead, cancelled and blocked jobs (409 if there are none; 403 if one is a
    shell command the caller may not start)."""
    run_id = get_runs().find(run_id)
    return {
        "run_id": run_id,
        "restarted": actions.resume_run(caller_of(request), settings_of(request), run_id),
    }


@router.post("/{run_id}/cancel")
def cancel(request: Request, run_id: str) -> dict[str, Any]:
    """Cancel a running run: waiting jobs never start, running ones stop (409 if it ended)."""
    run_id = get_runs().find(run_id)
    return {"run_id": run_id, "stopped": actions.cancel_run(caller_of(request), run_id)}


@router.get("/{run_id}/results")
def results(request: Request, run_id: str) -> list[dict[str, Any]]:
    """Each job's collected result files, as paths inside the artifact store."""
    return queries.run_results(run_id, settings_of(request))
