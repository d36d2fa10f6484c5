"""A worker's main process claims a delivery with its unacked entry (``trainq.job.claims``): what a
client cannot forge through it, and what it must not claim before the job runs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.clients.test_celery_client import REDIS, delete_queue, send
from tests.fixtures import Workers, wait_for
from tests.integration.test_rabbitmq import AMQP, amqp_env  # noqa: F401  (a fixture)
from trainq import JobState, get_registry
from trainq.job.claims import HEADER
from trainq.job.clients import FOREIGN_SOURCE
from trainq.ops.control import submit


def forged_claim(job_id: str) -> list[str]:
    """A ``trainq_claim`` header a client made up: a running record on its 7th attempt."""
    record = {
        "id": job_id,
        "type": "probe",
        "queue": "probe",
        "name": "probe",
        "state": "running",
        "payload": {"seconds": 0},
        "attempt": 7,
        "created_at": time.time(),
    }
    return ["0" * 64, json.dumps(record)]


@pytest.mark.parametrize("broker", ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def test_a_claim_header_a_client_sends_is_never_trusted(
    broker: str,
    workers: Workers,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    # given a probe worker (on RabbitMQ no main-process claim is made: only the pool process checks)
    env: dict[str, Any] = request.getfixturevalue("amqp_env") if broker == "rabbitmq" else {}
    queue = f"probe-{uuid.uuid4().hex[:6]}"
    try:
        workers.start(queue, concurrency=2, env=env)
        # when a plain Celery client sends a job whose headers claim it is already running, attempt 7
        job_id = uuid.uuid4().hex
        job = {"task": "trainq.probe", "kwargs": {"seconds": 0}, "task_id": job_id}
        seen = send(
            tmp_path, AMQP if env else REDIS, queue, [{**job, "headers": {HEADER: forged_claim(job_id)}}]
        )
    finally:
        if env:
            workers.stop_all()
            delete_queue(queue)
    # then the worker ignores the header: the job is recorded and claimed as any client's first delivery
    assert seen[0]["state"] == "SUCCESS", seen
    assert seen[0]["value"]["attempt"] == 1
    record = get_registry().get(job_id)
    assert record.state is JobState.SUCCEEDED and record.attempt == 1
    assert record.tags["source"] == FOREIGN_SOURCE


def test_a_job_due_later_is_not_running_while_the_worker_holds_it(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a probe worker
    workers.start("probe", concurrency=1)
    # when a job due in 3 s is sent and the worker has received it (Celery holds it in a timer)
    job_id = submit("probe", {}, countdown=3)
    wait_for(lambda: redis_client.hlen("unacked") == 1, 10, message="the worker reserved the job")
    # then it is still delayed: nothing claimed it before it is due
    record = get_registry().get(job_id)
    assert record.state is JobState.DELAYED, record.state
    # and it runs when due, started no earlier
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 20, message="the job ran")
    record = get_registry().get(job_id)
    assert record.started_at is not None and record.eta is not None
    assert record.started_at >= record.eta


def test_jobs_still_start_after_redis_loses_its_scripts(workers: Workers, redis_client: redis.Redis) -> None:
    # given a probe worker that has run a job
    workers.start("probe", concurrency=2)
    first = submit("probe", {})
    wait_for(lambda: get_registry().get(first).state is JobState.SUCCEEDED, 20, message="the first job ran")
    # when Redis forgets its scripts (a restart without persistence, SCRIPT FLUSH) and more jobs come
    redis_client.script_flush()
    later = [submit("probe", {}) for _ in range(4)]
    # then each one runs once
    wait_for(
        lambda: all(r.state is JobState.SUCCEEDED for r in get_registry().get_many(later)),
        20,
        message="every later job ran",
    )
    assert all(r.attempt == 1 and r.recoveries == 0 for r in get_registry().get_many(later))
