"""``trainq up`` as a user runs it: the embedded default, every pool, Beat and Flower, and a
SIGTERM that leaves no process behind (not even the embedded Redis it started).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.fixtures import ROOT, wait_for
from trainq.ops import embedded

pytestmark = pytest.mark.slow
#: Test settings that would point the stack away from the embedded default.
NOT_INHERITED = ("TRAINQ_BROKER_URL", "TRAINQ_WORKER_MODULES", "TRAINQ_ARTIFACTS")


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh TRAINQ_HOME with a short path (the embedded Redis's unix socket lives in it)."""
    path = Path(tempfile.mkdtemp(prefix="tq-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def stack_env(home: Path) -> dict[str, str]:
    """The environment of a user with no broker configured and ``home`` as TRAINQ_HOME (trainq imported
    from this checkout, whatever the directory)."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**env, "TRAINQ_HOME": str(home), "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trainq(home: Path, *args: str, timeout: float = 60, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``python -m trainq ARGS`` in ``cwd`` against the stack of ``home``."""
    return subprocess.run(
        [sys.executable, "-m", "trainq", *args],
        cwd=cwd,
        env=stack_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def finished(home: Path, job_id: str) -> dict[str, Any] | None:
    """The job's record as ``trainq show --json`` prints it, once the job has finished."""
    record: dict[str, Any] = json.loads(trainq(home, "show", job_id, "--json").stdout)
    return record if record["state"] in ("succeeded", "failed", "dead") else None


def alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie waiting to be reaped counts as gone)."""
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def stop_leftovers(up: subprocess.Popen[bytes], descendants: list[int], home: Path) -> None:
    """After a failed test: let ``up`` stop its stack, else kill what this test started, by pid."""
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    for pid in alive(descendants):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if embedded.is_running(home):
        embedded.stop(home)


def http_status(url: str) -> int:
    """The status of a GET, 0 while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status)
    except OSError:
        return 0


def test_up_runs_the_stack_and_sigterm_leaves_no_process_behind(home: Path) -> None:
    # given `trainq up` started in its own process group on a fresh home
    port, web_port = free_port(), free_port()
    log = home / "up.out"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "trainq", "up", "--flower-port", str(port), "--web-port", str(web_port)],
            cwd=ROOT,
            env=stack_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    descendants: list[int] = []
    try:
        wait_for(lambda: "stack up:" in log.read_text() or up.poll() is not None, 120, message="stack up")
        assert up.poll() is None, log.read_text()
        descendants = [p.pid for p in psutil.Process(up.pid).children(recursive=True)]
        # then Flower answers where `up` says it is, and a job runs on the data pool
        assert f"Flower at http://127.0.0.1:{port}/" in log.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=10) as reply:
            assert reply.status == 200
        # and so does trainq web, linked in the same line
        assert f"web at http://127.0.0.1:{web_port}/" in log.read_text()
        web_health = f"http://127.0.0.1:{web_port}/api/v1/health"
        wait_for(lambda: http_status(web_health) == 200, 30, 0.2, message="trainq web answers")
        submitted = trainq(home, "submit", "data", "--config", '{"dataset": "iris"}')
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        record = wait_for(lambda: finished(home, job_id), 60, message="data job finished")
        assert record["state"] == "succeeded", record
        # and the stack is one process per pool plus its pool processes, Beat, Flower and Redis
        commands = [" ".join(psutil.Process(p).cmdline()) for p in descendants]
        for queue in ("command", "data", "detection", "training"):
            assert sum(f"worker -Q {queue} " in c for c in commands) >= 2, commands
        assert any(" beat " in c for c in commands) and any(" flower " in c for c in commands)
        assert any(" web " in c for c in commands)
        redis_pid = int((home / "redis" / "redis.pid").read_text())
        assert alive([redis_pid])
        # when it gets SIGTERM
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()
        # then every process it started is gone, the embedded Redis too
        assert "stack stopped" in log.read_text()
        assert alive([*descendants, redis_pid]) == []
    finally:
        stop_leftovers(up, descendants, home)


@pytest.mark.parametrize("server", ["flower", "web"])
def test_up_on_a_taken_port_says_which_and_starts_nothing(home: Path, server: str) -> None:
    # given something else listening on the port `trainq up` would give Flower (or trainq web)
    ports = {"flower": free_port(), "web": free_port()}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[server]))
        taken.listen()
        # when `trainq up` starts from another directory on the embedded default
        result = trainq(
            home, "up", "--flower-port", str(ports["flower"]), "--web-port", str(ports["web"]), cwd=home
        )
    # then it fails at once with one line naming the port and how to choose another
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stdout, result.stdout + result.stderr
    assert f"127.0.0.1:{ports[server]}" in lines[0] and "already in use" in lines[0], lines
    assert f"--{server}-port or TRAINQ_{server.upper()}_PORT, or --no-{server}" in lines[0], lines
    # and nothing of the stack was started or is left running, not even the embedded Redis
    assert not (home / "logs").exists() and not embedded.is_running(home)
