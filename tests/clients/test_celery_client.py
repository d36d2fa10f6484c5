"""Jobs sent by a plain Celery app that never imports trainq (another service, another language).

The sender runs in a subprocess from a temporary directory with a PYTHONPATH that leaves the
repository out, so it holds nothing of trainq's: only the task name, the queue and the kwargs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from tests.clients.test_cli_console import trainq
from tests.fixtures import ROOT, Workers, wait_for
from tests.integration.test_rabbitmq import AMQP, amqp_env  # noqa: F401  (a fixture)
from tests.jobs import attempts_key
from trainq import JobState, get_registry
from trainq.broker.quarantine import get_quarantine
from trainq.job.clients import FOREIGN_SOURCE

REDIS = os.environ["TRAINQ_BROKER_URL"]

#: The sender: sends each job of a JSON list, waits for each result, prints what it saw.
SENDER = """
import json, sys
from celery import Celery
broker, backend, queue, jobs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
app = Celery("client", broker=broker, backend=backend)
app.conf.task_queue_max_priority = 10
sent = [
    app.send_task(j["task"], kwargs=j.get("kwargs"), args=j.get("args"), queue=queue or None,
                  task_id=j.get("task_id"), countdown=j.get("countdown"), headers=j.get("headers"),
                  priority=j.get("priority"), soft_time_limit=j.get("soft_time_limit"),
                  time_limit=j.get("time_limit"))
    for j in jobs
]
seen = []
for job, result in zip(jobs, sent):
    if job.get("wait", True):
        try:
            value = result.get(timeout=60)
            seen.append({"id": result.id, "value": value, "state": result.state,
                         "traceback": result.traceback, "children": result.children,
                         "done": result.date_done.isoformat()})
        except Exception as exc:
            error = {"error": str(exc), "type": type(exc).__name__}
            seen.append({"id": result.id, "state": result.state, **error})
    else:
        seen.append({"id": result.id, "state": result.state})
