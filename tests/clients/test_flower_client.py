"""Flower as a full client of trainq, on Redis and on RabbitMQ: a revoke from Flower or from
``celery control`` records the job cancelled and stops it like ``trainq cancel``; the queue-length
API and the Broker page answer; a payload trainq refuses gets its reason back (400, not an empty
500) and a valid one applied through Flower runs.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.result import AsyncResult
from kombu import Connection

from tests.fixtures import Workers, free_port, run_cli, submit_elsewhere, wait_for
from tests.integration.test_monitoring import (
    FLOWER_PASSWORD,
    FLOWER_USER,
    flower_workers,
    http_get,
    start_flower,
)
from tests.integration.test_rabbitmq import AMQP, amqp_env  # noqa: F401  (a fixture)
from tests.jobs import attempts_key
from trainq import JobState, get_registry
from trainq.celery import app
from trainq.ops.control import submit

AUTH = (FLOWER_USER, FLOWER_PASSWORD)
#: A cancel must reach a running job within one heartbeat (0.5 s in the tests) plus slack for 2 busy cores.
WITHIN_A_HEARTBEAT_S = 5


def http_post(url: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    """``(status, body)`` of an authenticated JSON POST; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    request.add_header("Authorization", "Basic " + base64.b64encode(":".join(AUTH).encode()).decode())
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")


def state(job_id: str) -> JobState:
    return get_registry().get(job_id).state


def notes(job_id: str) -> list[str]:
    """What the probe handler noted for ``job_id`` (``start:...``, ``end:...``), independent of trainq."""
    client = redis.Redis.from_url(app.conf.result_backend)
    return [note.decode().split(":")[0] for note in client.lrange(attempts_key(job_id), 0, -1)]


def cancelled_within(job_id: str, seconds: float) -> float:
    """Seconds until ``job_id`` is recorded cancelled; fails the test past ``seconds``."""
    start = time.monotonic()
    wait_for(lambda: state(job_id) is JobState.CANCELLED, seconds, message=f"{job_id} cancelled")
    return time.monotonic() - start


def queue_lengths(port: int) -> dict[str, int]:
    status, body = http_get(f"http://127.0.0.1:{port}/api/queues/length", AUTH)
    assert status == 200, body
    return {queue["name"]: queue["messages"] for queue in json.loads(body)["active_queues"]}


def start_stack(
    tmp_path: Path, workers: Workers, queue: str = "probe", env: dict[str, str] | None = None
) -> int:
    """Flower and one single-process worker on ``queue`` sending events; returns Flower's port."""
    port = free_port()
    start_flower(tmp_path, port, workers, env=env)
    workers.start(queue, name="probe", events=True, env=env)
    wait_for(lambda: any(flower_workers(port).values()), 40, 0.2, message="Flower sees the worker")
    return port


def test_flower_and_celery_revoke_cancel_jobs_and_flower_apply_explains_refusals(
    workers: Workers, tmp_path: Path
) -> None:
    # given Flower, one probe worker process busy with a long job, and two jobs waiting behind it
    port = start_stack(tmp_path, workers)
    running = submit("probe", {"seconds": 60})
    wait_for(lambda: state(running) is JobState.RUNNING, 20, message="first job running")
    waiting, later = submit("probe", {"seconds": 60}), submit("probe", {"seconds": 60})
    expiring = submit("probe", {}, expires=1)  # Celery drops it unstarted once it expires
    expires_at = time.time() + 1
    # then Flower's queue-length API counts the waiting jobs, and its Broker page lists the queue
    assert wait_for(lambda: queue_lengths(port).get("probe") == 3, 10, 0.2, message="3 waiting in Flower")
    status, page = http_get(f"http://127.0.0.1:{port}/broker", AUTH)
    assert status == 200 and "probe" in page and "not supported" not in page
    # when Flower revokes the waiting job, then it is cancelled at once and never starts
    assert http_post(f"http://127.0.0.1:{port}/api/task/revoke/{waiting}")[0] == 200
    cancelled_within(waiting, WITHIN_A_HEARTBEAT_S)
    # when Flower revokes the running job with terminate, then it is cancelled and its handler stopped
    assert http_post(f"http://127.0.0.1:{port}/api/task/revoke/{running}?terminate=true")[0] == 200
    took = cancelled_within(running, WITHIN_A_HEARTBEAT_S)
    # and the freed process takes the next job (the revoked one is skipped)
    wait_for(lambda: state(later) is JobState.RUNNING, 20, message="next job running")
    # when the waiting job's expiry has passed (an idle machine gets here within the second)
    wait_for(lambda: time.time() > expires_at, 5, message="the expiry of the waiting job")
    # and `celery control revoke` (no terminate) names the running job
    revoke = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "trainq", "control", "revoke", later],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoke.returncode == 0 and "revoked" in revoke.stdout, revoke.stdout + revoke.stderr
    # then it is cancelled within a heartbeat and stopped, like `trainq cancel`
    cancelled_within(later, WITHIN_A_HEARTBEAT_S)
    # and the job that expired while it waited is recorded cancelled when the worker drops it
    cancelled_within(expiring, WITHIN_A_HEARTBEAT_S)
    assert get_registry().events(expiring)[-1].reason == "expired before it started"
    # when a client applies a job through Flower with a payload of the wrong type
    apply = f"http://127.0.0.1:{port}/api/task/async-apply/trainq.probe"
    jobs = len(get_registry().list(limit=100))
    status, body = http_post(apply, {"kwargs": {"seconds": "soon"}})
    # then it gets 400 and the validation message naming the field, and nothing is recorded
    assert status == 400 and "seconds" in body and "probe" in body, (status, body)
    assert len(get_registry().list(limit=100)) == jobs
    # when the payload is valid, then the job Flower sent runs on the freed process
    status, body = http_post(apply, {"kwargs": {}})
    assert status == 200, body
    quick = json.loads(body)["task-id"]
    wait_for(lambda: state(quick) is JobState.SUCCEEDED, 20, message="the job applied in Flower runs")
    # and each revoked job is cancelled in the registry and REVOKED for Celery, none ran to its end
    for job_id in (running, waiting, later, expiring):
        assert state(job_id) is JobState.CANCELLED
        assert "end" not in notes(job_id), f"{job_id} ran to its end"
        assert AsyncResult(job_id, app=app).state == "REVOKED"
    assert notes(waiting) == notes(expiring) == []
    print(f"running job recorded cancelled {took:.2f}s after Flower's terminate")


