"""Case 1: submit latency of one call; and enqueue-to-start latency with an idle worker.

Submit calls are interleaved across systems in rounds, and trainq's and raw Celery's jobs
alternate in the enqueue-to-start case (both pools up and idle), so load from other users of the
machine falls on both alike. The enqueue-to-start floor is a bare Redis LPUSH -> BRPOP hand-off
to a waiting process, the least any Redis queue can take. On RabbitMQ the submit baseline is raw
Celery without publisher confirms.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import redis

from bench.measure import parse_stamp, reset, stamp_key
from bench.report import Row, percentile
from bench.servers import PYTHON, Process
from bench.sizes import Sizes
from bench.systems import BenchEnv, Sender, start_workers, stop_workers

ROUNDS = 5
WARMUP = 100
FLOOR_QUEUE = "bench:floor"
#: The systems whose enqueue-to-start jobs alternate, their pools up side by side.
PAIRED = ("trainq", "celery")


def submit_latency(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """p50/p99 of one submit call (trainq ``delay``, raw Celery ``delay``, RQ ``enqueue``), no workers."""
    n = sizes.submits
    # RabbitMQ's baseline: raw Celery without the publisher confirms trainq and raw Celery wait for
    systems = ["trainq", "celery"] + (["rq"] if env.broker == "redis" else ["baseline"])
    senders = {s: Sender(s, env) for s in systems}
    samples: dict[str, list[float]] = {s: [] for s in systems}
    for sender in senders.values():
        for _ in range(min(WARMUP, n)):
            sender.noop()
    for _ in range(ROUNDS):
        for system, sender in senders.items():
            for _ in range(max(1, n // ROUNDS)):
                began = time.perf_counter()
                sender.noop()
                samples[system].append(time.perf_counter() - began)
            reset(env)
    note = f"{n} calls each, interleaved in {ROUNDS} rounds"
    if env.broker == "rabbitmq":
        note += "; raw Celery waits for publisher confirms as trainq does; baseline = raw Celery without"
    rows = [
        Row(
            "1 submit",
            env.broker,
            f"submit p{p} (ms)",
            {s: 1000 * percentile(v, p) for s, v in samples.items()},
            reference="celery",
            target=target,
            issue=13 if target else None,
            note=note if p == 50 else "",
        )
        for p, target in ((50, 1.1), (99, None))
    ]
    total = {s: sum(v) * n / len(v) for s, v in samples.items()}
    rows.append(Row("1 submit", env.broker, f"{n} submits (s)", total, reference="celery"))
    return rows


def start_latency(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """p50/p99 from sending a job to its body starting, one at a time with idle workers."""
    samples = sizes.handoffs
    others = ["rq", "dramatiq", "baseline"] if env.broker == "redis" else []
    client = redis.Redis.from_url(env.redis_url, socket_timeout=None)  # redis-py's 5 s would cut BLPOP short
    results: dict[str, list[float]] = {}
    for systems in (PAIRED, *((s,) for s in others)):
        reset(env)
        processes = [
            p for s in systems for p in (_floor_server(env) if s == "baseline" else start_workers(s, env))
        ]
        try:
            sends = {s: _floor_send(client) if s == "baseline" else Sender(s, env).stamp for s in systems}
            results.update(_handoffs(client, sends, samples))
        finally:
            stop_workers(processes)
    reset(env)
    redis_broker = env.broker == "redis"
    floor = "; baseline = bare LPUSH->BRPOP to a waiting process" if redis_broker else ""
    note = f"{samples} sequential jobs each, trainq's and raw Celery's alternating{floor}"
    ms = {p: {s: 1000 * percentile(v, p) for s, v in results.items()} for p in (50, 99)}
    rows = [
        Row(
            "1 enqueue→start",
            env.broker,
            f"p{p} (ms)",
            ms[p],
            reference="celery",
            target=1.2 if p == 50 else None,
            issue=13 if p == 50 else None,
            note=note if p == 50 else "",
        )
        for p in (50, 99)
    ]
    if redis_broker:
        rows.append(
            Row("1 enqueue→start", env.broker, "p50 vs the floor", ms[50], reference="baseline", target=3.0)
        )
    return rows


def _handoffs(
    client: redis.Redis, sends: dict[str, Callable[[str, str], Any]], samples: int
) -> dict[str, list[float]]:
    """Send ``samples`` stamp jobs of each system, one after another and the systems in turn; each
    latency is its start minus its send."""
    key = stamp_key()
    for send in sends.values():
        send(key, "warmup")
        client.blpop([key], timeout=60)  # the first job also proves the workers are up
    latencies: dict[str, list[float]] = {system: [] for system in sends}
    for i in range(samples):
        for system, send in sends.items():
            sent = time.time()
            send(key, str(i))
            reply = client.blpop([key], timeout=30)
            if reply is None:
                raise TimeoutError(f"{system}'s job {i} did not start within 30 s")
            latencies[system].append(parse_stamp(reply[1]).start - sent)
    return latencies


def _floor_server(env: BenchEnv) -> list[Process]:
    code = "from bench.latency import floor_server; floor_server()"
    return [Process([PYTHON, "-c", code], env.logs / "floor.log", env.variables())]


def _floor_send(client: redis.Redis) -> Callable[[str, str], Any]:
    def send(key: str, name: str) -> None:
        client.lpush(FLOOR_QUEUE, f"{key} {name}")

    return send


def floor_server() -> None:
    """The floor's consumer: BRPOP a request, stamp it (same body as every system's job)."""
    from bench import bodies

    client = redis.Redis.from_url(os.environ[bodies.REDIS_ENV], decode_responses=True)
    while True:
        reply = client.brpop([FLOOR_QUEUE], timeout=5)
        if reply:
            key, name = str(reply[1]).split(" ", 1)
            bodies.stamp(key, name)
