"""A worker's admission ticker: starts parked jobs a rate limit lets start, on time (every
``TICK_S`` at most, sooner when a token is due), since no job's end wakes a key waiting for its rate."""

from __future__ import annotations

import logging
import threading

from trainq.sharing.admission import admit

log = logging.getLogger("trainq.sharing.ticker")

#: Longest wait between two admissions of one worker.
TICK_S = 0.1
#: Shortest wait, so a token due "now" that another worker took costs no busy loop.
MIN_TICK_S = 0.005


class Ticker(threading.Thread):
    """Runs ``admit`` every ``TICK_S``, or when the next rate token is due if that is sooner."""

    def __init__(self) -> None:
        super().__init__(name="trainq-sharing", daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        wait, failing = TICK_S, False
        while not self.stopped.wait(wait):
            try:
                due = admit()
            except Exception:  # Redis away: try again next tick (logged once); the thread must live on
                if not failing:
                    log.exception("admission failed; retrying every %ss", TICK_S)
                failing, due = True, None
            else:
                if failing:
                    log.info("admission works again")
                failing = False
            wait = TICK_S if due is None else min(TICK_S, max(MIN_TICK_S, due))