def flower_state(port: int, job_id: str) -> str | None:
    """The state Flower's event state has for ``job_id`` (None before its first event)."""
    status, body = http_get(f"http://127.0.0.1:{port}/api/task/info/{job_id}", AUTH)
    return json.loads(body).get("state") if status == 200 else None


def test_jobs_cancelled_with_trainq_cancel_show_revoked_in_flower(workers: Workers, tmp_path: Path) -> None:
    # given Flower, one probe worker process busy with a long job, and a job waiting behind it
    port = start_stack(tmp_path, workers)
    running, waiting = submit("probe", {"seconds": 60}), submit("probe", {"seconds": 60})
    wait_for(lambda: flower_state(port, running) == "STARTED", 20, 0.2, message="Flower: job started")
    # when the user cancels both with `trainq cancel`
    for job_id in (running, waiting):
        result = run_cli("cancel", job_id)
        assert result.returncode == 0, result.stderr
    # then Flower shows each REVOKED once the worker stops or drops it, not STARTED forever
    revoked = (running, waiting)
    wait_for(
        lambda: all(flower_state(port, j) == "REVOKED" for j in revoked), 20, 0.2, message="Flower: revoked"
    )


@pytest.mark.rabbitmq
def test_flower_on_rabbitmq_counts_queues_and_revokes(
    workers: Workers,
    tmp_path: Path,
    amqp_env: dict[str, str],  # noqa: F811
) -> None:
    # given RabbitMQ as the broker (no management plugin), a queue of this test's own (RabbitMQ is
    # shared), Flower and a probe worker on it busy with a long job
    queue = f"probe-{uuid.uuid4().hex[:8]}"
    try:
        port = start_stack(tmp_path, workers, queue, env=amqp_env)
        calls = [f"submit('probe', {{'seconds': {s}}}, queue={queue!r})" for s in (60, 60, 0)]
        running, *waiting = submit_elsewhere(amqp_env, calls)
        wait_for(lambda: state(running) is JobState.RUNNING, 20, message="first job running")
        # then Flower counts the two waiting messages and shows the Broker page
        assert wait_for(lambda: queue_lengths(port).get(queue) == 2, 10, 0.2, message="2 waiting in Flower")
        status, page = http_get(f"http://127.0.0.1:{port}/broker", AUTH)
        assert status == 200 and queue in page
        # when Flower revokes a waiting job, then the running one with terminate: both end cancelled
        for job_id, terminate in ((waiting[0], "false"), (running, "true")):
            revoke = f"http://127.0.0.1:{port}/api/task/revoke/{job_id}?terminate={terminate}"
            assert http_post(revoke)[0] == 200
            cancelled_within(job_id, WITHIN_A_HEARTBEAT_S)
        # and the worker moves on to the job nobody revoked
        wait_for(lambda: state(waiting[1]) is JobState.SUCCEEDED, 20, message="last job done")
        assert "end" not in notes(running) and notes(waiting[0]) == []
    finally:
        workers.stop_all()
        with Connection(AMQP) as connection:
            connection.default_channel.queue_delete(queue)
