"""The raw Celery baseline: a minimal app with the same task bodies and no trainq at all.

Its settings match trainq's Celery settings where they change the work done (JSON, late
acks, one message per process, results stored in Redis, needed by ``chord`` anyway), so the
difference measured is trainq's tracking, not configuration.
"""

from __future__ import annotations

import os

from celery import Celery

from bench import bodies

#: Env var naming the broker of the raw Celery app.
BROKER_ENV = "BENCH_BROKER_URL"

app = Celery(
    "bench_raw",
    broker=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"),
    backend=os.environ.get(bodies.REDIS_ENV, "redis://127.0.0.1:6379/0"),
)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    result_serializer="json",
    task_default_queue="raw",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop() -> None:
    """No-op."""
    bodies.noop()


@app.task(name="bench.stamp")
def stamp(key: str, name: str = "") -> None:
    """Record this job's start and end times."""
    bodies.stamp(key, name)
