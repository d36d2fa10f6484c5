"""Kill, restart and pause real processes; every accepted job must still finish exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fixtures import Workers, free_port, run_cli, start_redis, submit_elsewhere, wait_for
from tests.jobs import attempts_key
from trainq import JobState, get_registry
from trainq.ops.control import submit

pytestmark = pytest.mark.slow


def ends(client: redis.Redis, job_id: str) -> int:
    return sum(1 for n in client.lrange(attempts_key(job_id), 0, -1) if n.startswith(b"end"))


def running_on(worker: str) -> str | None:
    """The id of a job that started on ``worker`` in the last 30 ms, if any."""
    now = time.time()
    for r in get_registry().list(state=JobState.RUNNING, limit=10):
        if r.worker == f"{worker}@{os.uname().nodename}" and r.started_at and now - r.started_at < 0.03:
            return r.id
    return None


def test_sigkilled_workers_lose_and_duplicate_nothing(workers: Workers, redis_client: Any) -> None:
    # given 200 jobs and two worker processes
    ids = [submit("probe", {"seconds": 0.1}) for _ in range(200)]
    pools = {name: workers.start("probe", name=name) for name in ("left", "right")}
    # when a worker is SIGKILLed just after a job started on it five times, and restarted each time
    hit = []  # the jobs the kill caught before their end (a loaded machine may let one finish first)
    for kill in range(5):
        name = ("left", "right")[kill % 2]
        job_id = wait_for(
            lambda name=name: running_on(name), timeout=30, interval=0.002, message=f"a job on {name}"
        )
        pools[name].kill()
        if ends(redis_client, job_id) == 0:
            hit.append(job_id)
        pools[name] = workers.start("probe", name=name)
    wait_for(
        lambda: get_registry().counts()[JobState.SUCCEEDED] == 200, timeout=120, message="all 200 succeeded"
    )
    # then all 200 succeeded, none is missing, none ran to completion twice
    records = get_registry().get_many(ids)
    assert len(records) == 200 and all(r.state is JobState.SUCCEEDED for r in records)
    assert [j for j in ids if ends(redis_client, j) != 1] == []
    # and every job a kill caught mid-run was recovered (and at least one kill caught one)
    assert hit and all(r.recoveries >= 1 for r in records if r.id in hit), hit


def test_redis_restart_and_pause_lose_no_job(tmp_path: Path, workers: Workers) -> None:
    # given a private Redis with AOF and 100 submitted jobs, no worker
    port = free_port()
    server = start_redis(tmp_path / "redis", port)
    env = {"TRAINQ_BROKER_URL": f"redis://127.0.0.1:{port}/0", "TRAINQ_KEY_PREFIX": "chaos:"}
    client = redis.Redis(port=port)
    try:
        ids = submit_elsewhere(env, ["submit('probe', {})"] * 100)
        assert len(ids) == 100
        # when Redis is killed and restarted from its append-only file
        server.kill()
        server = start_redis(tmp_path / "redis", port)
        # then every job survives and completes once a worker starts
        worker = workers.start("probe", env=env)
        wait_for(
            lambda: all(client.llen(attempts_key(j)) == 2 for j in ids), timeout=60, message="100 jobs done"
        )
        # when Redis is paused (SIGSTOP) for 20 s under the running worker
        os.kill(server.pid, signal.SIGSTOP)
        time.sleep(20)  # the fault itself: Redis stays frozen this long
        os.kill(server.pid, signal.SIGCONT)
        # then the worker carries on consuming
        later = submit_elsewhere(env, ["submit('probe', {})"] * 3)
        wait_for(
            lambda: all(client.llen(attempts_key(j)) == 2 for j in later),
            timeout=60,
            message="jobs after pause",
        )
        assert worker.alive()
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop()


def test_submit_to_dead_broker_exits_3_within_5_seconds(redis_client: Any) -> None:
    port = free_port()
    started = time.monotonic()
    result = run_cli("submit", "probe", env={"TRAINQ_BROKER_URL": f"redis://127.0.0.1:{port}/0"})
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in result.stderr


def test_submit_with_registry_up_but_broker_down_stores_nothing(redis_client: Any) -> None:
    port = free_port()
    env = {
        "TRAINQ_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}//",
        "TRAINQ_REGISTRY_URL": os.environ["TRAINQ_BROKER_URL"],
    }
    started = time.monotonic()
    result = run_cli("submit", "probe", env=env)
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 5
    assert get_registry().list() == []
