"""A poison message on a Sentinel broker: the worker (trainq's Sentinel channel) sets it aside and runs
the next job; Flower shows the broker as the sentinel address the user gave, password hidden."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import TEST_ENV
from tests.fixtures import (
    Process,
    Workers,
    free_port,
    start_redis,
    start_sentinel,
    submit_elsewhere,
    wait_for,
)
from tests.integration.test_monitoring import FLOWER_PASSWORD, FLOWER_USER, http_get, start_flower
from tests.messages import poison_shapes
from trainq.store.keys import Keys
from trainq.store.registry import Registry

MASTER = "poisonmaster"
PASSWORD = "p0ison-pw"


@pytest.fixture
def sentinel_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], redis.Redis]]:
    """One password-protected master watched by one sentinel, on private loopback ports."""
    processes: list[Process] = []
    try:
        master = free_port()
        processes.append(start_redis(tmp_path / "master", master, "--requirepass", PASSWORD))
        port, sentinel = start_sentinel(tmp_path / "sentinel", MASTER, master, PASSWORD)
        processes.append(sentinel)
        client = redis.Redis(port=port, socket_timeout=1)
        wait_for(lambda: _named(client), 10, message="the sentinel names its master")
        env = {
            "TRAINQ_BROKER_URL": f"sentinel://:{PASSWORD}@127.0.0.1:{port}",
            "TRAINQ_SENTINEL_MASTER": MASTER,
            "TEST_ATTEMPTS_URL": TEST_ENV["TRAINQ_BROKER_URL"],
        }
        yield env, redis.Redis(port=master, password=PASSWORD)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.stop()


def _named(client: redis.Redis) -> bool:
    try:
        return client.sentinel_get_master_addr_by_name(MASTER) is not None
    except redis.RedisError:
        return False


def test_a_poison_message_on_a_sentinel_broker_is_quarantined_and_the_worker_runs_on(
    sentinel_env: tuple[dict[str, str], redis.Redis], workers: Workers, tmp_path: Path
) -> None:
    # given a worker whose broker is a Sentinel-managed master
    env, master = sentinel_env
    worker = workers.start("probe", env=env)
    registry = Registry(master, Keys("trainq:"))
    # when an entry that is not base64 lands in its queue, followed by a valid job
    master.lpush("probe", poison_shapes()["bad base64"])
    (job_id,) = submit_elsewhere(env, ["submit('probe', {})"])
    # then the job runs on the same worker process and the entry is in the quarantine
    wait_for(lambda: registry.get(job_id).state.value == "succeeded", 20, message="the valid job ran")
    assert master.llen("trainq:quarantine") == 1
    assert worker.alive() and "Unrecoverable error" not in worker.output(), worker.output()[-2000:]
    # and Flower's broker page names the sentinel (trainq's transport by the scheme the user wrote)
    port = free_port()
    start_flower(tmp_path, port, workers, env=env)
    status, page = http_get(f"http://127.0.0.1:{port}/broker", (FLOWER_USER, FLOWER_PASSWORD))
    sentinel_port = env["TRAINQ_BROKER_URL"].rsplit(":", 1)[1]
    assert status == 200 and f"sentinel://:**@127.0.0.1:{sentinel_port}" in page, page[-2000:]
    assert PASSWORD not in page and "SentinelTransport" not in page
