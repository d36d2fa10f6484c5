"""The raw Celery baseline: a minimal app with the same task bodies and no trainq at all.

Its settings match trainq's Celery settings where they change the work done (JSON, late
acks, one message per process, results stored in Redis, needed by ``chord`` anyway, and on
RabbitMQ publisher confirms, as trainq always has), so the difference measured is trainq's
tracking, not configuration. ``unconfirmed_noop`` is the same no-op sent without confirms: the
submit case shows it as its RabbitMQ baseline, what a confirm costs by itself.
"""

from __future__ import annotations

import os

from celery import Celery

from bench import bodies

#: Env var naming the broker of the raw Celery app.
BROKER_ENV = "BENCH_BROKER_URL"

BROKER_URL = os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0")


def _app(name: str, confirms: bool) -> Celery:
    app = Celery(
        name, broker=BROKER_URL, backend=os.environ.get(bodies.REDIS_ENV, "redis://127.0.0.1:6379/0")
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
        broker_transport_options={"confirm_publish": confirms and BROKER_URL.startswith("amqp")},
    )
    return app


app = _app("bench_raw", confirms=True)
_unconfirmed = _app("bench_raw_unconfirmed", confirms=False)


@app.task(name="bench.noop")
def noop() -> None:
    """No-op."""
    bodies.noop()


@app.task(name="bench.stamp")
def stamp(key: str, name: str = "") -> None:
    """Record this job's start and end times."""
    bodies.stamp(key, name)


@_unconfirmed.task(name="bench.noop")
def unconfirmed_noop() -> None:
    """No-op, sent without publisher confirms."""
    bodies.noop()
