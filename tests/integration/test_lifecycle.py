"""A job's finish (real Redis): one round trip carrying the state change, the plugins' writes
(metrics) and the caller's own (Celery's result), applied only if the change is."""

from __future__ import annotations

import time
from typing import Any

import redis

from tests.integration.test_registry import record
from trainq.job import lifecycle
from trainq.job.record import JobState
from trainq.store.registry import Effects, Registry


class CountingRedis(redis.Redis):
    """A real client that notes the name of each command it sends."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def counting(registry: Registry) -> Registry:
    """A registry on the same database whose client counts what it sends."""
    return Registry(CountingRedis(connection_pool=registry.client.connection_pool), registry.keys)


def test_a_finish_is_one_round_trip_with_its_metrics_and_the_callers_writes(registry: Registry) -> None:
    # given a claimed job and a write of the caller's own to commit with its success
    store = counting(registry)
    store.create(record("a"))
    claimed = store.claim("a", 0, "w@h", time.time() + 60)
    assert claimed is not None
    effects = Effects()
    effects.command("SET", "probe-result", "done")
    sent = store.client.sent  # type: ignore[attr-defined]
    sent.clear()
    # when it succeeds
    previous = lifecycle.finish(store, claimed, JobState.SUCCEEDED, {"result": 1}, effects=effects)
    # then one command went to Redis, and the state, the metrics and the write are all there
    assert sent == ["EVALSHA"]
    assert previous is JobState.RUNNING
    done = registry.get("a")
    assert (done.state, done.result) == (JobState.SUCCEEDED, 1)
    assert registry.client.get("probe-result") == b"done"
    assert registry.client.hget(registry.keys.metrics(), "finished|probe|succeeded") == b"1"
    assert registry.queue_counts() == {"probe": {"succeeded": 1}}
    assert registry.expired_leases(time.time() + 120) == []


def test_a_refused_finish_writes_nothing(registry: Registry) -> None:
    # given a claimed job cancelled meanwhile
    registry.create(record("a"))
    claimed = registry.claim("a", 0, "w@h", time.time() + 60)
    assert claimed is not None
    lifecycle.cancel(registry, claimed, "cancelled by a test")
    effects = Effects()
    effects.command("SET", "probe-result", "done")
    # when the worker's success arrives
    previous = lifecycle.finish(registry, claimed, JobState.SUCCEEDED, {"result": 1}, effects=effects)
    # then it is refused, and neither its metrics nor its write happened
    assert previous is None
    assert registry.get("a").state is JobState.CANCELLED
    assert registry.client.get("probe-result") is None
    assert registry.client.hget(registry.keys.metrics(), "finished|probe|succeeded") is None
    assert registry.client.hget(registry.keys.metrics(), "finished|probe|cancelled") == b"1"
