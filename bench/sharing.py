"""Case 11 (sharing): the drain of keyed no-ops against keyless ones (issue 16).

The queue is filled with no worker running: a ``start`` stamp job, then N no-ops, keyless or spread
over ``KEYS`` concurrency keys of ``max_running`` 2 (each key lets two through; the rest are parked,
and start as their key's jobs end). Then the pool starts; the drain rate is N over the time from the
start job's end to the moment every no-op has succeeded, the same clock for both.
"""

from __future__ import annotations

import time

import redis

from bench.measure import read_stamps, reset, stamp_key
from bench.report import Row, median
from bench.servers import wait_until
from bench.sizes import Sizes
from bench.systems import BenchEnv, Sender, start_workers, stop_workers

#: How many concurrency keys the keyed no-ops are spread over, and each key's limit.
KEYS = 1_000
MAX_RUNNING = 2


def drain_rate(env: BenchEnv, n: int, keys: int) -> float:
    """No-ops per second drained by trainq's pool of 2 processes, spread over ``keys`` keys (0: keyless)."""
    from bench import jobs
    from trainq import JobState, get_registry

    client = redis.Redis.from_url(env.redis_url)
    reset(env)
    key = stamp_key()
    Sender("trainq", env).stamp(key, "start")
    for i in range(n):
        limit = {"key": f"tenant-{i % keys}", "max_running": MAX_RUNNING} if keys else None
        jobs.noop.apply_async(**({"limit": limit} if limit else {}))
    processes = start_workers("trainq", env)
    try:
        began = read_stamps(client, key, 1, timeout=120 + n / 20)["start"].end
        wait_until(
            lambda: get_registry().counts()[JobState.SUCCEEDED] >= n + 1,
            120 + n / 20,
            "every no-op done",
            interval=0.01,
        )
        done = time.time()
    finally:
        stop_workers(processes)
    return n / (done - began)


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Keyless and keyed drain rates (median of ``sizes.repeat`` interleaved runs)."""
    runs: dict[str, list[float]] = {"keyless": [], "trainq": []}
    for _ in range(sizes.repeat):
        runs["keyless"].append(drain_rate(env, sizes.sharing, 0))
        runs["trainq"].append(drain_rate(env, sizes.sharing, KEYS))
    spread = ", ".join(f"{name} {'/'.join(f'{r:.0f}' for r in rates)}" for name, rates in runs.items())
    return [
        Row(
            "11 sharing",
            env.broker,
            f"drain at {KEYS:,} keys (jobs/s)",
            {name: median(rates) for name, rates in runs.items()},
            reference="keyless",
            target=0.8,
            issue=16,
            higher_is_better=True,
            note=f"{sizes.sharing} no-ops over {KEYS:,} keys of max_running {MAX_RUNNING}, 2 processes, "
            f"median of {sizes.repeat} interleaved runs ({spread}); trainq is the keyed drain",
        )
    ]
