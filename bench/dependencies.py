"""Case 3 (dependency latency) and case 4 (pipeline start).

Case 3 runs a 50-job chain and a 100-wide fan-out/fan-in of stamp jobs as a trainq pipeline
and as raw Celery ``chain``/``chord`` on 2-process pools, both up and taking turns run by run;
each job records its start and end, so the latency of a dependency is the dependant's start
minus the end of the job it waited for. Case 4 times validating and starting a 1,000-job
pipeline with no worker running, beside 1,000 raw Celery ``.delay()`` calls (both brokers).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import redis

from bench.measure import Stamp, read_stamps, reset, stamp_key
from bench.report import Row, percentile
from bench.sizes import Sizes
from bench.systems import BenchEnv, Sender, start_workers, stop_workers

RUNS = 3


def _chain(system: str, key: str, length: int) -> None:
    if system == "trainq":
        from trainq.pipelines.pipeline import Pipeline

        pipeline = Pipeline(f"chain-{uuid.uuid4().hex[:6]}")
        for i in range(length):
            pipeline.add(
                f"j{i}",
                type="bench_stamp",
                config={"key": key, "name": f"j{i}"},
                depends_on=[f"j{i - 1}"] if i else [],
            )
        pipeline.run()
        return
    from celery import chain

    from bench.celery_app import stamp

    chain(*(stamp.si(key, f"j{i}") for i in range(length))).apply_async()


def _fan(system: str, key: str, width: int) -> None:
    members = [f"f{i}" for i in range(width)]
    if system == "trainq":
        from trainq.pipelines.pipeline import Pipeline

        pipeline = Pipeline(f"fan-{uuid.uuid4().hex[:6]}").add(
            "root", type="bench_stamp", config={"key": key, "name": "root"}
        )
        for member in members:
            pipeline.add(member, type="bench_stamp", config={"key": key, "name": member}, depends_on=["root"])
        pipeline.add("join", type="bench_stamp", config={"key": key, "name": "join"}, depends_on=members)
        pipeline.run()
        return
    from celery import chain, chord

    from bench.celery_app import stamp

    chain(
        stamp.si(key, "root"), chord([stamp.si(key, m) for m in members], stamp.si(key, "join"))
    ).apply_async()


def _chain_gaps(stamps: dict[str, Stamp], length: int) -> list[float]:
    return [stamps[f"j{i}"].start - stamps[f"j{i - 1}"].end for i in range(1, length)]


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Per-step latency of chains and fan-in/fan-out, trainq pipelines beside raw Celery canvas."""
    client = redis.Redis.from_url(env.redis_url)
    steps: dict[str, list[float]] = {}
    fan_in: dict[str, list[float]] = {}
    fan_total: dict[str, list[float]] = {}
    systems = ("trainq", "celery")
    reset(env)
    processes = [p for system in systems for p in start_workers(system, env)]
    try:
        for system in systems:
            ready = stamp_key()
            Sender(system, env).stamp(ready, "ready")
            read_stamps(client, ready, 1, 60)
        for _ in range(RUNS):
            for system in systems:  # in turn, so the machine's drift falls on both
                key = stamp_key()
                _chain(system, key, sizes.chain)
                steps.setdefault(system, []).extend(
                    _chain_gaps(read_stamps(client, key, sizes.chain, 120), sizes.chain)
                )
                key = stamp_key()
                _fan(system, key, sizes.fan)
                stamps = read_stamps(client, key, sizes.fan + 2, 120)
                last = max(stamps[f"f{i}"].end for i in range(sizes.fan))
                fan_in.setdefault(system, []).append(stamps["join"].start - last)
                fan_total.setdefault(system, []).append(stamps["join"].start - stamps["root"].end)
    finally:
        stop_workers(processes)
    reset(env)
    ms = {"chain": steps, "fan-in": fan_in, "fan": fan_total}

    def row(metric: str, series: str, p: float, target: float | None = None, note: str = "") -> Row:
        values: dict[str, float | None] = {s: 1000 * percentile(v, p) for s, v in ms[series].items()}
        issue = 13 if target else None
        return Row("3 dependencies", env.broker, metric, values, "celery", target, note=note, issue=issue)

    return [
        row(
            "chain step p50 (ms)",
            "chain",
            50,
            1.2,
            f"{RUNS} runs of a {sizes.chain}-job chain and a {sizes.fan}-wide fan-out/fan-in, in turn; "
            "trainq pipeline vs Celery chain/chord; a step = dependant's start minus its dependency's end",
        ),
        row("chain step p99 (ms)", "chain", 99),
        row("fan-in p50 (ms)", "fan-in", 50, note="last member's end to the join's start"),
        row(
            "fan-out/in p50 (ms)",
            "fan",
            50,
            note=f"root end to join start, {sizes.fan} members on 2 processes",
        ),
    ]


def pipeline_start(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Seconds to validate and start a pipeline of ``sizes.pipeline`` jobs, beside as many raw ``delay()``."""
    from trainq.pipelines.pipeline import Pipeline

    n = sizes.pipeline
    reset(env)
    raw = Sender("celery", env)
    raw.noop()  # connect first, as the pipeline's process has
    began = time.perf_counter()
    for _ in range(n):
        raw.noop()
    delays = time.perf_counter() - began
    independent = f"{n} independent jobs"  # #13's row: 1,000 roots against 1,000 delay()
    shapes: dict[str, Any] = {
        independent: lambda i: [],
        f"{n // 10} chains of 10": lambda i: [f"j{i - 1}"] if i % 10 else [],
    }
    Pipeline("warmup").add("a", type="bench_noop").validate()  # imports the job types, as a running app has
    rows: list[Row] = []
    for shape, deps in shapes.items():
        reset(env)
        pipeline = Pipeline(f"start-{uuid.uuid4().hex[:6]}")
        for i in range(n):
            pipeline.add(f"j{i}", type="bench_noop", depends_on=deps(i))
        began = time.perf_counter()
        pipeline.run()
        took = time.perf_counter() - began
        rows.append(
            Row(
                "4 pipeline start",
                env.broker,
                f"validate+start, {shape} (s)",
                {"trainq": took, "celery": delays},
                reference="celery",
                target=1.0,
                issue=13 if shape == independent else None,
                note=f"raw Celery: {n} .delay() calls, no workers" if not rows else "",
            )
        )
    reset(env)
    return rows
