"""Case 7: many small data items. trainq sends them as ``bench_normalise`` data jobs of one
chunk each (a batch task), Dramatiq as one message per item, both on the same Redis with
idle workers waiting; the rate counts from the first send to the last item done.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from bench import bodies
from bench.measure import reset
from bench.report import Row
from bench.servers import wait_until
from bench.sizes import Sizes
from bench.systems import BenchEnv, Sender, start_workers, stop_workers

DONE_KEY = "bench:items:done"


def _rate(system: str, env: BenchEnv, records: list[dict[str, Any]], chunk: int) -> float:
    reset(env)
    client = redis.Redis.from_url(env.redis_url)
    processes = start_workers(system, env)
    try:
        sender = Sender(system, env)
        key = "bench:items:ready"
        sender.stamp(key, "ready")  # the pool is up once this ran
        wait_until(lambda: client.llen(key), 60, f"{system} workers", interval=0.01)
        began = time.time()
        if system == "trainq":
            from bench import jobs

            for first in range(0, len(records), chunk):
                jobs.normalise.delay(items=records[first : first + chunk])
        else:
            from bench import dramatiq_app

            for record in records:
                dramatiq_app.normalise.send(record)
        wait_until(
            lambda: int(client.get(DONE_KEY) or 0) >= len(records),
            120 + len(records) / 50,
            f"{system} to normalise every item",
            interval=0.005,
        )
        return len(records) / (time.time() - began)
    finally:
        stop_workers(processes)


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Items per second: trainq chunks of ``sizes.chunk`` beside Dramatiq's one message per item."""
    records = bodies.sample(sizes.items)
    rates = {s: _rate(s, env, records, sizes.chunk) for s in ("trainq", "dramatiq")}
    reset(env)
    note = (
        f"{sizes.items:,} records; trainq: {sizes.items // sizes.chunk} jobs of {sizes.chunk} items, "
        "prefork -c 2; Dramatiq: 1 message/item, 2 processes x 8 threads; sends included"
    )
    return [
        Row(
            "7 small items",
            env.broker,
            "items/s",
            rates,
            reference="dramatiq",
            target=1.0,
            higher_is_better=True,
            note=note,
        )
    ]
