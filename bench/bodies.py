"""The task bodies every system runs, so each system does exactly the same work."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

import redis

#: Env var naming the bench's own Redis, where stamps are written.
REDIS_ENV = "BENCH_REDIS_URL"


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    """A client of the bench Redis (one per process)."""
    return redis.Redis.from_url(os.environ[REDIS_ENV])


def noop() -> None:
    """The no-op job: what a queue costs when the work costs nothing."""


def stamp(key: str, name: str = "") -> None:
    """Push ``"name start end"`` (epoch seconds) on list ``key`` in the bench Redis.

    The start is taken on entry and the push is the body's last step, so the end is when
    the job's own work ended: dependency latency is measured from it to the next start.
    """
    start = time.time()
    client().rpush(key, f"{name} {start!r} {time.time()!r}")


def normalise(record: dict[str, Any]) -> dict[str, Any]:
    """One small data item: trim and lower-case the text, scale the value to 0-1."""
    return {
        "id": record["id"],
        "text": " ".join(str(record["text"]).split()).lower(),
        "value": min(max(float(record["value"]) / 100.0, 0.0), 1.0),
    }


def sample(n: int) -> list[dict[str, Any]]:
    """``n`` small records to normalise."""
    return [{"id": i, "text": f"  Item  {i} OF the Set ", "value": i % 150} for i in range(n)]
