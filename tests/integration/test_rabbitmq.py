"""The core smoke test with RabbitMQ (127.0.0.1:5672) as the broker and Redis as the registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection

from tests.fixtures import Workers, submit_elsewhere, wait_for
from trainq import JobState, get_registry

pytestmark = pytest.mark.rabbitmq
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def amqp_env(redis_client: Any) -> Iterator[dict[str, str]]:
    """Broker on RabbitMQ, registry on the test Redis; the test's queues are deleted afterwards."""
    try:
        with Connection(AMQP, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"tests need RabbitMQ at {AMQP}: {exc}")
    env = {"TRAINQ_BROKER_URL": AMQP, "TRAINQ_REGISTRY_URL": os.environ["TRAINQ_BROKER_URL"]}
    yield env
    with Connection(AMQP) as connection:
        channel = connection.default_channel
        for queue in ("probe", "training", "data"):
            try:
                channel.queue_delete(queue)
            except Exception:
                channel = connection.channel()


def state_of(job_id: str) -> JobState:
    return get_registry().get(job_id).state


def test_rabbitmq_routes_prioritises_and_retries(workers: Workers, amqp_env: dict[str, str]) -> None:
    # given 20 priority-0 probe jobs, one priority-9, a retried job and a data job, no worker yet
    calls = ["submit('probe', {}, priority=0)"] * 20 + ["submit('probe', {}, priority=9)"]
    calls += ["submit('probe', {'fail_times': 1}, retry={'base_s': 0.2})", "submit('data', {})"]
    *low, urgent, flaky, data = submit_elsewhere(amqp_env, calls)
    # when only a probe pool runs
    workers.start("probe", env=amqp_env)
    probes = [*low, urgent, flaky]
    wait_for(
        lambda: all(state_of(j) is JobState.SUCCEEDED for j in probes), timeout=60, message="probe jobs done"
    )
    # then the urgent job ran first, the flaky one needed two attempts, and the data job still waits
    started = {j: get_registry().get(j).started_at or 0 for j in [*low, urgent]}
    assert min(started, key=started.__getitem__) == urgent
    assert get_registry().get(flaky).attempt == 2
    assert state_of(data) is JobState.QUEUED
    workers.start("data", env=amqp_env)
    wait_for(lambda: state_of(data) is JobState.SUCCEEDED, timeout=30, message="data job done")
