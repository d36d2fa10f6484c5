"""The one send path (``trainq.job.send``) against real Redis, RabbitMQ and workers: a record and
its message in one transaction, messages a plain Celery client would send, a released group in a
constant number of round trips, and record-then-publish where the broker is another server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.connection import Connection

from tests.fixtures import Workers, python_elsewhere, submit_elsewhere, wait_for
from tests.integration.test_rabbitmq import amqp_env  # noqa: F401 (a fixture)
from tests.jobs import probe
from trainq import JobState, Pipeline, get_registry
from trainq.broker.transport import envelope_problem
from trainq.celery import app
from trainq.ops.control import cancel, retry, submit
from trainq.pipelines.runs import get_runs
from trainq.settings import get_settings

#: Commands that are no send's: Celery's result consumer (its own connection, every send, trainq or
#: not) and a new connection's set-up (the monitor's own stop).
NOT_SENDS = {"SUBSCRIBE", "UNSUBSCRIBE", "SELECT", "CLIENT", "PING"}


@contextmanager
def monitored(client: redis.Redis) -> Iterator[list[list[str]]]:
    """The commands run on the test database within the block, in order; a script's own are marked
    by a first word ``lua``."""
    seen: list[list[str]] = []
    db = client.connection_pool.connection_kwargs.get("db", 0)
    ready = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            for line in monitor.listen():
                if line["command"].startswith("PING stop-monitor"):
                    return
                if line["db"] == db:
                    words = line["command"].split(" ", 2)
                    seen.append(["lua", *words] if line["client_type"] == "lua" else words)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)  # set once Redis answered MONITOR
    try:
        yield seen
    finally:
        client.execute_command("PING", "stop-monitor")
        thread.join(5)


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times this thread wrote to Redis (a pipeline or MULTI is one write), in ``[0]``.

    Celery's result consumer's (UN)SUBSCRIBE of each message sent from a client process is not
    counted: Celery sends it for every message, raw or trainq's, and not from a worker. Nor is
    redis-py's health check, a PING on a connection idle for a while, nor another thread's command.
    """
    count = [0]
    send = Connection.send_packed_command
    caller = threading.get_ident()

    def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        head = bytes(command[0] if isinstance(command, list) else command)[:32].upper()
        count[0] += b"SUBSCRIBE" not in head and check_health and threading.get_ident() == caller
        send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    yield count
    monkeypatch.undo()


def test_a_new_job_is_recorded_and_queued_in_one_transaction(
    redis_client: redis.Redis, workers: Workers
) -> None:
    # given a process that has sent before (connections open)
    probe.delay()
    # when a job is sent from Python while every command is watched (``trainq submit`` and the web
    # also read the record back, to report a key's refusal)
    with monitored(redis_client) as commands:
        job_id = probe.delay(seconds=0.01).id
    # then its record, index entries and its message (on the priority list kombu reads) are one call
    calls = [c[0] for c in commands if c[0] not in NOT_SENDS | {"lua"}]
    assert calls == ["EVALSHA"]
    pushed = [c for c in commands if c[:2] == ["lua", "lpush"]]
    assert len(pushed) == 1 and pushed[0][2] == "probe:4"  # priority 5 -> kombu's list for 4
    assert any(c[:3] == ["lua", "HSET", f"trainq:job:{job_id}"] for c in commands)
    # and a worker runs it
    workers.start("probe")
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 30, message="job done")


def test_a_job_sent_subscribes_to_its_result_only_once_awaited(
    redis_client: redis.Redis, workers: Workers
) -> None:
    # given a process that has sent before (connections open)
    submit("probe", {})
    # when a job is sent with delay() while every command is watched
    with monitored(redis_client) as commands:
        result = probe.delay(seconds=0.01)
    # then nothing subscribes to its result channel (Celery's backend would, at every send)
    assert not [c for c in commands if "SUBSCRIBE" in c[0].upper()], commands
    # and awaiting it still gets the result, whether it ends before or after the wait starts
    workers.start("probe")
    assert result.get(timeout=30)["attempt"] == 1
    late = probe.delay(seconds=0.01)
    wait_for(lambda: get_registry().get(late.id).state is JobState.SUCCEEDED, 30, message="job done")
    assert probe.AsyncResult(late.id).get(timeout=30)["attempt"] == 1


