"""The trainq web application: the JSON API under ``/api/v1``, the pages, and how errors answer.

Errors keep the CLI's meaning: bad input is 422 with every problem listed, an unknown id 404,
a state that does not allow the operation (or a job its key refused) 409, a refused command job
403, an unreachable broker or registry 503. Validation errors never echo the input back (it may hold secrets).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException

from trainq.errors import (
    BrokerUnavailable,
    CommandRefused,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    OutcomeUnknown,
    PayloadError,
    PipelineError,
    RunNotFound,
    SubmitRefused,
    TrainqError,
    UnknownQueryParameter,
)
from trainq.settings import Settings, get_settings
from trainq.store.registry import unreachable
from trainq.web.auth import Auth, AuthMiddleware

log = logging.getLogger("trainq.web")
HERE = Path(__file__).resolve().parent
#: Error class -> HTTP status, first match wins; anything else is a 500.
ERROR_STATUS: list[tuple[type[TrainqError], int]] = [
    (JobNotFound, 404),
    (RunNotFound, 404),
    (InvalidTransition, 409),
    (SubmitRefused, 409),
    (CommandRefused, 403),
    (InvalidInput, 422),
    (BrokerUnavailable, 503),
]


class AsciiJSONResponse(JSONResponse):
    """JSON with every character past ASCII escaped (``\\u009d``), as JSON already escapes C0 controls:
    a C1 control (an 8-bit OSC or CSI) in a job's log or error then reaches a ``curl`` on a terminal as
    text, not as a sequence the terminal runs."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app for ``settings`` (default: the process's), ready for uvicorn."""
    from trainq.web import api, pages

    settings = settings or get_settings()
    app = FastAPI(
        title="trainq",
        version="1",
        summary="Jobs, pipelines, dead jobs, schedules and queues of trainq over HTTP.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        default_response_class=AsciiJSONResponse,
    )
    app.state.settings = settings
    app.add_middleware(AuthMiddleware, auth=Auth(settings))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_exception_handler(TrainqError, _trainq_error)
    for unreachable_error in (redis.RedisError, OperationalError):  # raised by a store's plain read
        app.add_exception_handler(unreachable_error, _unreachable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    return app


def settings_of(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def status_of(error: TrainqError) -> int:
    """The HTTP status of a trainq error: the one place errors map to statuses."""
    for kind, status in ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return 500


def problems(error: TrainqError) -> list[str]:
    """Each problem of ``error`` on its own line (a payload's fields, a pipeline's jobs)."""
    if isinstance(error, PayloadError):
        return list(error.errors)
    if isinstance(error, (PipelineError, UnknownQueryParameter)):
        return list(error.problems)
    return [str(error)]


async def _trainq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrainqError)
    status = status_of(exc)
    if status == 500:
        log.error("request %s %s failed: %s", request.method, request.url.path, exc)
    known = {"job_id": exc.job_id} if isinstance(exc, OutcomeUnknown) else {}  # to look up, not resend
    return _answer(request, status, str(exc), problems(exc), extra=known)


async def _unreachable(request: Request, exc: Exception) -> Response:
    return await _trainq_error(request, unreachable(exc))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    found = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return _answer(request, 422, "invalid request: " + "; ".join(found), found)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _answer(request, exc.status_code, str(exc.detail), [str(exc.detail)], exc.headers)


def _answer(
    request: Request,
    status: int,
    detail: str,
    errors: list[str],
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """JSON for the API (with ``extra`` fields), an error page for a browser."""
    if request.url.path.startswith("/api/"):
        body = {"detail": detail, "errors": errors, **(extra or {})}
        return AsciiJSONResponse(body, status, headers=headers)
    from trainq.web.pages import error_page

    return error_page(request, status, detail, errors)
