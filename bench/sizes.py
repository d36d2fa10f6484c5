"""How much work each case does: the issue's sizes, or tiny ones for the CI smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """How much work each case does (the issue's sizes by default, tiny with ``--quick``)."""

    submits: int = 10_000
    handoffs: int = 300
    drain: int = 10_000
    rq_forking: int = 1_000
    #: Drains of each system, interleaved; the median is reported (one drain moves ±15 % between runs here).
    repeat: int = 3
    chain: int = 50
    fan: int = 100
    pipeline: int = 1_000
    records_small: int = 1_000
    records: int = 100_000
    retention_records: int = 1_000_000
    replica_submits: int = 2_000
    items: int = 10_000
    chunk: int = 100
    reads: int = 20
    cli_runs: int = 5
    redis_cost: int = 2_000
    sharing: int = 5_000


QUICK = Sizes(
    submits=50,
    handoffs=5,
    drain=50,
    rq_forking=0,
    repeat=1,
    chain=4,
    fan=4,
    pipeline=20,
    records_small=100,
    records=1_000,
    retention_records=300,
    replica_submits=50,
    items=200,
    chunk=20,
    reads=2,
    cli_runs=0,
    redis_cost=100,
    sharing=100,
)
