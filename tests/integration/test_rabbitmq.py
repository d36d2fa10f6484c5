"""The core smoke test with RabbitMQ (127.0.0.1:5672) as the broker and Redis as the registry."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Queue

from bench.servers import RabbitVhost
from tests.fixtures import Workers, python_elsewhere, run_cli, submit_elsewhere, wait_for
from tests.freezing_proxy import BASIC_PUBLISH, CHANNEL_OPEN, FreezingProxy
from tests.messages import envelope, nested
from trainq import JobState, get_registry
from trainq.broker.quarantine import get_quarantine
from trainq.settings import Settings, celery_config

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


def independent_probes(tmp_path: Path, name: str, n: int) -> tuple[Path, list[dict[str, Any]]]:
    """A pipeline file ``name`` of ``n`` independent probe jobs (one group, sent together), and its jobs."""
    jobs: list[dict[str, Any]] = [
        {"job_id": f"j{i}", "type": "probe", "config": {"seconds": 0}} for i in range(n)
    ]
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"pipeline_id": name, "jobs": jobs}))
    return spec, jobs


def probes_to_a_refused_queue(env: dict[str, str], tmp_path: Path) -> Path:
    """A pipeline file of 3 probe jobs, whose queue ``probe`` is declared classic on ``env``'s broker:
    RabbitMQ refuses trainq's declare of it as a quorum queue."""
    with Connection(env["TRAINQ_BROKER_URL"]) as connection:
        connection.default_channel.queue_declare("probe", durable=True, auto_delete=False)
    return independent_probes(tmp_path, "refused", 3)[0]


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


def test_a_body_nested_too_deep_is_set_aside_and_the_worker_keeps_consuming(
    workers: Workers, amqp_env: dict[str, str]
) -> None:
    # given a probe worker on RabbitMQ
    worker = workers.start("probe", env=amqp_env)
    # when a client without trainq sends bodies nested 100,000 and 900 levels deep (the first too
    # deep for Celery to decode, the second to hand to a pool process), then a valid job
    with Connection(AMQP) as connection:
        channel = connection.default_channel
        for depth in (100_000, 900):
            headers = {**envelope()["headers"], "id": f"deep-{depth}"}
            body = b"[[], " + nested(depth) + b", {}]"
            message = channel.prepare_message(
                body, content_type="application/json", content_encoding="utf-8", headers=headers
            )
            channel.basic_publish(message, exchange="", routing_key="probe")
        # and a message without a content type (its body reaches Celery undecoded)
        headers = {**envelope()["headers"], "id": "no-content-type"}
        channel.basic_publish(channel.prepare_message(b"[[], {}, {}]", headers=headers), routing_key="probe")
    (job_id,) = submit_elsewhere(amqp_env, ["submit('probe', {})"])
    # then the valid job runs on the same worker, and the three messages are in the quarantine
    wait_for(lambda: state_of(job_id) is JobState.SUCCEEDED, timeout=30, message="the valid job done")
    assert worker.alive() and "Unrecoverable error" not in worker.output(), worker.output()[-2000:]
    no_type, *deep = [entry.reason for entry in get_quarantine().newest()]
    assert no_type == "refused by Celery: a task message without a content type"
    assert deep == ["refused by Celery: nested deeper than 64 levels"] * 2
    # and a re-queue refuses what a worker would set aside again, and what was kept in part
    _, shallow, deep = get_quarantine().newest()
    for entry, words in ((deep, "was kept only in part"), (shallow, "is nested deeper than 64 levels")):
        refused = run_cli("quarantine", "requeue", entry.id, env=amqp_env)
        assert refused.returncode == 2 and f"{entry.id} {words}" in refused.stderr, refused


def test_a_message_set_aside_is_requeued_as_it_came(workers: Workers, amqp_env: dict[str, str]) -> None:
    # given a probe worker on RabbitMQ that sets aside a message of a task it does not know
    workers.start("probe", env=amqp_env)
    with Connection(AMQP) as connection:
        channel = connection.default_channel
        message = channel.prepare_message(
            '[[], {"x": "é"}, {}]'.encode(),
            content_type="application/json",
            content_encoding="utf-8",
            headers={**envelope()["headers"], "task": "trainq.no_such_type", "id": "unknown-1"},
        )
        channel.basic_publish(message, exchange="", routing_key="probe")
        # and a queue RabbitMQ will not declare as trainq does (one of that name, other arguments)
        Queue("training", channel=channel).declare()
    kept = wait_for(lambda: next(iter(get_quarantine().newest(1)), None), 30, message="set aside")
    # when it is re-queued to that queue, then it is refused in one line and kept
    odd = run_cli("quarantine", "requeue", kept.id, "--queue", "training", env=amqp_env)
    assert odd.returncode == 3 and odd.stderr.startswith("error: the broker at amqp://guest:***@"), odd
    assert len(odd.stderr.splitlines()) == 1 and get_quarantine().newest() == [kept]
    # and re-queued to its own queue, it comes as it came: the same headers and body, set aside again
    assert run_cli("quarantine", "requeue", kept.id, env=amqp_env).returncode == 0
    again = wait_for(lambda: (e := get_quarantine().newest(1)[0]).id != kept.id and e, 30)
    sent, was = json.loads(again.raw), json.loads(kept.raw)
    assert [sent[k] for k in ("headers", "body")] == [was[k] for k in ("headers", "body")]
    assert get_quarantine().count() == 1


