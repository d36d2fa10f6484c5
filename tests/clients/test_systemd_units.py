"""The systemd units run as systemd would run them: each ``ExecStart`` line executed with the
environment of its ``EnvironmentFile=`` lines (deploy/systemd/trainq.env.example, pointed at the
test Redis) and nothing else, from a ``WorkingDirectory`` that is not the checkout; only the
install path (/opt/trainq/venv/bin) becomes this Python's and Flower's port a free one.

Then the worker answers the liveness probe of the compose file and Kubernetes and runs a job,
Beat holds the schedule lock, Flower answers on 127.0.0.1 (401, and 200 with the credentials),
and each stops on the unit's ``KillSignal``.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import redis

from tests.clients.documented import UNIT_BIN, compose_commands
from tests.fixtures import ROOT, Process, Processes, free_port, wait_for
from tests.integration.test_monitoring import http_get
from trainq import JobState, get_registry
from trainq.celery import app
from trainq.ops.control import submit
from trainq.settings import get_settings

SYSTEMD = ROOT / "deploy" / "systemd"
#: The worker unit's instance (its queue): command's pool imports no ML library, so it starts fast.
INSTANCE = "command"
UNITS = {"worker": "trainq-worker@.service", "beat": "trainq-beat.service", "flower": "trainq-flower.service"}
FLOWER_AUTH = ("admin", "unit-test-password")


def unit(name: str) -> dict[str, list[str]]:
    """The ``[Service]`` settings of a unit, each key with all its values."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in (SYSTEMD / name).read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value.replace("%i", INSTANCE))
    return settings


def environment_files(tmp: Path) -> dict[str, str]:
    """The files the units read, as deploy/README.md has the operator write them."""
    example = (SYSTEMD / "trainq.env.example").read_text()
    assert "TRAINQ_BROKER_URL=redis://" in example and "TRAINQ_HOME=/var/lib/trainq" in example
    values = {
        "TRAINQ_BROKER_URL": get_settings().broker(),
        "TRAINQ_HOME": str(tmp / "var"),
        "TRAINQ_ARTIFACTS": str(tmp / "var" / "artifacts"),
    }
    lines = []
    for line in example.splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if key in values else line)
    return {
        "/etc/trainq/trainq.env": "\n".join(lines),
        "/etc/trainq/flower.env": f"FLOWER_BASIC_AUTH={':'.join(FLOWER_AUTH)}",
    }


def read_env(text: str) -> dict[str, str]:
    """``KEY=value`` lines as systemd reads them (comments and blank lines skipped)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def start_unit(name: str, tmp: Path, files: dict[str, str], port: int) -> Process:
    """Start the unit's ExecStart in its environment (PATH and PYTHONPATH for this checkout only)."""
    service = unit(name)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": str(tmp)}
    for entry in service.get("EnvironmentFile", []):
        optional, path = entry.startswith("-"), entry.lstrip("-")
        assert path in files or optional, f"{name} needs {path}, which the docs do not say how to write"
        env.update(read_env(files.get(path, "")))
    (exec_start,) = service["ExecStart"]
    assert exec_start.startswith(UNIT_BIN), exec_start
    argv = shlex.split(exec_start.replace(UNIT_BIN, f"{Path(sys.executable).parent}/"))
    argv = [a.replace("--port=5555", f"--port={port}") for a in argv]
    workdir = tmp / "var"
    workdir.mkdir(exist_ok=True)
    (working_directory,) = service["WorkingDirectory"]
    assert working_directory == "/var/lib/trainq"
    return Process(argv, tmp / f"{name}.log", env, cwd=workdir, inherit_env=False)


def liveness_probe(queue: str) -> list[str]:
    """The compose file's health check of ``queue``'s worker, ``$HOSTNAME`` filled in."""
    (probe,) = (c for c in compose_commands() if "ping" in c.argv and f"{queue}@$HOSTNAME" in c.argv)
    return list(probe.with_values({"$HOSTNAME": socket.gethostname()}).argv)


def test_systemd_units_start_a_worker_beat_and_flower_that_answer(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    # given the environment files written as deploy/README.md says, pointed at the test Redis
    files = environment_files(tmp_path)
    port = free_port()
    running = Processes(tmp_path)
    try:
        # when each unit's ExecStart runs
        for name in UNITS.values():
            running.started.append(start_unit(name, tmp_path, files, port))
        worker, beat, flower = running.started
        node = f"{INSTANCE}@{socket.gethostname()}"
        # then the worker answers the probe of the compose file and Kubernetes, by its node name
        wait_for(lambda: app.control.ping([node], timeout=0.5) or not worker.alive(), 60, message="worker up")
        probe = liveness_probe(INSTANCE)
        answer = subprocess.run([sys.executable, "-m", *probe], capture_output=True, text=True, timeout=60)
        assert answer.returncode == 0 and "pong" in answer.stdout, answer.stdout + answer.stderr
        # and runs a job of its queue
        job_id = submit("command", {"command": "echo from systemd"})
        wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 60, message="job ran")
        assert get_registry().get(job_id).worker == node
        # and Beat holds the schedule lock
        lock = app.conf.redbeat_lock_key
        wait_for(lambda: redis_client.exists(lock) or not beat.alive(), 30, message="Beat holds the lock")
        # and Flower answers on 127.0.0.1 only with the unit's credentials
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: http_get(url)[0] or not flower.alive(), 30, 0.2, message="Flower answers")
        assert http_get(url)[0] == 401
        assert http_get(url, FLOWER_AUTH)[0] == 200
        for process in running.started:
            assert process.alive(), process.output()
        # when systemd stops them with the units' KillSignal (SIGTERM to the main process)
        for name, process in zip(UNITS.values(), running.started, strict=True):
            assert unit(name)["KillSignal"] == ["SIGTERM"]
            process.terminate()
        # then each exits by itself within the unit's grace period
        for process in running.started:
            assert process.popen.wait(30) in (0, -signal.SIGTERM), process.output()
    finally:
        running.stop_all()
