"""Case 9: what waiting for a replica costs a submit. A replica of the bench Redis is started and
the record a submit writes (``Registry.create``) is timed with ``TRAINQ_MIN_REPLICAS`` 0 and 1.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from bench.measure import reset
from bench.report import Row, median, percentile
from bench.retention import queued_record
from bench.servers import RedisServer, wait_until
from bench.sizes import Sizes
from bench.systems import BenchEnv


def _create_times(replicas: int, count: int) -> list[float]:
    """Seconds each of ``count`` record writes took with ``replicas`` replicas waited for."""
    from trainq import get_registry

    registry = get_registry()
    registry.min_replicas = replicas
    times = []
    for n in range(count):
        record = queued_record(f"wait{replicas}-{n}", time.time())
        began = time.perf_counter()
        registry.create(record)
        times.append(time.perf_counter() - began)
    return times


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Median and p99 of a submit's record write without and with ``WAIT 1``."""
    from trainq import get_registry

    reset(env)
    port = urlsplit(env.redis_url).port
    replica = RedisServer(env.logs / "replica", "--replicaof", "127.0.0.1", str(port))
    try:
        client = get_registry().client
        wait_until(lambda: client.info("replication")["connected_slaves"] >= 1, 30, "the replica", 0.05)
        alone = _create_times(0, sizes.replica_submits)
        waited = _create_times(1, sizes.replica_submits)
    finally:
        replica.stop()
    note = f"{sizes.replica_submits:,} records each; one replica on loopback; WAIT 1 with a 1,000 ms timeout"
    rows = [
        Row(
            "9 replicas",
            env.broker,
            f"submit record write, {stat} (ms)",
            {"trainq": 1000 * fn(waited), "baseline": 1000 * fn(alone)},
            reference="baseline",
            note=note if stat == "median" else "",
        )
        for stat, fn in (("median", median), ("p99", lambda t: percentile(t, 99)))
    ]
    reset(env)
    return rows