@pytest.fixture
def quorum_env(amqp_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Broker on a private vhost (queues of another type elsewhere cannot clash) with quorum queues."""
    vhost = RabbitVhost()
    try:
        yield {**amqp_env, "TRAINQ_BROKER_URL": vhost.url, "TRAINQ_QUEUE_TYPE": "quorum"}
    finally:
        vhost.stop()


def test_quorum_queues_run_jobs_retries_and_pipelines(
    quorum_env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    # given quorum queues and publisher confirms, and one pool for probe and command jobs
    workers.start("probe", "command", concurrency=2, env=quorum_env)
    # when a job, a job that fails once (its retry is a delayed message) and a two-job pipeline are sent
    plain, flaky = submit_elsewhere(quorum_env, ["submit('probe', {})", "submit('probe', {'fail_times': 1})"])
    path = tmp_path / "p.json"
    jobs = [{"job_id": "a", "command": "true"}, {"job_id": "b", "command": "true", "depends_on": ["a"]}]
    path.write_text(json.dumps({"pipeline_id": "quorum", "jobs": jobs}))
    run = run_cli("pipeline", "run", str(path), "--wait", env=quorum_env)
    # then all of them succeed, the flaky job on its second attempt
    assert run.returncode == 0, run.stdout + run.stderr
    wait_for(
        lambda: state_of(plain) is state_of(flaky) is JobState.SUCCEEDED, timeout=60, message="jobs done"
    )
    assert get_registry().get(flaky).attempt == 2
    # and the queues RabbitMQ holds are quorum queues
    vhost = quorum_env["TRAINQ_BROKER_URL"].rsplit("/", 1)[1]
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type"], capture_output=True, text=True
    ).stdout
    types = dict(line.split() for line in listed.splitlines() if line.strip())
    assert types["probe"] == types["command"] == "quorum", listed


def test_confirms_are_on_and_priorities_kept_only_for_classic_queues() -> None:
    # given the settings for RabbitMQ with classic and with quorum queues (the registry named: without
    # one the settings would start the embedded Redis); when Celery's config is built
    registry = os.environ["TRAINQ_BROKER_URL"]
    classic = celery_config(Settings(broker_url=AMQP, registry_url=registry))
    quorum = celery_config(Settings(broker_url=AMQP, registry_url=registry, queue_type="quorum"))
    # then publisher confirms are on for both, every wait for RabbitMQ's answer is bounded, and only
    # classic queues declare priorities
    options = {"confirm_publish": True, "read_timeout": 30.0}
    assert classic["broker_transport_options"] == quorum["broker_transport_options"] == options
    assert classic["task_queue_max_priority"] == 10 and "task_queue_max_priority" not in quorum
    assert quorum["task_default_queue_type"] == quorum["task_create_missing_queue_type"] == "quorum"


def test_a_pipelines_jobs_are_all_confirmed_by_rabbitmq_when_its_start_returns(
    amqp_env: dict[str, str], tmp_path: Path
) -> None:
    # given a pipeline of 200 independent jobs (one released group: published back to back on a
    # channel of their own, their confirms awaited together) and no worker
    spec, jobs = independent_probes(tmp_path, "wide", 200)
    # when it is started from the CLI
    started = run_cli("pipeline", "run", str(spec), env=amqp_env)
    assert started.returncode == 0, started.stderr
    # then, as soon as the command is back, RabbitMQ holds every message and each job is queued
    with Connection(AMQP) as connection:
        _, held, _ = connection.default_channel.queue_declare("probe", passive=True)
    assert held == len(jobs)
    run = get_registry().list(limit=500)
    assert len(run) == len(jobs) and all(r.state is JobState.QUEUED for r in run)


#: A pipeline start whose connection to RabbitMQ dies on the batch's third publish.
LOST_MID_BATCH = """
import json, sys
import amqp.channel
from trainq import get_registry, run_pipeline_file

publish, published = amqp.channel.Channel._basic_publish, []

def dying(self, *args, **kwargs):
    published.append(1)
    if len(published) == 3:
        self.connection.transport.sock.close()  # as if the broker dropped the connection
    return publish(self, *args, **kwargs)

amqp.channel.Channel._basic_publish = dying
print(run_pipeline_file(sys.argv[1]))
"""


def test_a_pipeline_start_survives_a_connection_lost_in_the_middle_of_its_batch(
    amqp_env: dict[str, str], tmp_path: Path
) -> None:
    # given a pipeline of 5 independent jobs (one batch of confirmed publishes), and a connection that
    # dies on the batch's third publish (after two messages went out, their confirms not yet read)
    spec, jobs = independent_probes(tmp_path, "five", 5)
    # when it is started
    run_id = python_elsewhere(LOST_MID_BATCH, amqp_env, str(spec)).strip()
    # then the start succeeds as a single publish would (kombu reconnects): every job is queued and
    # RabbitMQ holds a message for each (one the broker got twice is dropped by its fence)
    assert run_id.startswith("five-")
    run = get_registry().list(limit=50)
    assert len(run) == len(jobs) and all(r.state is JobState.QUEUED for r in run)
    with Connection(AMQP) as connection:
        _, held, _ = connection.default_channel.queue_declare("probe", passive=True)
    assert held >= len(jobs)


#: Two pipeline starts in one process: the first refused by RabbitMQ (its queue exists with other
#: arguments), the second, of another queue, after it.
AFTER_A_REFUSED_DECLARE = """
import json, sys
from trainq import get_registry, run_pipeline_file

for path in sys.argv[1:]:
    try:
        print("started", run_pipeline_file(path))
    except Exception as exc:
        print("failed", type(exc).__name__)
"""


def test_a_group_sent_after_a_group_whose_queue_was_refused_goes_out(
    quorum_env: dict[str, str], tmp_path: Path
) -> None:
    # given a classic queue "probe" where trainq declares quorum queues (RabbitMQ refuses the declare)
    refused = probes_to_a_refused_queue(quorum_env, tmp_path)
    fine = tmp_path / "fine.json"
    fine.write_text(
        json.dumps(
            {"pipeline_id": "fine", "jobs": [{"job_id": f"c{n}", "command": "true"} for n in range(3)]}
        )
    )
    # when a process starts a pipeline on that queue, then one on another queue
    out = python_elsewhere(AFTER_A_REFUSED_DECLARE, quorum_env, str(refused), str(fine)).splitlines()
    # then the first fails as RabbitMQ said, and the second (a batch on the connection the pool closed
    # after that error) is sent and held by RabbitMQ
    assert out[0] == "failed BrokerRefused" and out[1].startswith("started fine-"), out
    with Connection(quorum_env["TRAINQ_BROKER_URL"]) as connection:
        _, held, _ = connection.default_channel.queue_declare("command", passive=True)
    assert held == 3


#: A pipeline start whose batch gets no confirm in time (py-amqp's wait times out).
UNCONFIRMED = """
import socket, sys
import amqp.channel
from trainq import run_pipeline_file
from trainq.settings import get_settings

wait = amqp.channel.Channel.wait

def silent(self, method=None, *args, timeout=None, **kwargs):
    if timeout == get_settings().broker_timeout_s:
        raise socket.timeout("timed out")
    return wait(self, method, *args, timeout=timeout, **kwargs)

amqp.channel.Channel.wait = silent
try:
    print("started", run_pipeline_file(sys.argv[1]))
except Exception as exc:
    print("failed", type(exc).__name__)
"""


def test_a_batch_the_broker_does_not_confirm_in_time_fails_with_nothing_stored(
    amqp_env: dict[str, str], tmp_path: Path
) -> None:
    # given a pipeline of 3 jobs, and a broker that confirms none of its batch within the confirm timeout
    spec, _ = independent_probes(tmp_path, "three", 3)
    # when it is started, then it fails as an unavailable broker (the batch is not sent again one by one,
    # as after a lost connection) and none of its jobs is stored
    assert python_elsewhere(UNCONFIRMED, amqp_env, str(spec)).strip() == "failed BrokerUnavailable"
    assert get_registry().list(limit=50) == []


def test_a_queue_rabbitmq_refuses_to_declare_is_one_clear_error_with_nothing_stored(
    quorum_env: dict[str, str], tmp_path: Path
) -> None:
    # given a classic queue "probe" where trainq declares quorum queues (RabbitMQ refuses the declare)
    spec = probes_to_a_refused_queue(quorum_env, tmp_path)
    # when a job and a pipeline are sent to it from the CLI
    for args in (["submit", "probe"], ["pipeline", "run", str(spec)]):
        sent = run_cli(*args, env=quorum_env)
        # then each fails with exit 3 and one line naming the refusal, RabbitMQ's reason included
        assert sent.returncode == 3, sent.stdout + sent.stderr
        assert sent.stderr.startswith("error: the broker at amqp://guest:***@"), sent.stderr
        assert "refused the job" in sent.stderr and "PRECONDITION_FAILED" in sent.stderr, sent.stderr
        assert len(sent.stderr.strip().splitlines()) == 1, sent.stderr
    # and no record of either is left behind
    assert get_registry().list(limit=50) == []


#: ``TRAINQ_BROKER_TIMEOUT_S`` of the sends to a broker that stops answering (30 s by default).
FROZEN_BROKER_TIMEOUT_S = 3.0
#: How long such a send may take: the timeout, plus slack for the process's start, its connection and
#: a single send's one retry on a new connection (refused within the connect timeout).
FROZEN_START_BOUND_S = FROZEN_BROKER_TIMEOUT_S + 15


def start_on_a_frozen_rabbitmq(
    amqp_env: dict[str, str], freeze_on: tuple[int, int], *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the CLI with ``args`` on a RabbitMQ (a private vhost, behind a proxy) that stops answering when
    the client sends ``freeze_on``: its connections stay open, nothing more is read or answered (a frozen
    broker, a network partition). The command's result and how long it took; it froze."""
    vhost = RabbitVhost()
    proxy = FreezingProxy(("127.0.0.1", 5672), freeze_on)
    try:
        env = {
            **amqp_env,
            "TRAINQ_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost.name}",
            "TRAINQ_BROKER_TIMEOUT_S": str(FROZEN_BROKER_TIMEOUT_S),
        }
        began = time.monotonic()
        try:
            run = run_cli(*args, env=env, timeout=FROZEN_START_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{args[0]} still waited for the frozen broker after {FROZEN_START_BOUND_S}s")
        took = time.monotonic() - began
    finally:
        proxy.stop()
        vhost.stop()
    assert proxy.frozen.is_set()
    return run, took


def assert_failed_in_time_with_nothing_stored(run: subprocess.CompletedProcess[str], took: float) -> None:
    """``run`` failed on the broker timeout as an unreachable broker (exit 3), nothing stored."""
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.stderr.startswith("error: cannot reach the broker at amqp://guest:***@"), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert FROZEN_BROKER_TIMEOUT_S <= took < FROZEN_START_BOUND_S, took
    assert get_registry().list(limit=50) == []


@pytest.mark.parametrize(
    "freeze_on", [BASIC_PUBLISH, CHANNEL_OPEN], ids=["on-the-first-publish", "on-the-batch-channel-open"]
)
def test_a_pipeline_start_on_a_rabbitmq_that_stops_answering_fails_in_time_with_nothing_stored(
    amqp_env: dict[str, str], tmp_path: Path, freeze_on: tuple[int, int]
) -> None:
    # given a pipeline of 3 jobs (one batch), and a RabbitMQ that stops answering as the batch sends its
    # first message, or opens its channel on the connection just made
    spec, _ = independent_probes(tmp_path, "frozen", 3)
    # when it is started from the CLI
    started, took = start_on_a_frozen_rabbitmq(amqp_env, freeze_on, "pipeline", "run", str(spec))
    # then it fails on the broker timeout as an unreachable broker (exit 3), none of its jobs stored
    assert_failed_in_time_with_nothing_stored(started, took)


@pytest.mark.parametrize("command", ["submit", "pipeline"])
def test_a_single_send_to_a_rabbitmq_that_stops_answering_fails_in_time_with_nothing_stored(
    amqp_env: dict[str, str], tmp_path: Path, command: str
) -> None:
    # given one job sent alone (a submit, or a pipeline of one job), and a RabbitMQ that stops answering
    # as it is published: py-amqp waits for its confirm
    spec, _ = independent_probes(tmp_path, "lone", 1)
    args = ["submit", "probe"] if command == "submit" else ["pipeline", "run", str(spec)]
    # when it is sent from the CLI
    sent, took = start_on_a_frozen_rabbitmq(amqp_env, BASIC_PUBLISH, *args)
    # then it fails on the broker timeout as an unreachable broker (exit 3), nothing stored
    assert_failed_in_time_with_nothing_stored(sent, took)