def test_the_message_is_the_one_celerys_producer_sends(redis_client: redis.Redis, workers: Workers) -> None:
    # given one job sent by trainq and one sent by plain Celery (send_task, no trainq on the way)
    job_id = submit("probe", {"seconds": 0.01}, priority=5)
    app.send_task("trainq.probe", kwargs={"seconds": 0.01}, queue="probe", priority=4)
    celery_raw, trainq_raw = redis_client.lrange("probe:4", 0, -1)  # LPUSH: newest first
    # then both are kombu envelopes with the same fields and Celery's headers
    trainq_msg, celery_msg = json.loads(trainq_raw), json.loads(celery_raw)
    assert envelope_problem(trainq_raw) is None
    assert trainq_msg.keys() == celery_msg.keys()
    # (Celery copies the reprs a caller gives it into the properties as well as the headers)
    assert trainq_msg["properties"].keys() - celery_msg["properties"].keys() == {"argsrepr", "kwargsrepr"}
    # (and trainq's says it has a record: a copy that outlives its record is dropped, never run again)
    assert trainq_msg["headers"].keys() - celery_msg["headers"].keys() == {"trainq_sent"}
    assert celery_msg["headers"].keys() <= trainq_msg["headers"].keys()
    headers = trainq_msg["headers"]
    assert (headers["task"], headers["id"], headers["retries"]) == ("trainq.probe", job_id, 0)
    assert headers["argsrepr"] == "name='probe'"
    # and workers run both (the plain one is recorded as a foreign client's job)
    workers.start("probe")
    wait_for(lambda: get_registry().counts()[JobState.SUCCEEDED] == 2, 30, message="both done")


def test_a_released_group_costs_the_same_round_trips_whatever_its_size(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given pipelines of 3 and 60 independent jobs, validated first
    def started(size: int) -> int:
        pipeline = Pipeline(f"group{size}")
        for n in range(size):
            pipeline.add(f"j{n}", type="probe")
        pipeline.validate()
        with round_trips(monkeypatch) as count:
            run_id = pipeline.run()
        assert len(redis_client.lrange("probe:4", 0, -1)) == size
        assert get_runs().status(run_id).state == "running"
        redis_client.delete("probe:4")
        return count[0]

    started(1)  # connections open
    # when each is started
    small, large = started(3), started(60)
    # then both cost the same few round trips: run, find unrecorded, records + messages, cancel check
    assert small == large <= 6
    assert get_registry().counts()[JobState.QUEUED] == 64


def test_retries_and_requeues_carry_their_fence(registry: Any, workers: Workers) -> None:
    # given a job failing its first two attempts, and a cancelled job retried by hand
    flaky = submit("probe", {"fail_times": 2})
    cancelled = submit("probe", {}, countdown=3600)
    cancel(cancelled)
    retry(cancelled)
    # when a worker runs them
    workers.start("probe")
    done = wait_for(lambda: (r := registry.get(flaky)).state is JobState.SUCCEEDED and r, 60, message="flaky")
    # then each delivery ran on the fence it was sent with
    assert (done.attempt, done.fence) == (3, 2)
    requeued = wait_for(lambda: (r := registry.get(cancelled)).state is JobState.SUCCEEDED and r, 30)
    assert requeued.fence == 1


@pytest.mark.rabbitmq
def test_rabbitmq_records_then_publishes(workers: Workers, amqp_env: dict[str, str]) -> None:  # noqa: F811
    # given a RabbitMQ broker: the records are written first and the messages published after them
    shared = python_elsewhere("from trainq.job import send; print(send.same_redis())", amqp_env)
    assert shared.strip() == "False"
    job_id, flaky = submit_elsewhere(amqp_env, ["submit('probe', {})", "submit('probe', {'fail_times': 1})"])
    code = (
        "from trainq import Pipeline\n"
        "p = Pipeline('rabbit').add('a', type='probe').add('b', type='probe')\n"
        "p.add('c', type='probe', depends_on=['a', 'b'])\n"
        "print(p.run())"
    )
    run_id = python_elsewhere(code, amqp_env).strip()
    # when a worker runs them
    workers.start("probe", env=amqp_env)
    # then every job ends succeeded, the retried one on its second delivery
    wait_for(lambda: get_runs().status(run_id).finished, 60, message="run done")
    assert get_runs().status(run_id).state == "succeeded"
    for job in (job_id, flaky):
        wait_for(lambda j=job: get_registry().get(j).state is JobState.SUCCEEDED, 30, message=job)
    assert get_registry().get(flaky).fence == 1
    assert get_settings().broker() != amqp_env["TRAINQ_BROKER_URL"]  # this process stays on Redis
