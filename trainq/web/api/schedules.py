"""Schedules over HTTP: list (with next runs), create, enable, disable, delete, run now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ConfigDict, ValidationError, field_validator

from trainq.schedules import ScheduleSpec
from trainq.web import actions, queries
from trainq.web.api.body import json_body
from trainq.web.app import settings_of
from trainq.web.auth import caller_of

router = APIRouter(prefix="/schedules", tags=["schedules"])


class NewSchedule(ScheduleSpec):
    """A schedule to create: its name and its ``trainq schedule create`` fields.

    A pipeline comes inline (its definition), never as a path: a caller must not name server files.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    pipeline: dict[str, Any] | None = None

    @field_validator("pipeline", mode="before")
    @classmethod
    def _inline_only(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise ValueError(actions.INLINE_PIPELINES_ONLY)
        return value


@router.get("")
def list_schedules() -> list[dict[str, Any]]:
    """Every schedule with its rule, target, last and next run."""
    return queries.schedule_list()


#: The create body in the OpenAPI schema: it is read raw, as every body is (a repeated key is refused).
SCHEDULE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": NewSchedule.model_json_schema()}},
    }
}


@router.post("", status_code=201, openapi_extra=SCHEDULE_BODY)
async def create(request: Request) -> dict[str, Any]:
    """Validate and store a schedule; 422 names the problem, nothing is stored."""
    try:
        body = NewSchedule.model_validate(await json_body(request))
    except ValidationError as exc:  # worded as FastAPI words a body it validated itself
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    return await run_in_threadpool(_create, request, body)


def _create(request: Request, body: NewSchedule) -> dict[str, Any]:
    spec = body.model_dump(exclude={"name"}, exclude_unset=True)
    actions.create_schedule(caller_of(request), settings_of(request), body.name, spec)
    return _one(body.name)


def _one(name: str) -> dict[str, Any]:
    return next(s for s in queries.schedule_list() if s["name"] == name)


@router.post("/{name}/enable")
def enable(request: Request, name: str) -> dict[str, Any]:
    """Enable a schedule; it next runs at its next time from now (unchanged if already enabled; 403
    for shell commands the caller may not start)."""
    actions.set_schedule_enabled(caller_of(request), settings_of(request), name, True)
    return _one(name)


@router.post("/{name}/disable")
def disable(request: Request, name: str) -> dict[str, Any]:
    """Disable a schedule: Beat submits nothing for it until it is enabled."""
    actions.set_schedule_enabled(caller_of(request), settings_of(request), name, False)
    return _one(name)


@router.post("/{name}/run")
def run_now(request: Request, name: str) -> dict[str, str]:
    """Submit one run of the schedule now; the job (or pipeline run) id."""
    return {"id": actions.run_schedule(caller_of(request), settings_of(request), name)}


@router.delete("/{name}")
def delete(request: Request, name: str) -> dict[str, str]:
    """Delete a schedule (a static one returns when Beat restarts)."""
    actions.delete_schedule(caller_of(request), name)
    return {"deleted": name}
