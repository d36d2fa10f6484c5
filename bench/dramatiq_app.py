"""Dramatiq's side: a Redis broker from ``BENCH_BROKER_URL`` and the same task bodies as actors."""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench import bodies

URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=URL)  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop() -> None:
    """No-op."""
    bodies.noop()


@dramatiq.actor(queue_name="bench", max_retries=0)
def stamp(key: str, name: str = "") -> None:
    """Record this job's start and end times."""
    bodies.stamp(key, name)


@dramatiq.actor(queue_name="bench", max_retries=0)
def normalise(record: dict[str, Any]) -> None:
    """Normalise one record and count it done."""
    bodies.normalise(record)
    bodies.client().incr("bench:items:done")
