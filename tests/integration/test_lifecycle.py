"""A job's finish (real Redis): one round trip carrying the state change, the plugins' writes
(metrics) and the caller's own (Celery's result), applied only if the change is."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from tests.integration.test_registry import record
from trainq.job import lifecycle
from trainq.job.record import JobState
from trainq.job.types import get_job_type
from trainq.ops.metrics import TrainqCollector
from trainq.settings import get_settings
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
    assert registry.client.hget(registry.keys.metrics(), "timed|probe|succeeded|0.1") == b"1"
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
    observed = registry.client.hgetall(registry.keys.metrics())
    assert not [f for f in observed if b"|succeeded" in f], observed
    assert observed[b"timed|probe|cancelled|0.1"] == b"1"


def test_finishes_counted_by_an_earlier_release_and_by_this_one_add_up(registry: Registry) -> None:
    # given two jobs that ran, counted by an earlier release in both the total and a bucket, and
    # one counted by this release (its bucket only), and one that never started
    registry.client.hset(
        registry.keys.metrics(),
        mapping={"finished|probe|succeeded": 2, "bucket|probe|succeeded|0.1": 2, "sum|probe|succeeded": 0.1},
    )
    registry.create(record("a"))
    claimed = registry.claim("a", 0, "w@h", time.time() + 60)
    assert claimed is not None
    lifecycle.finish(registry, claimed, JobState.SUCCEEDED, {"result": 1})
    registry.create(record("b"))
    lifecycle.cancel(registry, registry.get("b"), "cancelled by a test")
    # when the exporter reads them
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in TrainqCollector(registry)._observations()
        for s in family.samples
    }
    # then each finish counts once, in the total and in the histogram
    succeeded = frozenset({("type", "probe"), ("state", "succeeded")})
    assert samples["trainq_jobs_finished_total", succeeded] == 3
    assert samples["trainq_job_duration_seconds_count", succeeded] == 3
    assert samples["trainq_job_duration_seconds_bucket", succeeded | {("le", "0.1")}] == 3
    cancelled = frozenset({("type", "probe"), ("state", "cancelled")})
    assert samples["trainq_jobs_finished_total", cancelled] == 1
    assert ("trainq_job_duration_seconds_count", cancelled) not in samples


@pytest.mark.parametrize("at_cap", [False, True], ids=["requeued", "past-the-recovery-cap"])
def test_a_lease_renewed_after_the_reaper_read_it_keeps_its_attempt(registry: Registry, at_cap: bool) -> None:
    # given a running job whose lease ran out, as a reaper reads it (at the recovery cap, its next
    # recovery ends it dead)
    recoveries = get_settings().max_recoveries if at_cap else 0
    registry.create(record("a", recoveries=recoveries))
    claimed = registry.claim("a", 0, "w@h", time.time() - 1)
    assert claimed is not None
    now = time.time()
    assert registry.expired_leases(now) == ["a"]
    # when its heartbeat renews the lease before the reaper's recovery lands
    assert registry.update_running("a", claimed.fence, lease_until=now + 60)
    # then the recovery is refused: the attempt runs on, on its fence, neither run twice nor ended dead
    probe = get_job_type("probe")
    assert not lifecycle.recover(probe, registry, claimed, "lease expired", expired_by=now)
    kept = registry.get("a")
    assert (kept.state, kept.fence, kept.recoveries) == (JobState.RUNNING, claimed.fence, recoveries)
    assert registry.expired_leases(now + 30) == []  # its renewed lease is still held
    # and a lease that did run out is recovered as before
    assert registry.update_running("a", claimed.fence, lease_until=now - 1)
    assert lifecycle.recover(probe, registry, claimed, "lease expired", expired_by=now)
    assert registry.get("a").state is (JobState.DEAD if at_cap else JobState.QUEUED)
