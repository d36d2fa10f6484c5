"""Queues over HTTP: depth, workers and health per queue, pause and resume; job statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from trainq.ops import control
from trainq.store.registry import get_registry
from trainq.web import actions
from trainq.web.auth import caller_of

router = APIRouter(tags=["queues"])
#: Seconds to wait for workers to answer an inspect.
INSPECT_TIMEOUT_S = 0.5


@router.get("/queues")
def queues() -> dict[str, Any]:
    """Live workers with their active jobs, and per queue its waiting/running jobs and health."""
    return control.worker_report(get_registry(), INSPECT_TIMEOUT_S)


@router.post("/queues/{queue}/pause")
def pause(request: Request, queue: str) -> dict[str, Any]:
    """Stop every worker consuming the queue (and those started later)."""
    actions.set_queue_paused(caller_of(request), queue, True)
    return {"queue": queue, "paused": True}


@router.post("/queues/{queue}/resume")
def resume(request: Request, queue: str) -> dict[str, Any]:
    """Let the queue's workers consume it again."""
    actions.set_queue_paused(caller_of(request), queue, False)
    return {"queue": queue, "paused": False}


@router.get("/stats")
def stats() -> dict[str, Any]:
    """Jobs per state, and per queue its state counts, pending messages and pause (``trainq stats``)."""
    return control.stats_report(get_registry())
