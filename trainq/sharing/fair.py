"""Fair queues and job types: their jobs all meet the gate, so ready jobs of different keys start in
turns, and a fair queue lets only its *window* of jobs into the broker at once (by default the
processes of the live workers consuming it, so no worker idles while a job waits; one while no worker
counts itself, so a pool scaled to zero shows an autoscaler a job in the broker).

A queue is made fair at runtime (``trainq limits fair QUEUE``, ``trainq.sharing.policy``), a job type
with ``@job_type(..., fair=True)``. A fair job without a key shares its job type's name as its key.
"""

from __future__ import annotations

import time
from typing import Any

from trainq.errors import InvalidInput
from trainq.job.limit import MAX_RUNNING_MAX
from trainq.store.sharing import get_sharing

#: How long a process trusts its copy of the fair queues' names (a change reaches new jobs within it).
CACHE_S = 1.0
#: How long a worker's processes count in its queues' capacity unless it counts them again.
CAPACITY_TTL_S = 15.0
#: How often a worker counts its processes again.
CAPACITY_EVERY_S = 5.0
#: What ``--window`` takes for the live capacity.
AUTO = "auto"

_known: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


def is_fair_queue(queue: str) -> bool:
    """True if ``queue`` is fair, as this process saw the fair queues at most ``CACHE_S`` ago."""
    global _known
    at, queues = _known
    if time.monotonic() - at > CACHE_S:
        queues = frozenset(get_sharing().fair_queues())
        _known = (time.monotonic(), queues)
    return queue in queues


def fair_limit(limit: dict[str, Any] | None, job_type: str) -> dict[str, Any]:
    """A fair job's ``limit`` option: its own (rendered) one, or its job type's name as its key,
    marked fair."""
    return {"key": job_type, **(limit or {}), "fair": True}


def parse_window(text: str) -> int | None:
    """A ``--window`` value: a count of jobs in flight (1 to ``MAX_RUNNING_MAX``), or ``auto`` (None:
    the live capacity); raises InvalidInput."""
    if text.strip().lower() == AUTO:
        return None
    if not text.strip().isdecimal() or not 1 <= int(text) <= MAX_RUNNING_MAX:
        raise InvalidInput(
            f"window {text[:40]!r} is invalid: use a number of jobs from 1 to {MAX_RUNNING_MAX}, or {AUTO}"
        )
    return int(text)


def count_capacity(worker: str, queues: list[str], processes: int) -> None:
    """Count ``worker``'s ``processes`` in the capacity of ``queues`` for the next ``CAPACITY_TTL_S``."""
    get_sharing().add_capacity(worker, queues, processes, CAPACITY_TTL_S)