assert "trainq" not in sys.modules and "workers" not in sys.modules
print(json.dumps(seen))
"""


def send(
    tmp_path: Path, broker: str, queue: str, jobs: list[dict[str, Any]], code: str = SENDER
) -> list[dict[str, Any]]:
    """Run the sender (``code``) with ``jobs`` from ``tmp_path``, trainq nowhere on its path; what it
    saw. An empty ``queue`` sends without ``queue=``, as a client that forgot it does."""
    script = tmp_path / "sender.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINQ_")}
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(script), broker, REDIS, queue, json.dumps(jobs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


def delete_queue(queue: str) -> None:
    with Connection(AMQP) as connection:
        connection.default_channel.queue_delete(queue)


JOBS = [
    {"task": "trainq.data", "kwargs": {"dataset": "iris"}, "countdown": 0.5},
    {"task": "trainq.data", "kwargs": {"dataset": "iris", "seeed": 3}},
    {"task": "trainq.data", "kwargs": {"val_fraction": "lots"}},
    {"task": "trainq.data", "args": [1]},
    {"task": "trainq.data", "kwargs": {}, "headers": {"trainq": {"job_nme": "nightly"}}},
    {"task": "trainq.data", "kwargs": {}, "headers": {"trainq": {"cwd": "/root", "result_files": ["*"]}}},
    {
        "task": "trainq.data",
        "kwargs": {"dataset": "wine"},
        "headers": {
            "trainq": {"job_name": "nightly", "tags": {"team": "vision"}, "retry": {"max_retries": 0}}
        },
    },
    {"task": "trainq.nosuch", "kwargs": {}},
    {"task": "trainq.command", "kwargs": {"command": "touch pwned"}},
    # a job id names the job's directories on the worker (its checkpoints): a path is refused
    {"task": "trainq.data", "kwargs": {"dataset": "iris"}, "task_id": "../../escaped"},
    # a work_dir decides where the worker writes (and later unpickles models): only its work area
    {"task": "trainq.data", "kwargs": {"dataset": "iris", "work_dir": "/tmp/trainq-escaped"}},
    {"task": "trainq.data", "kwargs": {"dataset": "iris", "work_dir": "../../trainq-escaped"}},
]


def check_sent_jobs(seen: list[dict[str, Any]], queue: str, worker_log: str, priority: int) -> None:
    """What the sender saw of ``JOBS`` agrees with the registry and the worker."""
    valid, typo, wrong_type, positional, bad_option, file_copy, with_options, unknown_type, shell, path = (
        seen[:10]
    )
    dirs = seen[10:]  # each work_dir outside the work area
    registry = get_registry()
    # the valid job ran: recorded as a Celery client's, on the queue and id it was sent with
    record = registry.get(valid["id"])
    assert valid["state"] == "SUCCESS" and record.state is JobState.SUCCEEDED, (valid, record)
    assert record.tags == {"source": FOREIGN_SOURCE} and record.queue == queue
    assert record.payload["dataset"] == "iris" and record.eta is not None and record.priority == priority
    assert valid["value"] == record.result and record.result["rows"]["train"] > 0
    # the misspelt field, the wrong type and the positional argument are refused: recorded
    # failed with the reason, and the sender's get() raised the same message
    for refused, words in (
        (typo, "unknown field 'seeed' — did you mean 'seed'?"),
        (wrong_type, "val_fraction: Input should be a valid number"),
        (positional, "takes keyword arguments only"),
        (bad_option, "invalid 'trainq' header: unknown field 'job_nme' — did you mean 'job_name'?"),
        (shell, "command jobs from Celery clients without trainq"),
        (file_copy, "invalid 'trainq' header: unknown field 'cwd'"),
        (path, "invalid job id '../../escaped'"),
        *((work_dir, "work_dir: must be inside TRAINQ_HOME/work") for work_dir in dirs),
    ):
        record = registry.get(refused["id"])
        assert record.state is JobState.FAILED and words in (record.error or ""), record
        assert refused["state"] == "FAILURE" and words in refused["error"], refused
        assert refused["type"] == "InvalidInput"
        assert record.tags == {"source": FOREIGN_SOURCE}
    # trainq's own options can come in the ``trainq`` header
    record = registry.get(with_options["id"])
    assert with_options["state"] == "SUCCESS" and record.state is JobState.SUCCEEDED
    assert record.name == "nightly" and record.tags == {"team": "vision", "source": FOREIGN_SOURCE}
    assert record.options["retry"] == {"max_retries": 0}
    # an unknown job type is Celery's: no record, but the sender's get() and the worker log name it
    assert registry.find(unknown_type["id"]) is None and unknown_type["state"] == "FAILURE"
    assert unknown_type["type"] == "NotRegistered" and "trainq.nosuch" in unknown_type["error"]
    assert "Received unregistered task of type 'trainq.nosuch'" in worker_log


def test_a_celery_client_without_trainq_on_redis(workers: Workers, tmp_path: Path) -> None:
    # given a data worker on its own queue
    queue = f"data-{uuid.uuid4().hex[:6]}"
    worker = workers.start(queue, concurrency=2)
    # when a Celery app without trainq sends valid, invalid and unknown jobs to it
    seen = send(tmp_path, REDIS, queue, JOBS)
    # then each one is run or refused, and the sender, the registry and the worker agree
    wait_for(lambda: "trainq.nosuch" in worker.output(), 10, message="unregistered task logged")
    # (on Redis a message without a priority is in the queue's base list: served first, priority 9)
    check_sent_jobs(seen, queue, worker.output(), priority=9)
    # and the result trainq stored with the finish leaves out Celery's empty fields, which the
    # sender read as Celery's own store gives them (no traceback, no children, the time done)
    valid = seen[0]
    stored = json.loads(get_registry().client.get(f"celery-task-meta-{valid['id']}"))
    assert set(stored) == {"status", "result", "date_done", "task_id"}, stored
    assert valid["traceback"] is None and not valid["children"] and valid["done"].startswith("20")


def test_a_celery_client_with_celerys_own_priority_options_on_redis(workers: Workers, tmp_path: Path) -> None:
    # given a data worker on its own queue, and a Celery app without trainq that keeps Celery's
    # default Redis transport options: a priority of 1-9 puts its message in another list
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue, concurrency=2)
    job = {"task": "trainq.data", "kwargs": {"dataset": "iris"}}
    # when it sends jobs of priorities 0, 2, 5 and 9 and waits for their results
    seen = send(tmp_path, REDIS, queue, [{**job, "priority": p} for p in (0, 2, 5, 9)])
    # then each one ran and is recorded, none left waiting in a list no worker reads
    assert [s["state"] for s in seen] == ["SUCCESS"] * 4, seen
    assert all(get_registry().get(s["id"]).state is JobState.SUCCEEDED for s in seen)
    assert not get_registry().client.keys(f"{queue}\x06\x16*")


@pytest.mark.rabbitmq
def test_a_celery_client_without_trainq_on_rabbitmq(
    workers: Workers,
    tmp_path: Path,
    amqp_env: dict[str, str],  # noqa: F811
) -> None:
    # given a data worker on RabbitMQ (registry and results on Redis), on its own queue
    queue = f"data-{uuid.uuid4().hex[:6]}"
    try:
        worker = workers.start(queue, concurrency=2, env=amqp_env)
        # when a Celery app without trainq sends valid, invalid and unknown jobs to it
        seen = send(tmp_path, AMQP, queue, [{**JOBS[0], "priority": 7}, *JOBS[1:]])
        # then each one is run or refused, and the sender, the registry and the worker agree
        wait_for(lambda: "trainq.nosuch" in worker.output(), 10, message="unregistered task logged")
        check_sent_jobs(seen, queue, worker.output(), priority=7)
    finally:
        workers.stop_all()
        delete_queue(queue)


def test_time_limits_that_are_not_positive_are_refused_and_recorded(workers: Workers, tmp_path: Path) -> None:
    # given a data worker on its own queue
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue)
    # when a Celery app without trainq sends jobs with negative or zero time limits, and a good one
    limits = [
        {"soft_time_limit": -5},
        {"time_limit": -5},
        {"soft_time_limit": -5, "time_limit": -3},
        {"time_limit": 0},
        {"soft_time_limit": 60},
    ]
    seen = send(
        tmp_path,
        REDIS,
        queue,
        [{"task": "trainq.data", "kwargs": {"dataset": "iris"}, **given} for given in limits],
    )
    # then each bad one is recorded failed with the reason the sender's get() raised too; none vanished
    words = [
        "invalid soft_time_limit -5",
        "invalid time_limit -5",
        "invalid time_limit -3",
        "invalid time_limit 0",
    ]
    for refused, reason in zip(seen, words, strict=False):
        record = get_registry().get(refused["id"])
        assert record.state is JobState.FAILED and reason in (record.error or ""), record
        assert record.tags == {"source": FOREIGN_SOURCE}
        assert refused["type"] == "InvalidInput" and reason in refused["error"], refused
    # and the job with a positive limit ran
    assert seen[-1]["state"] == "SUCCESS" and get_registry().get(seen[-1]["id"]).state is JobState.SUCCEEDED


def test_a_job_name_with_control_characters_is_refused_and_recorded(workers: Workers, tmp_path: Path) -> None:
    # given a data worker on its own queue
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue)
    # when a Celery app without trainq sends a job whose ``trainq`` header names it with escape codes
    name = "client\x1b[2J\x1b]0;PWNED\x07"
    (refused,) = send(
        tmp_path,
        REDIS,
        queue,
        [{"task": "trainq.data", "kwargs": {"dataset": "iris"}, "headers": {"trainq": {"job_name": name}}}],
    )
    # then it is recorded failed with the reason the sender's get() raised too, under its type's name
    reason = f"job name {name!r} must be 1 to 200 printable characters"
    record = get_registry().get(refused["id"])
    assert record.state is JobState.FAILED and record.error == reason, record
    assert record.name == "data" and record.tags == {"source": FOREIGN_SOURCE}
    assert refused["type"] == "InvalidInput" and reason in refused["error"], refused


def test_text_that_is_not_unicode_is_refused_and_recorded(workers: Workers, tmp_path: Path) -> None:
    # given a data worker on its own queue
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue)
    # when a Celery app without trainq sends lone surrogates (valid JSON: "\\ud800") in a payload
    # value, a payload field name, the job name and a tag of the ``trainq`` header
    sent = [
        ({"kwargs": {"dataset": "ir\ud800is"}}, "dataset is not valid text (lone surrogate)"),
        ({"kwargs": {"dataset": "iris", "s\udfff": 1}}, "the name 's\\udfff' is not valid text"),
        ({"headers": {"trainq": {"job_name": "sur\ud800x"}}}, "job_name is not valid text"),
        ({"headers": {"trainq": {"tags": {"k": "\udfff"}}}}, "tags.k is not valid text"),
    ]
    seen = send(tmp_path, REDIS, queue, [{"task": "trainq.data", "kwargs": {}, **job} for job, _ in sent])
    # then each is recorded failed with the reason, readable, and the sender's get() raised the same
    for refused, (_, reason) in zip(seen, sent, strict=True):
        record = get_registry().get(refused["id"])
        assert record.state is JobState.FAILED and reason in (record.error or ""), record
        assert refused["type"] == "InvalidInput" and reason in refused["error"], refused
        assert record.tags == {"source": FOREIGN_SOURCE} and record.name == "data"
    # and the payload that is not text is kept as its repr, which is
    assert get_registry().get(seen[0]["id"]).payload == {"(payload)": "{'dataset': 'ir\\ud800is'}"}


def test_a_duplicated_first_delivery_runs_once(workers: Workers, tmp_path: Path) -> None:
    # given two probe workers and a job a client sends twice with the same task id
    queue = f"probe-{uuid.uuid4().hex[:6]}"
    workers.start(queue, concurrency=2)
    job_id = uuid.uuid4().hex
    probe = {"task": "trainq.probe", "kwargs": {"seconds": 0.5}, "task_id": job_id}
    # when both copies arrive (as after a broker re-delivery) while neither has a record yet
    seen = send(tmp_path, REDIS, queue, [probe, {**probe, "wait": False}])
    # then the job is recorded once and runs once; the second copy is dropped
    assert seen[0]["state"] == "SUCCESS"
    record = get_registry().get(job_id)
    assert record.state is JobState.SUCCEEDED and record.attempt == 1
    client = get_registry().client
    assert [a.split(b":")[0] for a in client.lrange(attempts_key(job_id), 0, -1)] == [b"start", b"end"]
    assert [e.state for e in get_registry().events(job_id)] == [
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.SUCCEEDED,
    ]


def run_example(name: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` copied to ``tmp_path``, with no trainq code or settings in reach."""
    example = tmp_path / name
    example.write_text((ROOT / "examples" / name).read_text())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINQ_")}
    clean.update({"PYTHONPATH": str(tmp_path), "TIMEOUT_S": "60", **env})
    return subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120
    )


