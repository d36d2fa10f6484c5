"""The heartbeat thread renews a running job's lease one interval after it started, also when the
thread idled between jobs (it does not wait for a job to wake it)."""

from __future__ import annotations

import time

from tests.fixtures import wait_for
from tests.integration.test_registry import record
from trainq.job.leases import Heartbeat
from trainq.store.registry import Registry

INTERVAL_S = 0.3
LEASE_S = 60.0


def _running(registry: Registry, job_id: str) -> Heartbeat:
    registry.create(record(job_id, fence=1))
    started = registry.claim(job_id, 1, "w", time.time() + 1)
    assert started is not None
    return Heartbeat(registry, started, LEASE_S, INTERVAL_S, stoppable=False)


def _lease(registry: Registry, job_id: str) -> float:
    score = registry.client.zscore(registry.keys.leases(), job_id)
    return float(score or 0)


def test_a_job_after_an_idle_spell_is_renewed_one_interval_after_its_start(registry: Registry) -> None:
    # given a first job renewed once, then stopped, and the thread idle for several intervals
    first = _running(registry, "first")
    first.start()
    wait_for(lambda: _lease(registry, "first") > time.time() + LEASE_S / 2, 5, message="first renewal")
    first.stop()
    time.sleep(INTERVAL_S * 3)  # the idle spell under test, not a wait for work
    # when a second job starts
    second = _running(registry, "second")
    started = time.monotonic()
    second.start()
    try:
        # then its lease is renewed about one interval later (not after the thread's idle wait)
        wait_for(lambda: _lease(registry, "second") > time.time() + LEASE_S / 2, 5, message="second renewal")
        assert time.monotonic() - started < INTERVAL_S * 3
    finally:
        second.stop()
