"""A user who imports only ``trainq.app``: trainq's own job types are registered in that process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
