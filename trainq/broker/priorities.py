"""Messages a plain Celery client sent to a Redis broker with Celery's own priority options.

trainq's Redis transport keeps a queue's messages in one list per priority step 0-9 (``training``,
``training:1`` ... ``training:9``). A client that kept Celery's default transport options puts a
message of priority 1-9 in ``training\\x06\\x163``, ``...6`` or ``...9`` instead, which no trainq
worker reads: the job would wait there, unseen, forever. Each worker's reaper moves such messages
into trainq's list of the same step (``adopt``), and a queue's depth counts them (``waiting``).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

#: kombu's default separator and priority steps for Redis (its ``priority_steps`` less 0, whose
#: list is the queue's own name in both).
KOMBU_SEP, KOMBU_STEPS = "\x06\x16", (3, 6, 9)

#: Most messages one call moves: the rest wait for the next round.
ADOPT_BATCH = 1000


def lists(queue: str) -> list[str]:
    """Where a client with Celery's default options puts ``queue``'s messages of priority 1-9."""
    return [f"{queue}{KOMBU_SEP}{step}" for step in KOMBU_STEPS]


def adopt(client: redis.Redis, queues: Iterable[str], sep: str) -> int:
    """Move the messages of ``queues``' default-option lists, oldest first, to trainq's list of the
    same step (``sep``: trainq's separator); how many were moved."""
    moved = 0
    for queue in queues:
        for step, source in zip(KOMBU_STEPS, lists(queue), strict=True):
            while moved < ADOPT_BATCH and client.rpoplpush(source, f"{queue}{sep}{step}") is not None:
                moved += 1
    return moved


def waiting(client: redis.Redis, queue: str) -> int:
    """How many of ``queue``'s messages wait in its default-option lists."""
    pipe = client.pipeline(transaction=False)
    for name in lists(queue):
        pipe.llen(name)
    return sum(pipe.execute())
