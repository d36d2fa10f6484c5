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

import redis

from trainq.job.record import JobRecord, JobState
from trainq.store.registry import Registry

log = logging.getLogger("trainq.job.leases")


class Heartbeat(threading.Thread):
    """Renews ``record``'s lease every ``interval_s`` until stopped.

    ``stoppable`` says the handler runs in a process where SIGTERM raises ``JobStopped``.
    """

    def __init__(
        self, registry: Registry, record: JobRecord, lease_s: float, interval_s: float, stoppable: bool
    ) -> None:
        super().__init__(name=f"trainq-heartbeat-{record.id}", daemon=True)
        self.registry = registry
        self.record = record
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.stoppable = stoppable
        self.lost = False
        self._done = threading.Event()

    def run(self) -> None:
        failing_since: float | None = None
        while not self._done.wait(self.interval_s):
            try:
                held = self.registry.transition(
                    self.record.id,
                    JobState.RUNNING,
                    allowed={JobState.RUNNING},
                    fence=self.record.fence,
                    lease_until=time.time() + self.lease_s,
                )
            except redis.RedisError as exc:
                # Keep trying: past the lease, a reaper recovers the job once Redis is back, and
                # the next renewal is refused and stops this attempt.
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("lease renewal for %s failed (%s); retrying", self.record.id, exc)
                continue
            if failing_since is not None:
                log.info(
                    "lease renewal for %s works again after %.1fs",
                    self.record.id,
                    time.monotonic() - failing_since,
                )
                failing_since = None
            if held is None and not self._done.is_set():
                log.info("job %s was cancelled or recovered elsewhere; stopping it", self.record.id)
                self.lost = True
                if self.stoppable:  # only where SIGTERM is turned into JobStopped (a prefork child)
                    os.kill(os.getpid(), signal.SIGTERM)
                return

    def stop(self) -> None:
        """Stop renewing (the job finished in this process)."""
        self._done.set()
