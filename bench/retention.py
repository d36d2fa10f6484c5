"""Case 8: retention at capacity. ``retention_records`` jobs are recorded through the real write
path (``Registry.create_many``, then the finish transition script, pipelined ``BATCH`` at a time),
Redis memory per finished job is measured, then the reaper's retention sweep drops them all in
rounds of ``TRAINQ_RETENTION_BATCH``; its cost per round and the memory left are reported.
"""

from __future__ import annotations

import time
from typing import Any

from bench.measure import reset
from bench.report import Row, median
from bench.sizes import Sizes
from bench.systems import QUEUE, BenchEnv

BATCH = 1_000


def _used(client: object) -> int:
    return int(client.info("memory")["used_memory"])  # type: ignore[attr-defined]


def queued_record(job_id: str, now: float, **fields: Any) -> Any:
    """A new bench job's record as a submit writes it."""
    from trainq import JobRecord, JobState

    values = {"type": "bench_noop", "queue": QUEUE, "name": "bench_noop", "priority": 5, "attempt": 1}
    return JobRecord(id=job_id, state=JobState.QUEUED, created_at=now, updated_at=now, **{**values, **fields})


def record_finished(total: int) -> float:
    """Record ``total`` jobs as submitted and then succeeded (1 in 20 failed); return the seconds taken."""
    from trainq import JobState, get_registry
    from trainq.job.record import JobEvent

    registry = get_registry()
    began = time.perf_counter()
    for first in range(0, total, BATCH):
        now = time.time()
        payload = {"dataset": "receipts-v1", "epochs": 1}
        records = [
            queued_record(f"ret{i:08d}", now, tags={"team": "bench"}, payload=payload)
            for i in range(first, min(first + BATCH, total))
        ]
        registry.create_many(records)
        pipe = registry.client.pipeline(transaction=False)
        for n, record in enumerate(records):
            to = JobState.FAILED if n % 20 == 0 else JobState.SUCCEEDED
            fields = {"started_at": now, "finished_at": now, "worker": "bench@host", "result": {"ok": True}}
            event = JobEvent(state=to, at=now, attempt=1, worker="bench@host")
            registry.transition(
                record.id, to, allowed={JobState.QUEUED}, fields=fields, event=event, pipe=pipe
            )
        pipe.execute()
    return time.perf_counter() - began


def sweep_all(batch: int) -> tuple[list[float], int]:
    """Run the retention sweep (everything already past its retention) until nothing is left."""
    from trainq import get_registry

    registry = get_registry()
    rounds: list[float] = []
    dropped = 0
    later = time.time() + 365 * 86400  # every record is past a one-year retention
    while True:
        began = time.perf_counter()
        n = registry.expire(lambda state: 1.0, later, batch)
        rounds.append(time.perf_counter() - began)
        dropped += n
        if n == 0:
            return rounds, dropped


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Memory per finished job at ``retention_records`` jobs, then the sweep's cost per round."""
    from trainq import get_registry
    from trainq.settings import get_settings

    reset(env)
    client = get_registry().client
    empty = _used(client)
    total = sizes.retention_records
    wrote = record_finished(total)
    bytes_each = (_used(client) - empty) / total
    batch = get_settings().retention_batch
    rounds, dropped = sweep_all(batch)
    if dropped != total:
        raise RuntimeError(f"the sweep dropped {dropped} of {total} records")
    left = (_used(client) - empty) / total
    per_round = rounds[:-1] or rounds  # the last round found nothing
    note = (
        f"{total:,} jobs recorded (create_many + finish script, {BATCH:,} per pipeline) in {wrote:.1f}s; "
        f"swept in {len(rounds) - 1} rounds, {sum(rounds):.1f}s in all; {left:.0f} bytes per job left after"
    )
    rows = [
        Row(
            "8 retention",
            env.broker,
            "bytes per finished job (record, events, indexes)",
            {"trainq": bytes_each},
        ),
        Row(
            "8 retention",
            env.broker,
            f"sweep round (<= {min(batch, total):,} records per state), median (ms)",
            {"trainq": 1000 * median(per_round)},
            note=note,
        ),
        Row(
            "8 retention",
            env.broker,
            "records dropped per second by one reaper",
            {"trainq": dropped / sum(rounds)},
            higher_is_better=True,
        ),
    ]
    reset(env)
    return rows
