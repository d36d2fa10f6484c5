"""Leases: a running job's claim on its work, renewed by heartbeats from the process running it.

When the heartbeats stop (the process or its host died) the lease expires and a worker's
reaper re-queues the job (``trainq.ops.worker``). When the registry refuses a renewal, the job
was cancelled or recovered elsewhere, so the heartbeat stops the handler.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from trainq.errors import BrokerRefused, BrokerUnavailable
from trainq.job.record import JobRecord
from trainq.store.registry import Registry

log = logging.getLogger("trainq.job.leases")

#: How long the heartbeat thread sleeps before its first job (which wakes it).
IDLE_WAIT_S = 3600.0

#: The pauses between tries of an attempt's outcome while nothing answers (``within_lease``).
FIRST_PAUSE_S, LONGEST_PAUSE_S = 0.1, 1.0

T = TypeVar("T")


def within_lease(write: Callable[[], T], lease_s: float) -> T:
    """``write`` (an attempt's outcome, or a delivery's claim), tried again while the registry or the
    broker does not answer, for up to ``lease_s``: an outage shorter than the lease neither fails nor
    runs again work that was done, nor leaves a claimed job unrun until its lease ends. The write is
    fenced, so a try that landed unseen makes the next one refused (an outcome) or answered as the first
    (the same claim), never doubled. Past the lease, raises as the last try did: the job's lease ran
    out, and a reaper recovers it.
    """
    deadline, pause = time.monotonic() + lease_s, FIRST_PAUSE_S
    while True:
        try:
            return write()
        except (redis.ConnectionError, redis.TimeoutError, BrokerUnavailable) as exc:
            if isinstance(exc, BrokerRefused) or time.monotonic() + pause > deadline:
                raise
            log.warning("a fenced write to the registry failed (%s); trying again", exc)
            time.sleep(pause)
            pause = min(2 * pause, LONGEST_PAUSE_S)


class Heartbeat:
    """Renews ``record``'s lease every ``interval_s`` until stopped.

    ``stoppable`` says the handler runs in a process where SIGTERM raises ``JobStopped``. The
    renewals come from one thread per process (``_Renewer``), so a job shorter than one interval
    costs no thread and no round trip.
    """

    def __init__(
        self, registry: Registry, record: JobRecord, lease_s: float, interval_s: float, stoppable: bool
    ) -> None:
        self.registry = registry
        self.record = record
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.stoppable = stoppable
        self.lost = False
        self._done = False  # set by the job's process, read by the heartbeat thread
        self._failing_since: float | None = None

    def start(self) -> None:
        """Start renewing, the first time one interval from now."""
        _renewer().add(self)

    def stop(self) -> None:
        """Stop renewing (the job finished in this process)."""
        self._done = True
        _renewer().remove(self)

    def renew(self) -> bool:
        """Renew the lease once; False once the job is no longer this attempt's (stop renewing)."""
        if self._done:
            return False
        try:
            held = self.registry.update_running(
                self.record.id, self.record.fence, lease_until=time.time() + self.lease_s
            )
        except redis.RedisError as exc:
            # Keep trying: past the lease, a reaper recovers the job once Redis is back, and
            # the next renewal is refused and stops this attempt.
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning("lease renewal for %s failed (%s); retrying", self.record.id, exc)
            return True
        if self._failing_since is not None:
            log.info(
                "lease renewal for %s works again after %.1fs",
                self.record.id,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        if not held and not self._done:
            if self.registry.find(self.record.id) is None:
                log.warning(
                    "job %s has no record any more (removed, or Redis lost its data); stopping it",
                    self.record.id,
                )
            else:
                log.info("job %s was cancelled or recovered elsewhere; stopping it", self.record.id)
            self.lost = True
            if self.stoppable:  # only where SIGTERM is turned into JobStopped (a prefork child)
                os.kill(os.getpid(), signal.SIGTERM)
            return False
        return True


class _Renewer(threading.Thread):
    """The process's heartbeat thread: renews each running job's lease when it is due."""

    def __init__(self) -> None:
        super().__init__(name="trainq-heartbeat", daemon=True)
        self._due: dict[Heartbeat, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._wake_at = 0.0  # when the thread wakes by itself; a job due later need not wake it
        self._idle_s = IDLE_WAIT_S

    def add(self, beat: Heartbeat) -> None:
        with self._lock:
            # Between jobs the thread wakes every interval, so a job due one interval from now
            # never needs to wake it: no thread switch per job.
            self._idle_s = beat.interval_s
            at = self._due[beat] = time.monotonic() + beat.interval_s
            if at < self._wake_at:
                self._wake_at = at
                self._wake.set()

    def remove(self, beat: Heartbeat) -> None:
        with self._lock:
            self._due.pop(beat, None)

    def run(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                due = [beat for beat, at in self._due.items() if at <= now]
                for beat in due:
                    self._due[beat] = now + beat.interval_s
            for beat in due:
                if not beat.renew():
                    self.remove(beat)
            with self._lock:
                self._wake_at = min(self._due.values(), default=now + self._idle_s)
                self._wake.clear()
            self._wake.wait(max(self._wake_at - time.monotonic(), 0.0))


_renewers: dict[int, _Renewer] = {}
_renewers_lock = threading.Lock()


def _renewer() -> _Renewer:
    """This process's heartbeat thread, started on first use (a forked child starts its own)."""
    with _renewers_lock:
        renewer = _renewers.get(os.getpid())
        if renewer is None:
            renewer = _renewers[os.getpid()] = _Renewer()
            renewer.start()
        return renewer
