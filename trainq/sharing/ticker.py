"""A worker's admission ticker: starts parked jobs a rate limit lets start, on time (every
``TICK_S`` at most, sooner when a token is due), since no job's end wakes a key waiting for its rate;
and counts the worker's processes in the capacity of the queues it consumes (a fair queue's default
window, and what says a queue has a live worker)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from trainq.errors import BrokerUnavailable
from trainq.sharing.admission import admit
from trainq.sharing.fair import CAPACITY_EVERY_S, count_capacity

log = logging.getLogger("trainq.sharing.ticker")

#: Longest wait between two admissions of one worker.
TICK_S = 0.1
#: Shortest wait, so a token due "now" that another worker took costs no busy loop.
MIN_TICK_S = 0.005


class Ticker(threading.Thread):
    """Runs ``admit`` every ``TICK_S``, or when the next rate token is due if that is sooner; counts
    ``worker``'s ``processes`` in the capacity of the queues it consumes now (``consuming``: a paused
    queue drops out, a resumed one comes back) every ``CAPACITY_EVERY_S``."""

    def __init__(self, worker: str, consuming: Callable[[], list[str]], processes: int) -> None:
        super().__init__(name="trainq-sharing", daemon=True)
        self.stopped = threading.Event()
        self.worker, self.consuming, self.processes = worker, consuming, processes
        self.counted = float("-inf")

    def run(self) -> None:
        wait, failing = 0.0, False
        while not self.stopped.wait(wait):
            try:
                if time.monotonic() - self.counted >= CAPACITY_EVERY_S:
                    count_capacity(self.worker, self.consuming(), self.processes)
                    self.counted = time.monotonic()
                due = admit()
            except Exception as exc:  # Redis away: try again next tick (logged once); the thread must live on
                if not failing:  # an outage in one line; anything else with its traceback
                    outage = isinstance(exc, redis.RedisError | BrokerUnavailable)
                    log.error("admission failed (%s); retrying every %ss", exc, TICK_S, exc_info=not outage)
                failing, due = True, None
            else:
                if failing:
                    log.info("admission works again")
                failing = False
            wait = TICK_S if due is None else min(TICK_S, max(MIN_TICK_S, due))

    def stop(self) -> None:
        """Stop ticking, and count the worker's processes out of its queues' capacity at once."""
        self.stopped.set()
        try:
            count_capacity(self.worker, self.consuming(), 0)
        except redis.RedisError:  # Redis away: the count expires on its own
            log.warning("could not count %s out of its queues' capacity", self.worker)
