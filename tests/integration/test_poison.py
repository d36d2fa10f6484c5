"""Poison messages: whatever lands in a queue, the worker sets it aside and keeps consuming."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from click.testing import CliRunner

from tests.fixtures import Workers, wait_for
from tests.messages import poison_shapes
from trainq import JobState, get_registry
from trainq.broker.quarantine import get_quarantine
from trainq.celery import app
from trainq.cli import main
from trainq.inputs.limits import QUARANTINE_MAX_BYTES
from trainq.ops.control import submit


def test_each_poison_shape_is_set_aside_and_the_worker_keeps_consuming(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given one worker on the probe queue
    worker = workers.start("probe")
    shapes = poison_shapes()
    for number, (name, raw) in enumerate(shapes.items(), start=1):
        # when a malformed entry lands in the queue, followed by a valid job
        redis_client.lpush("probe", raw)
        job_id = submit("probe", {})
        # then the valid job runs on the same worker process, and the entry is in the quarantine
        wait_for(
            lambda job_id=job_id: get_registry().get(job_id).state is JobState.SUCCEEDED,
            timeout=20,
            message=f"a valid job after the {name!r} message",
        )
        assert worker.alive(), f"{name}: {worker.output()[-2000:]}"
        assert get_quarantine().count() == number, name
    kept = {e.raw: e for e in get_quarantine().newest()}
    # kombu envelopes Celery refuses (or its strategy, screened: no content type)
    celery_refuses = ("pickle", "yaml", "unknown task", "no headers", "no content type")
    assert set(kept) >= {
        raw[:QUARANTINE_MAX_BYTES] for name, raw in shapes.items() if name not in celery_refuses
    }
    assert all(e.queue == "probe" and e.reason for e in kept.values())
    assert "Unrecoverable error" not in worker.output()
    # and replies on kombu's own queues (remote control), which are not task messages, still get through
    assert app.control.ping(timeout=5)
    # and a user finds them from the CLI
    runner = CliRunner()
    listed = runner.invoke(main, ["quarantine", "list", "--json"])
    reasons = [e["reason"] for e in json.loads(listed.output)]
    assert "not JSON" in reasons and "a body that is not valid base64" in reasons
    assert any("unknown task 'trainq.no_such_type'" in r for r in reasons)
    assert any("pickle" in r for r in reasons) and any("yaml" in r for r in reasons)
    assert f"{len(shapes)} message(s) could not be read or run" in runner.invoke(main, ["dead"]).output
    assert json.loads(runner.invoke(main, ["stats", "--json"]).output)["quarantined"] == len(shapes)
    first = get_quarantine().newest()[-1]
    shown = runner.invoke(main, ["quarantine", "show", first.id])
    assert "not JSON" in shown.output and "not json" in shown.output
    # and a re-queue refuses, keeping it, each message a worker would only set aside again
    for name, words in (
        ("not json", "is not a task message"),
        ("pickle", "has content type 'application/x-python-serialize', which workers refuse"),
        ("headers nested 900 deep", "is nested deeper than 64 levels"),
        ("body not json", "is a JSON task message whose body is not JSON"),
    ):
        entry = kept[shapes[name][:QUARANTINE_MAX_BYTES]]
        refused = runner.invoke(main, ["quarantine", "requeue", entry.id])
        assert refused.exit_code == 2, refused.output
        assert f"{entry.id} {words}: it cannot be re-queued" in refused.output, refused.output
    assert runner.invoke(main, ["quarantine", "drop", first.id]).output.startswith("dropped 1")
    assert runner.invoke(main, ["quarantine", "drop", "--all"]).exit_code == 0
    assert get_quarantine().count() == 0


def test_the_embedded_broker_screens_messages_too(tmp_path: Path, workers: Workers) -> None:
    # given a worker on the embedded broker (no TRAINQ_BROKER_URL)
    from trainq.ops import embedded

    home = tmp_path / "home"
    env = {"TRAINQ_BROKER_URL": "", "TRAINQ_HOME": str(home)}
    worker = workers.start("probe", env=env)
    client = redis.Redis(unix_socket_path=str(embedded.socket_path(home)))
    try:
        # when a body that is not base64 lands in its queue
        client.lpush("probe", poison_shapes()["bad base64"])
        # then it is quarantined there and the worker lives on
        wait_for(lambda: client.llen("trainq:quarantine") == 1, timeout=20, message="quarantined")
        assert worker.alive(), worker.output()[-2000:]
    finally:
        worker.stop()
        embedded.stop(home)
