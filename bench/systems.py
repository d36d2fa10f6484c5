"""The four systems side by side: how each starts its workers and sends a job.

Every worker pool is 2 processes (Celery prefork ``-c 2`` with prefetch 1 and late acks,
RQ 2 worker processes, Dramatiq 2 processes x 8 threads, its default), started here and
stopped by pid. ``BenchEnv`` carries the URLs every process needs.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import PYTHON, Process

QUEUE = "bench"
RAW_QUEUE = "raw"
PROCESSES = 2
#: The pool of 2 processes every case uses, and the one-process pool of the Redis cost case.
POOLS = {"prefork": ["-c", str(PROCESSES), "-P", "prefork"], "solo": ["-P", "solo"]}
CELERY_FLAGS = [
    "--prefetch-multiplier",
    "1",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
    "-l",
    "warning",
]


@dataclass
class BenchEnv:
    """Where a case runs: the bench Redis, the broker (Redis or RabbitMQ), and a log directory."""

    redis_url: str
    broker_url: str
    logs: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def broker(self) -> str:
        """``redis`` or ``rabbitmq``."""
        return "rabbitmq" if self.broker_url.startswith("amqp") else "redis"

    def variables(self) -> dict[str, str]:
        """The environment of every bench process (trainq's settings included)."""
        return {
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_BROKER_URL": self.broker_url,
            "TRAINQ_BROKER_URL": self.broker_url,
            "TRAINQ_REGISTRY_URL": self.redis_url,
            "TRAINQ_KEY_PREFIX": "trainq-bench:",  # not "bench:": the queue "bench" would be a reserved name
            "TRAINQ_HOME": str(self.logs / "home"),
            "TRAINQ_WORKER_MODULES": json.dumps(["bench.jobs"]),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            **self.extra,
        }

    def apply(self) -> None:
        """Set this environment in the current process (before trainq is imported)."""
        os.environ.update(self.variables())


def start_workers(
    system: str, env: BenchEnv, rq_class: str = "rq.worker.SimpleWorker", pool: str = "prefork"
) -> list[Process]:
    """Start ``system``'s pool of 2 worker processes on the bench queue (one with Celery's ``solo``)."""
    name = f"{system}-{uuid.uuid4().hex[:6]}"
    log = env.logs / f"{name}.log"
    variables = env.variables()
    if system in ("trainq", "celery"):
        app, queue = ("trainq", QUEUE) if system == "trainq" else ("bench.celery_app", RAW_QUEUE)
        args = [PYTHON, "-m", "celery", "-A", app, "worker", "-Q", queue, "-n", f"{name}@%h"]
        return [Process([*args, *POOLS[pool], *CELERY_FLAGS], log, variables)]
    if system == "rq":
        args = [PYTHON, "-m", "rq.cli", "worker", "-u", env.redis_url, "-w", rq_class, "-q", QUEUE]
        return [
            Process([*args, "-n", f"{name}-{i}"], env.logs / f"{name}-{i}.log", variables)
            for i in range(PROCESSES)
        ]
    if system == "dramatiq":
        args = [PYTHON, "-m", "dramatiq", "bench.dramatiq_app", "-p", str(PROCESSES), "-t", "8", "-Q", QUEUE]
        return [Process(args, log, variables)]
    raise ValueError(f"unknown system {system!r}")


def stop_workers(processes: list[Process]) -> None:
    """Kill worker processes by pid and group: every job they ran is done and recorded by now."""
    for process in processes:
        process.stop(timeout=0)


class Sender:
    """Sends the no-op and stamp jobs of one system from this process."""

    def __init__(self, system: str, env: BenchEnv) -> None:
        self.system = system
        self.env = env
        if system == "rq":
            import redis
            from rq import Queue

            self.rq_queue = Queue(QUEUE, connection=redis.Redis.from_url(env.redis_url))

    def noop(self) -> Any:
        """Send one no-op job."""
        if self.system == "trainq":
            from bench import jobs

            return jobs.noop.delay()
        if self.system == "celery":
            from bench import celery_app

            return celery_app.noop.delay()
        if self.system == "baseline":  # raw Celery without publisher confirms
            from bench import celery_app

            return celery_app.unconfirmed_noop.delay()
        if self.system == "rq":
            from bench import rq_jobs

            return self.rq_queue.enqueue(rq_jobs.noop)
        from bench import dramatiq_app

        return dramatiq_app.noop.send()

    def stamp(self, key: str, name: str = "") -> Any:
        """Send one job that records its start and end on ``key``."""
        if self.system == "trainq":
            from bench import jobs

            return jobs.stamp.delay(key=key, name=name)
        if self.system == "celery":
            from bench import celery_app

            return celery_app.stamp.delay(key, name)
        if self.system == "rq":
            from bench import rq_jobs

            return self.rq_queue.enqueue(rq_jobs.stamp, key, name)
        from bench import dramatiq_app

        return dramatiq_app.stamp.send(key, name)
