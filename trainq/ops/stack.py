"""The local stack: the broker, one worker pool per queue, Beat, Flower and trainq web, started and
stopped together.

With no ``TRAINQ_BROKER_URL`` the embedded Redis is started (and stopped again only if this
stack started it). Every child runs in its own session, so Ctrl-C in the terminal reaches only
the stack, which then stops each child: SIGTERM to its main pid, a grace period, then SIGKILL
to its whole process group, since a prefork worker's pool can hang on shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from trainq.job.types import job_types
from trainq.ops import embedded
from trainq.ops.flower import flower_launch
from trainq.ops.sockets import listening
from trainq.ops.worker import worker_command
from trainq.settings import Settings
from trainq.store.registry import get_registry

log = logging.getLogger("trainq.ops.stack")
READY_TIMEOUT_S = 90.0
POLL_S = 0.2


@dataclass
class Child:
    """One process of the stack, with the log file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    _out: IO[bytes]

    def alive(self) -> bool:
        """True while the main process runs."""
        return self.popen.poll() is None


def stack_queues() -> list[str]:
    """Every queue some registered job type is routed to (the ``command`` queue included)."""
    return sorted({task.queue or name for name, task in job_types().items()})


def worker_name(queue: str) -> str:
    """The Celery node name of the pool ``trainq up`` starts for ``queue``."""
    return f"{queue}@{socket.gethostname()}"


def live_queues(timeout_s: float = 1.0) -> set[str]:
    """Queues some running worker consumes now (asks the workers over the broker)."""
    from trainq.celery import app

    replies = app.control.inspect(timeout=timeout_s).active_queues() or {}
    return {queue["name"] for queues in replies.values() for queue in queues}


@dataclass
class Stack:
    """The processes of one ``trainq up``; ``start`` then ``stop`` (also after a partial start)."""

    settings: Settings
    queues: list[str] = field(default_factory=list)
    flower_port: int | None = None
    beat: bool = True
    children: list[Child] = field(default_factory=list)
    started_broker: bool = False
    flower_url: str = ""
    web_port: int | None = None
    web_url: str = ""

    @property
    def log_dir(self) -> Path:
        """Where each child's output goes (``<home>/logs``)."""
        return self.settings.home / "logs"

    def start_broker(self) -> None:
        """Start the embedded broker unless a broker is configured or it runs; check it answers.

        Call this before anything touches the Celery app (which starts the embedded Redis by
        itself), so the stack knows whether it started the broker and must stop it.
        """
        if self.settings.broker_url is None:
            self.started_broker = embedded.ensure_running(self.settings.home)
        get_registry().ping()

    def start(self) -> None:
        """Start a worker pool per queue (default: every job type's queue), Beat, Flower and trainq web;
        raises ConfigError, starting nothing, when Flower's or web's port is taken."""
        self.check_ports()
        self.queues = self.queues or stack_queues()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for queue in self.queues:
            self._spawn(f"worker-{queue}", worker_command([queue]))
        if self.beat:
            self._spawn("beat", [sys.executable, "-m", "celery", "-A", "trainq", "beat", "-l", "info"])
        if self.flower_port is not None:
            launch = flower_launch(self.settings, port=self.flower_port)
            self._spawn("flower", launch.argv, launch.env)
            self.flower_url = launch.url
        if self.web_port is not None:
            from trainq.web.server import web_command, web_url  # FastAPI loads only when web is wanted

            self._spawn("web", web_command(self.settings, port=self.web_port))
            self.web_url = web_url(self.settings.web_address, self.web_port)

    def check_ports(self) -> None:
        """Raise ConfigError naming the port and the option that moves it when Flower or trainq web
        could not bind theirs (another ``trainq up`` holds them, say): otherwise the server would die
        with the reason only in its log."""
        servers = (
            ("Flower", self.settings.flower_address, self.flower_port, "flower"),
            ("trainq web", self.settings.web_address, self.web_port, "web"),
        )
        for what, address, port, name in servers:
            if port is not None:
                hint = f"choose another with --{name}-port or TRAINQ_{name.upper()}_PORT, or --no-{name}"
                listening(what, address, port, hint).close()

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        path = self.log_dir / f"{name}.log"
        out = open(path, "ab")  # noqa: SIM115  (closed by stop, when the child is gone)
        popen = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.children.append(Child(name, popen, path, out))
        log.info("started %s (pid %s), log %s", name, popen.pid, path)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> list[str]:
        """Wait until every pool answers a ping; return the queues whose pool never did."""
        from trainq.celery import app

        waiting = {worker_name(q): q for q in self.queues}
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline and not self.exited():
            for reply in app.control.ping(destination=list(waiting), timeout=0.5):
                for name in reply:
                    waiting.pop(name, None)
        return sorted(waiting.values())

    def exited(self) -> list[Child]:
        """Children whose main process has ended."""
        return [child for child in self.children if not child.alive()]

    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM every child, wait up to ``grace_s``, SIGKILL each group; stop a broker started here."""
        grace_s = self.settings.kill_grace_s if grace_s is None else grace_s
        for child in self.children:
            if child.alive():
                child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children:
            try:
                child.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing its process group", child.name, grace_s)
        _kill_groups(self.children)
        if self.started_broker:
            embedded.stop(self.settings.home)
        self.children.clear()


def _kill_groups(children: Iterable[Child]) -> None:
    """SIGKILL what is left of each child's process group, reap the child, close its log."""
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.popen.pid, signal.SIGKILL)
        child.popen.wait()
        child._out.close()
