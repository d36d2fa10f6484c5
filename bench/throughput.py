"""Case 2 (throughput) and case 6 (memory): no-op jobs drained by 2 worker processes.

The queue is filled first with no worker running: a ``start`` stamp job, N no-ops, an
``end`` stamp job. Then the pool starts; the drain rate is N over the time from the start
job's end to the end job's start, so worker start-up is not counted. Redis memory is read
before filling, after filling (bytes per queued job) and once every job is done (bytes per
finished job, what the system keeps after a job ends).
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from bench.measure import read_stamps, reset, stamp_key
from bench.report import Row, median
from bench.servers import wait_until
from bench.sizes import Sizes
from bench.systems import QUEUE, RAW_QUEUE, BenchEnv, Sender, start_workers, stop_workers

#: #13's bound on what trainq keeps per finished job (record, events, result).
FINISHED_BYTES_LIMIT = 1_000


class Drain:
    """One drain of ``n`` no-ops by one system: its rate and Redis bytes per job."""

    def __init__(self, system: str, env: BenchEnv, n: int, rq_class: str = "rq.worker.SimpleWorker") -> None:
        client = redis.Redis.from_url(env.redis_url)
        reset(env)
        sender, key = Sender(system, env), stamp_key()
        empty = _memory(client)
        sender.stamp(key, "start")
        for _ in range(n):
            sender.noop()
        sender.stamp(key, "end")
        self.queued_bytes = (_memory(client) - empty) / (n + 2)
        processes = start_workers(system, env, rq_class)
        try:
            stamps = read_stamps(client, key, 2, timeout=120 + n / 20)
            wait_until(
                _settled(system, env, client, n + 2), 60, f"{system} to finish every job", interval=0.05
            )
        finally:
            stop_workers(processes)
        self.rate = n / (stamps["end"].start - stamps["start"].end)
        self.finished_bytes = (_memory(client) - empty) / (n + 2)


def _memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _settled(system: str, env: BenchEnv, client: redis.Redis, total: int) -> Callable[[], bool]:
    """A check that every job of ``system`` is done and its bookkeeping written."""
    if system == "trainq":
        from trainq import JobState, get_registry

        return lambda: get_registry().counts()[JobState.SUCCEEDED] >= total
    if env.broker == "rabbitmq":
        return lambda: True  # the end stamp ran; nothing to read in RabbitMQ cheaply
    if system == "celery":
        return lambda: client.llen(RAW_QUEUE) == 0 and client.hlen("unacked") == 0
    if system == "rq":
        from rq import Queue
        from rq.registry import StartedJobRegistry

        queue = Queue(QUEUE, connection=client)
        return lambda: queue.count == 0 and StartedJobRegistry(queue=queue).count == 0
    return lambda: (
        client.llen(f"dramatiq:{QUEUE}") == 0
        and not any(client.scard(k) for k in client.scan_iter("dramatiq:__acks__*"))
    )


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Drain rates of every system (median of ``sizes.repeat`` runs, interleaved) and bytes per job."""
    plan = [("trainq", sizes.drain, ""), ("celery", sizes.drain, "")]
    if env.broker == "redis":
        plan += [("rq", sizes.drain, "rq.worker.SimpleWorker"), ("dramatiq", sizes.drain, "")]
    drains: dict[str, list[Drain]] = {}
    for _ in range(sizes.repeat):
        for system, n, rq_class in plan:
            drains.setdefault(system, []).append(Drain(system, env, n, rq_class or "rq.worker.SimpleWorker"))
    rates = {s: median([d.rate for d in runs]) for s, runs in drains.items()}
    spread = ", ".join(f"{s} {'/'.join(f'{d.rate:.0f}' for d in runs)}" for s, runs in drains.items())
    note = f"{sizes.drain} no-ops, 2 processes each, median of {sizes.repeat} interleaved runs ({spread})"
    rows = [
        Row(
            "2 throughput",
            env.broker,
            "drain (jobs/s)",
            rates,
            reference="celery",
            target=0.9,
            issue=13,
            higher_is_better=True,
            note=note,
        )
    ]
    if env.broker == "redis":
        forking = Drain("rq", env, sizes.rq_forking, "rq.worker.Worker").rate if sizes.rq_forking else None
        rows.append(
            Row(
                "2 throughput",
                env.broker,
                "drain vs RQ SimpleWorker",
                rates,
                reference="rq",
                target=2.0,
                issue=13,
                higher_is_better=True,
                note=f"RQ's default forking Worker: {forking:.0f} jobs/s ({sizes.rq_forking} jobs)"
                if forking
                else "",
            )
        )
        last = {s: runs[-1] for s, runs in drains.items()}
        rows.append(
            Row("6 memory", env.broker, "bytes per queued job", {s: d.queued_bytes for s, d in last.items()})
        )
        rows.append(
            Row(
                "6 memory",
                env.broker,
                "bytes per finished job",
                {s: d.finished_bytes for s, d in last.items()},
                reference="celery",
                limit=FINISHED_BYTES_LIMIT,
                issue=13,
                note="kept after a job ends: trainq's record, events and Celery result; "
                "Celery's result; RQ's job hash (until its result TTL)",
            )
        )
    return rows
