"""A user who imports only ``trainq.app``: trainq's own job types are registered in that process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures import ROOT, Workers, wait_for
from trainq import JobState

#: Imports the app alone, then sends a misspelt command job and a good one through a signature.
SENDER = """
from trainq import app, PayloadError
assert "trainq.command" in app.tasks, sorted(app.tasks)
try:
    app.signature("trainq.command", kwargs={"comand": "true"}).delay()
except PayloadError as error:
    print("refused:", error, flush=True)
    input()  # the test looks at the broker and the registry before the good send
    print(app.signature("trainq.command", kwargs={"command": "true"}).delay().id)
"""


def test_the_app_alone_knows_trainqs_job_types_and_validates_before_sending(
    tmp_path: Path, registry: Any, redis_client: Any
) -> None:
    # given a process in another directory that imports trainq's app and nothing else of trainq
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER],
        cwd=tmp_path,
        env=os.environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sender.stdout is not None and sender.stdin is not None
    # when it sends a command job with a misspelt field through app.signature(...).delay()
    refusal = sender.stdout.readline()
    # then the send raises the validation error, naming the field, and nothing is sent or recorded
    assert "refused:" in refusal and "unknown field 'comand' — did you mean 'command'?" in refusal, (
        refusal + sender.communicate(timeout=60)[1]
    )
    assert redis_client.keys("*command*") == [] and registry.list() == []
    # and a good payload the same way is recorded queued as it is sent, with no worker running
    out, err = sender.communicate("\n", timeout=60)
    assert sender.returncode == 0, err
    record = registry.get(out.split()[-1])
    assert record.type == "command" and record.state is JobState.QUEUED
    assert redis_client.keys("*command*") != []


#: Imports the app alone, then sends jobs of a worker module's type by name: a signature with a
#: misspelt field, and ``app.send_task`` with a good payload.
BY_NAME = """
from trainq import app, PayloadError
try:
    app.signature("trainq.probe", kwargs={"secnds": 0}).delay()
except PayloadError as error:
    print("refused:", error, flush=True)
print(app.send_task("trainq.probe", kwargs={"seconds": 0}).id)
"""


def test_the_app_alone_knows_the_worker_modules_job_types_and_routes_them_to_their_queue(
    tmp_path: Path, workers: Workers, registry: Any
) -> None:
    # given a probe pool, and a process in another directory that imports trainq's app and nothing
    # else (the probe type is in a worker module, TRAINQ_WORKER_MODULES)
    workers.start("probe")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # when it sends probe jobs by name: a misspelt one through a signature, a good one with send_task
    sent = subprocess.run(
        [sys.executable, "-c", BY_NAME], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    # then the misspelt one is refused in the caller, naming the field
    assert sent.returncode == 0, sent.stderr
    refusal, job_id = sent.stdout.splitlines()
    assert "refused:" in refusal and "unknown field 'secnds'" in refusal, refusal
    # and the good one goes to the probe queue, where its pool runs it (not to the default queue)
    wait_for(lambda: (r := registry.find(job_id)) and r.state is JobState.SUCCEEDED, 30, message="job ran")


def test_celery_call_of_a_worker_modules_job_type_reaches_its_pool(
    tmp_path: Path, workers: Workers, registry: Any
) -> None:
    # given a probe pool
    workers.start("probe")
    # when an operator sends a probe job with Celery's own command line, from another directory
    called = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "trainq",
            "call",
            "trainq.probe",
            "--kwargs",
            '{"seconds": 0}',
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert called.returncode == 0, called.stderr
    # then the job goes to the probe queue, and the pool records and runs it
    job_id = called.stdout.split()[-1]
    wait_for(lambda: (r := registry.find(job_id)) and r.state is JobState.SUCCEEDED, 30, message="job ran")
