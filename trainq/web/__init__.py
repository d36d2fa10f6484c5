"""trainq web: the HTTP API (``/api/v1``) and the pages for pipelines, jobs, dead jobs, schedules
and queues, served by uvicorn (``trainq web``).

It owns the HTTP surface only: reads go through the registry and run store, changes through the
same library calls as the CLI (``control``, ``runs``, ``schedules``). It may import trainq's
library, never ``trainq.cli`` or ``workers``.
"""

from __future__ import annotations

from trainq.web.app import create_app

__all__ = ["create_app"]