def test_the_documented_examples_run(workers: Workers, tmp_path: Path) -> None:
    # given a data worker
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue)
    # when the Celery example runs
    result = run_example("celery_client.py", tmp_path, {"BROKER_URL": REDIS, "QUEUE": queue})
    # then its job succeeded and its misspelt one was refused with the closest name
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded: {" in result.stdout
    assert "unknown field 'test_fracton' — did you mean 'test_fraction'?" in result.stdout
    refused = result.stdout.split("refused ")[1].split(":")[0]
    assert get_registry().get(refused).state is JobState.FAILED
    # when the raw Redis example (no Celery at all) runs
    result = run_example("raw_redis_client.py", tmp_path, {"REDIS_URL": REDIS, "QUEUE": queue})
    # then its job is recorded and succeeded, as the result it read says
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = result.stdout.split()[1].rstrip(":")
    record = get_registry().get(job_id)
    assert record.state is JobState.SUCCEEDED and record.payload["dataset"] == "wine"
    assert f"job {job_id}: SUCCESS" in result.stdout


def test_jobs_sent_without_a_queue_or_to_a_misspelled_one_are_named_by_stats_and_drained(
    tmp_path: Path, workers: Workers, redis_client: Any
) -> None:
    # given a probe worker that ran a job, and a Celery app without trainq that forgets queue= (once with
    # Celery's own priority options) and misspells a queue: no trainq worker reads either queue
    workers.start("probe")
    assert trainq(tmp_path, "submit", "probe").returncode == 0
    job = {"task": "trainq.data", "kwargs": {"dataset": "iris"}, "wait": False}
    send(tmp_path, REDIS, "", [job, {**job, "priority": 5}])
    send(tmp_path, REDIS, "dtaa", [job])
    try:
        # when the user asks trainq for its stats, from another directory, with the broker's queues
        report = wait_for(
            lambda: (r := stats(tmp_path, "--scan"))["queues"].get("probe", {}).get("live_worker") and r,
            30,
            message="the probe worker counted live",
        )
        shown = trainq(tmp_path, "stats", "--scan", env={"COLUMNS": "250"})
        # then both queues are listed with their messages, read by no worker, beside the one a worker reads
        waiting = {q: (v["pending"], v["live_worker"]) for q, v in report["queues"].items()}
        assert waiting == {"celery": (2, False), "dtaa": (1, False), "probe": (0, True)}, report
        assert report["unrouted"] == 2
        assert set(stats(tmp_path)["queues"]) == {
            "celery",
            "probe",
        }  # without --scan: the queues trainq knows
        assert shown.returncode == 0, shown.stderr
        rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in shown.stdout.splitlines()]
        marks = {row[0]: row[1:4] for row in rows if len(row) > 4}
        assert marks["celery"] == ["2", "", "none"] and marks["dtaa"] == ["1", "", "none"], shown.stdout
        assert marks["probe"] == ["0", "", "live"], shown.stdout
        # and each says what to do: send with queue=, drop with Celery's purge; start a worker or purge
        text = " ".join(shown.stdout.split())
        assert (
            "2 message(s) wait in Celery's default queue 'celery', which no trainq worker reads: a client"
            " sent them without queue= (see docs/clients.md); to drop them: celery -A trainq purge -Q celery"
        ) in text
        assert (
            "1 message(s) wait in queue 'dtaa', which no live worker reads: start one (trainq worker dtaa),"
            " or drop them (trainq purge dtaa)"
        ) in text
        # when the user drops them as it says
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        celery_purge = [sys.executable, "-m", "celery", "-A", "trainq", "purge", "-Q", "celery", "-f"]
        purged = subprocess.run(
            celery_purge, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert purged.returncode == 0, purged.stderr
        assert trainq(tmp_path, "purge", "dtaa", "--yes").returncode == 0
        # then every message of both is gone, those in Celery's priority lists too, and stats is quiet
        after = stats(tmp_path, "--scan")
        assert set(after["queues"]) == {"probe"} and after["unrouted"] == 0, after
        assert "wait in" not in trainq(tmp_path, "stats", "--scan").stdout
    finally:
        redis_client.delete("celery", "dtaa", *redis_client.keys("celery\x06*"))


def stats(cwd: Path, *options: str) -> dict[str, Any]:
    """``trainq stats --json`` with ``options`` as a user runs it from ``cwd``."""
    shown = trainq(cwd, "stats", "--json", *options)
    assert shown.returncode == 0, shown.stderr
    report: dict[str, Any] = json.loads(shown.stdout)
    return report


def test_a_message_set_aside_for_an_unknown_task_is_requeued_and_runs(
    workers: Workers, tmp_path: Path
) -> None:
    # given a worker of the probe queue started without the module that defines the probe job type
    stale = workers.start("probe", name="stale", env={"TRAINQ_WORKER_MODULES": '["workers.data"]'})
    # when a Celery app without trainq sends it a probe job: the worker sets the message aside
    sent = send(tmp_path, REDIS, "probe", [{"task": "trainq.probe", "kwargs": {"seconds": 0}, "wait": False}])
    entry = wait_for(lambda: next(iter(get_quarantine().newest(1)), None), 30, message="set aside")
    assert entry.reason == "unknown task 'trainq.probe'" and get_registry().find(sent[0]["id"]) is None
    # then a re-queue of an id the quarantine does not hold is refused in one line
    refused = trainq(tmp_path, "quarantine", "requeue", "nosuch")
    assert refused.returncode == 2 and "no quarantined message with id 'nosuch'" in refused.stderr, refused
    # and once the queue's worker knows the type, the re-queued message runs as the client sent it
    stale.stop()
    workers.start("probe")
    requeued = trainq(tmp_path, "quarantine", "requeue", entry.id)
    assert requeued.stdout == f"re-queued {entry.id} to queue probe\n", requeued.stderr
    record = wait_for(lambda: (r := get_registry().find(sent[0]["id"])) and r.state.finished and r, 30)
    assert record.state is JobState.SUCCEEDED and record.tags == {"source": FOREIGN_SOURCE}
    assert get_quarantine().count() == 0


def test_a_job_whose_payload_its_type_refuses_is_not_retried(workers: Workers, tmp_path: Path) -> None:
    # given a Celery client's job that failed for a field its type does not know
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue)
    (seen,) = send(
        tmp_path, REDIS, queue, [{"task": "trainq.data", "kwargs": {"dataset": "iris", "batchSize": 4}}]
    )
    failed = get_registry().get(seen["id"])
    assert failed.state is JobState.FAILED, failed
    # when it is retried from the shell
    retried = trainq(tmp_path, "retry", seen["id"])
    # then the retry is refused in one line saying why, and nothing moved
    assert retried.returncode == 2 and retried.stdout == "", retried
    assert retried.stderr.startswith(f"error: job {seen['id']} cannot run as it was sent: ")
    assert "unknown field 'batchSize'" in retried.stderr and retried.stderr.endswith(
        "submit a corrected job\n"
    )
    assert get_registry().get(seen["id"]) == failed
