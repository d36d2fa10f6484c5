"""trainq's side: job types with the same bodies, loaded by workers via ``TRAINQ_WORKER_MODULES``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bench import bodies
from trainq import Job, RetryPolicy, job_type

#: No retries: a bench job that fails is a bug to see, not to hide.
NO_RETRY = RetryPolicy(max_retries=0)


class Empty(BaseModel):
    """No payload."""


class Stamp(BaseModel):
    """Where to record start/end times."""

    key: str
    name: str = ""


class Chunk(BaseModel):
    """A chunk of small records to normalise."""

    items: list[dict[str, Any]]


@job_type("bench_noop", input=Empty, queue="bench", retry=NO_RETRY)
def noop(job: Job, payload: Empty) -> None:
    """No-op."""
    bodies.noop()


@job_type("bench_stamp", input=Stamp, queue="bench", retry=NO_RETRY)
def stamp(job: Job, payload: Stamp) -> None:
    """Record this job's start and end times."""
    bodies.stamp(payload.key, payload.name)


@job_type("bench_normalise", input=Chunk, queue="bench", retry=NO_RETRY)
def normalise(job: Job, payload: Chunk) -> dict[str, int]:
    """A ``data`` job: normalise a chunk of records, one job per chunk instead of per item."""
    done = [bodies.normalise(record) for record in payload.items]
    bodies.client().incr("bench:items:done", len(done))
    return {"items": len(done)}
