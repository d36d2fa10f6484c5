"""Case 5: registry reads at scale. Finished job records are written straight through the
registry in batches (one Redis transaction per batch, no jobs run), then ``trainq stats``,
``trainq list --state failed --limit 50`` and ``trainq show`` are timed at the small and at
the large count, in-process (the command's function) and as CLI processes.
"""

from __future__ import annotations

import os
import subprocess
import time

from bench.measure import reset
from bench.report import Row, median
from bench.servers import PYTHON, ROOT
from bench.sizes import Sizes
from bench.systems import QUEUE, BenchEnv

BATCH = 1_000
COMMANDS = {"stats": ["stats"], "list failed": ["list", "--state", "failed", "--limit", "50"]}


def write_records(start: int, stop: int) -> None:
    """Record finished jobs ``start``..``stop`` (1 in 20 failed, 1 in 20 dead, the rest succeeded)."""
    from trainq import JobRecord, JobState, get_registry

    registry = get_registry()
    now = time.time()
    for first in range(start, stop, BATCH):
        batch = []
        for i in range(first, min(first + BATCH, stop)):
            state = JobState.FAILED if i % 20 == 0 else JobState.DEAD if i % 20 == 1 else JobState.SUCCEEDED
            at = now - (stop - i) * 0.01
            batch.append(
                JobRecord(
                    id=f"rec{i:07d}",
                    type="bench_noop",
                    queue=QUEUE,
                    name="bench_noop",
                    state=state,
                    priority=5,
                    created_at=at,
                    updated_at=at,
                    started_at=at,
                    finished_at=at + 0.001,
                    attempt=1,
                    error=None if state is JobState.SUCCEEDED else "RuntimeError: planned",
                )
            )
        registry.create_many(batch)


def _in_process(args: list[str], calls: int) -> float:
    """Median seconds of the command's function (click, rendering included, no process start)."""
    from click.testing import CliRunner

    from trainq.cli import main

    runner = CliRunner()
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        result = runner.invoke(main, args)
        times.append(time.perf_counter() - began)
        if result.exit_code != 0:
            raise RuntimeError(f"trainq {' '.join(args)} failed: {result.output}")
    return median(times)


def _as_process(args: list[str], runs: int) -> float:
    """Median seconds of ``python -m trainq ARGS`` as a process."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(
            [PYTHON, "-m", "trainq", *args],
            cwd=ROOT,
            env=dict(os.environ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        times.append(time.perf_counter() - began)
    return median(times)


def _measure(total: int, sizes: Sizes) -> dict[str, float]:
    show = ["show", f"rec{total // 2:07d}"]
    timings: dict[str, float] = {}
    for label, args in {**COMMANDS, "show": show}.items():
        timings[f"{label} (ms)"] = 1000 * _in_process(args, sizes.reads)
        if sizes.cli_runs:
            timings[f"{label}, CLI process (ms)"] = 1000 * _as_process(args, sizes.cli_runs)
    return timings


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Time the reads at ``records_small`` and at ``records`` finished jobs; report the growth."""
    from trainq import get_registry

    reset(env)
    client = get_registry().client
    empty = int(client.info("memory")["used_memory"])
    write_records(0, sizes.records_small)
    small = _measure(sizes.records_small, sizes)
    began = time.perf_counter()
    write_records(sizes.records_small, sizes.records)
    wrote = time.perf_counter() - began
    bytes_each = (int(client.info("memory")["used_memory"]) - empty) / sizes.records
    large = _measure(sizes.records, sizes)
    note = (
        f"baseline = the same read at {sizes.records_small:,} jobs; {sizes.records:,} records written in "
        f"{wrote:.1f}s through Registry.create_many ({BATCH:,} per transaction)"
    )
    rows = [
        Row(
            "5 registry",
            env.broker,
            f"{metric} at {sizes.records:,} jobs",
            {"trainq": large[metric], "baseline": small[metric]},
            reference="baseline",
            target=1.5,
            note=note if n == 0 else "",
        )
        for n, metric in enumerate(large)
    ]
    rows.append(
        Row(
            "6 memory",
            env.broker,
            "bytes per finished record (registry only)",
            {"trainq": bytes_each},
            note="synthetic records, one event each (real jobs: bytes per finished job)",
        )
    )
    reset(env)
    return rows
