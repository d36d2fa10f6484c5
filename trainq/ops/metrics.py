"""Prometheus metrics: jobs by type and state, queue depth, job durations, retries, dead jobs,
jobs running and waiting per concurrency key.

Counts and depths are read from the registry and the broker at scrape time. Durations,
retries and outcomes are observed when a job finishes (the ``Metrics`` lifecycle plugin, in
the worker or the process that cancelled it, within the finish's one script call) and summed
in one Redis hash, so every worker
process feeds the one exporter that ``trainq metrics --port 9808`` serves.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from threading import Thread
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from trainq.errors import BrokerUnavailable
from trainq.job.lifecycle import Plugin
from trainq.job.record import JobRecord, JobState
from trainq.ops import control
from trainq.store.registry import Effects, Registry, get_registry
from trainq.store.sharing import SharingStore

if TYPE_CHECKING:
    from wsgiref.types import StartResponse
    from wsgiref.types import WSGIApplication as WSGIApp

log = logging.getLogger("trainq.ops.metrics")

DEFAULT_PORT = 9808
#: Upper bounds of the job duration histogram, in seconds: from quick data jobs to day-long training.
DURATION_BUCKETS_S = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, math.inf)
_SEP = "|"


def bucket_label(seconds: float) -> str:
    """The ``le`` label of the smallest duration bucket holding ``seconds``."""
    bound = next(b for b in DURATION_BUCKETS_S if seconds <= b)
    return "+Inf" if bound == math.inf else repr(float(bound))


class Metrics(Plugin):
    """Counts each finished job, its retries (attempts past the first) and its run time, in the
    finish's own round trip.

    A job that ran is counted once, in its duration bucket (``timed``): the finished total adds
    those to the jobs that never started (``finished``). Releases before schema version 4 counted
    a job that ran in both ``finished`` and ``bucket``; the sums stay right with either.
    """

    def finishing(self, record: JobRecord, effects: Effects) -> None:
        """The metric hash's increments for ``record``."""
        key = get_registry().keys.metrics()
        series = f"{record.type}{_SEP}{record.state.value}"
        if record.attempt > 1:
            effects.command("HINCRBY", key, f"retries{_SEP}{record.type}", record.attempt - 1)
        if record.started_at is not None and record.duration_s is not None:
            seconds = max(record.duration_s, 0.0)
            effects.command("HINCRBY", key, f"timed{_SEP}{series}{_SEP}{bucket_label(seconds)}", 1)
            effects.command("HINCRBYFLOAT", key, f"sum{_SEP}{series}", seconds)
        else:
            effects.command("HINCRBY", key, f"finished{_SEP}{series}", 1)


class TrainqCollector(Collector):
    """Reads trainq's counters at each scrape (a few Redis round trips, independent of job count)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        """Every trainq metric family, read now."""
        yield from self._counts()
        yield from self._limits()
        yield from self._observations()

    def _counts(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("trainq_jobs", "Jobs in each state, by job type.", labels=["type", "state"])
        for job_type, counts in self.registry.type_counts().items():
            for state in JobState:
                jobs.add_metric([job_type, state.value], counts.get(state.value, 0))
        yield jobs
        per_queue = self.registry.queue_counts()
        queue_jobs = GaugeMetricFamily(
            "trainq_queue_jobs", "Jobs in each state, by queue.", labels=["queue", "state"]
        )
        for queue, counts in per_queue.items():
            for state in JobState:
                queue_jobs.add_metric([queue, state.value], counts.get(state.value, 0))
        yield queue_jobs
        depth = GaugeMetricFamily(
            "trainq_queue_depth", "Messages waiting in each broker queue.", labels=["queue"]
        )
        for queue, waiting in control.queue_depths(per_queue).items():
            depth.add_metric([queue], waiting)
        yield depth
        dead = sum(counts.get(JobState.DEAD.value, 0) for counts in per_queue.values())
        yield GaugeMetricFamily(
            "trainq_dead_jobs", "Jobs that failed their last attempt (see trainq dead).", value=dead
        )

    def _limits(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "trainq_limit_running", "Jobs holding a slot of each concurrency key.", labels=["key"]
        )
        waiting = GaugeMetricFamily(
            "trainq_limit_waiting",
            "Jobs parked for each concurrency key (see trainq limits).",
            labels=["key"],
        )
        for use in SharingStore(self.registry.client, self.registry.keys).uses():
            running.add_metric([use.key], use.running)
            waiting.add_metric([use.key], use.waiting)
        yield from (running, waiting)

    def _observations(self) -> Iterator[Metric]:
        raw: dict[bytes, bytes] = self.registry.client.hgetall(self.registry.keys.metrics())
        finished = CounterMetricFamily(
            "trainq_jobs_finished", "Jobs that reached a finished state.", labels=["type", "state"]
        )
        retries = CounterMetricFamily(
            "trainq_job_retries", "Attempts past the first, counted when the job finishes.", labels=["type"]
        )
        ended: dict[tuple[str, str], int] = defaultdict(int)
        buckets: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        sums: dict[tuple[str, str], float] = defaultdict(float)
        for field, value in sorted(raw.items()):
            kind, *labels = field.decode().split(_SEP)
            if kind == "retries":
                retries.add_metric(labels, int(value))
            elif kind == "sum":
                sums[labels[0], labels[1]] = float(value)
            else:  # a ``timed`` field counts a finish and its bucket (see ``Metrics``)
                if kind in ("finished", "timed"):
                    ended[labels[0], labels[1]] += int(value)
                if kind in ("bucket", "timed"):
                    buckets[labels[0], labels[1]][labels[2]] += int(value)
        for series, count in sorted(ended.items()):
            finished.add_metric(list(series), count)
        durations = HistogramMetricFamily(
            "trainq_job_duration_seconds",
            "Run time of finished jobs (last attempt).",
            labels=["type", "state"],
        )
        for series, counts in sorted(buckets.items()):
            cumulative, total = [], 0
            for bound in DURATION_BUCKETS_S:
                label = bucket_label(bound)
                total += counts.get(label, 0)
                cumulative.append((label, total))
            durations.add_metric(list(series), cumulative, sum_value=sums[series])
        yield from (finished, retries, durations)


def exporter_app(registry: Registry) -> WSGIApp:
    """The ``/metrics`` WSGI app: Prometheus text, or 503 naming what is down (broker or registry)."""
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(TrainqCollector(registry))
    prometheus = make_wsgi_app(metrics)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            body: Iterable[bytes] = prometheus(environ, start_response)
            return body
        except (BrokerUnavailable, redis.RedisError) as exc:
            if not isinstance(exc, BrokerUnavailable):
                exc = BrokerUnavailable(registry.url, str(exc), "registry")
            log.warning("metrics scrape failed: %s", exc)
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5")],
            )
            return [f"trainq metrics unavailable: {exc}\n".encode()]

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_exporter(address: str, port: int, registry: Registry | None = None) -> tuple[WSGIServer, Thread]:
    """Serve ``/metrics`` on ``address:port`` from a background thread; returns the server and thread."""
    server = make_server(
        address, port, exporter_app(registry or get_registry()), ThreadingWSGIServer, _QuietHandler
    )
    thread = Thread(target=server.serve_forever, name="trainq-metrics", daemon=True)
    thread.start()
    log.info("trainq metrics on http://%s:%s/metrics", address, port)
    return server, thread
