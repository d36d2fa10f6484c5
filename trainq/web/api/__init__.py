"""The JSON API under ``/api/v1``: jobs, dead jobs, pipelines, schedules, queues, stats, health.

Reads go through ``trainq.web.queries`` and changes through ``trainq.web.actions``; this package
only maps HTTP onto them. It may import trainq's library and ``trainq.web``, never the CLI.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from trainq.web.api import jobs, pipelines, queues, schedules
from trainq.web.api.query import known_query
from trainq.web.auth import guard

router = APIRouter(prefix="/api/v1", dependencies=[Depends(guard), Depends(known_query)])
for module in (jobs, pipelines, schedules, queues):
    router.include_router(module.router)
