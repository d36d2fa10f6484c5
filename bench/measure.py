"""Helpers shared by the cases: flushing between runs, purging broker queues, reading stamps."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

import redis

from bench.servers import wait_until
from bench.systems import QUEUE, RAW_QUEUE, BenchEnv


@dataclass
class Stamp:
    """One job's recorded start and end (epoch seconds)."""

    name: str
    start: float
    end: float


def parse_stamp(raw: bytes | str) -> Stamp:
    """A stamp pushed by ``bodies.stamp``."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    name, start, end = text.rsplit(" ", 2)
    return Stamp(name, float(start), float(end))


def stamp_key() -> str:
    """A fresh list key for stamps."""
    return f"bench:stamps:{uuid.uuid4().hex[:8]}"


def read_stamps(client: redis.Redis, key: str, count: int, timeout: float) -> dict[str, Stamp]:
    """Wait until ``count`` stamps are on ``key``; return them by name."""
    wait_until(lambda: client.llen(key) >= count, timeout, f"{count} stamps on {key}", interval=0.01)
    return {s.name: s for s in (parse_stamp(raw) for raw in client.lrange(key, 0, -1))}


def reset(env: BenchEnv) -> None:
    """Empty the bench Redis and, on RabbitMQ, the bench queues, between measurements."""
    redis.Redis.from_url(env.redis_url).flushdb()
    if env.broker == "rabbitmq":
        from bench.celery_app import app as raw_app
        from trainq.celery import app as trainq_app

        for app, queue in ((trainq_app, QUEUE), (raw_app, RAW_QUEUE)):
            # the queue may not exist yet
            with app.connection_for_write() as connection, contextlib.suppress(Exception):
                connection.default_channel.queue_purge(queue)
