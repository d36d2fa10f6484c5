"""Job states and the job record the registry keeps for every job, with its compact hash encoding.

A record is a Redis hash of JSON values. Since schema version 2 (hash field ``v``) a field at its
default is left out and times are kept to the millisecond; since version 3 a clean run keeps no
events list, and since version 4 neither does a job still on its way to one (``implied_events``);
records of release 95980f0 (no ``v``, every field present, nulls included) read the same. Fields the
previous release's readers require (a rolling deploy runs both) and those the store's scripts read
are always written.
"""

from __future__ import annotations

import json
import time
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class JobState(str, Enum):
    """Where a job is in its life (see DESIGN.md)."""

    DELAYED = "delayed"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"

    @property
    def finished(self) -> bool:
        """True for states a job leaves only by an explicit retry or resume."""
        return self in FINISHED_STATES


FINISHED_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.DEAD, JobState.CANCELLED, JobState.BLOCKED}
)
#: The fence of a record no message carries: written to be ended at once (``JobTask.record_unsent``).
UNSENT = -1

#: States from which ``trainq retry`` may re-queue a job.
RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.DEAD, JobState.CANCELLED, JobState.BLOCKED})
#: States in which a job waits for a delivery to claim it.
WAITING_STATES = frozenset({JobState.DELAYED, JobState.QUEUED, JobState.RETRYING})


class Progress(BaseModel):
    """How far a running job is: ``percent`` from ``step``/``total`` plus free metrics."""

    step: float = 0
    total: float | None = None
    percent: float = 0.0
    metrics: dict[str, Any] = Field(default_factory=dict)
    at: float = Field(default_factory=time.time)


class JobEvent(BaseModel):
    """One recorded transition: the new state, when, on which worker, in which attempt."""

    state: JobState
    at: float
    attempt: int = 0
    worker: str | None = None
    reason: str | None = None

    def encoded(self) -> str:
        """The event as stored: JSON without the fields at their default, the time to the millisecond.

        The field names stay those of release 95980f0, whose readers parse this too.
        """
        return self.model_copy(update={"at": round(self.at, 3)}).model_dump_json(exclude_defaults=True)


class JobRecord(BaseModel):
    """The registry's record of one job; stored as a Redis hash of JSON values."""

    id: str
    type: str
    queue: str
    name: str
    state: JobState
    priority: int
    tags: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    eta: float | None = None
    next_attempt_at: float | None = None
    attempt: int = 0
    fence: int = 0  # the delivery that may run it (a message's ``retries``); UNSENT: none ever will
    failures: int = 0
    recoveries: int = 0
    worker: str | None = None
    progress: Progress | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    exit_code: int | None = None
    artifacts: list[str] = Field(default_factory=list)
    #: ``result_files`` entries that matched nothing when the job succeeded.
    unmatched_result_files: list[str] = Field(default_factory=list)
    #: What ``result_files`` matched but the job's success did not copy, each ``"path: why"``.
    uncollected_result_files: list[str] = Field(default_factory=list)
    pipeline_id: str | None = None
    pipeline_job: str | None = None
    #: The result of the job whose success sent this one through Celery's canvas (chain, link, chord).
    parent_result: Any = None
    #: From a pipeline job's claim, never stored: the specs of the dependants its success alone
    #: releases, whose records and messages its finish writes (``trainq.pipelines.progress``).
    next_specs: dict[str, Any] | None = Field(default=None, exclude=True)

    def to_hash(self) -> dict[str, str]:
        """The record as Redis hash fields (every value JSON-encoded), defaults left out."""
        fields = self.model_dump(mode="json")
        kept = {k: v for k, v in fields.items() if k in ALWAYS_STORED or v != _DEFAULTS.get(k)}
        return encode_fields({**kept, VERSION_FIELD: SCHEMA_VERSION})

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> JobRecord:
        """Parse a record read with HGETALL (any schema version)."""
        return cls.model_validate({k.decode(): json.loads(v) for k, v in raw.items()})

    @property
    def duration_s(self) -> float | None:
        """Seconds from the last start to the end (or to now while running)."""
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


#: The hash field holding the record's schema version; absent in records of release 95980f0.
VERSION_FIELD = "v"
#: The layout this release writes: defaults left out, times to the millisecond (2); a clean run's
#: events read from its record (3); a job's events stored only once it leaves the clean path (4).
SCHEMA_VERSION = 4
#: The first schema version whose jobs on the clean path keep no events list (transition.lua has it too).
IMPLIED_EVENTS_VERSION = 4
#: The hash field set (to ``1``) once a job's events list holds its whole history (schema version 4).
HISTORY_FIELD = "history"
#: The first event's reason of a job sent by a caller (``Registry.create``'s default).
CLEAN_SUBMIT_REASON = "submitted"
#: Fields written even at their default: release 95980f0 requires them (rolling deploys read both
#: ways; its retention sweep reads ``tags``) and the store's scripts read ``state``, ``queue``,
#: ``type``, ``created_at``, ``attempt`` and ``fence``.
ALWAYS_STORED = frozenset(
    {
        "id",
        "type",
        "queue",
        "name",
        "state",
        "priority",
        "tags",
        "created_at",
        "updated_at",
        "attempt",
        "fence",
    }
)
_DEFAULTS: dict[str, Any] = {
    name: field.get_default(call_default_factory=True)
    for name, field in JobRecord.model_fields.items()
    if not field.is_required()
}


def implied_events(record: JobRecord) -> list[JobEvent]:
    """The transitions of a job on the clean path so far (submitted, started on its first attempt,
    succeeded on it), from its record: such a job keeps no events list (see transition.lua)."""
    events = [JobEvent(state=JobState.QUEUED, at=record.created_at, reason=CLEAN_SUBMIT_REASON)]
    worker, started, finished = record.worker, record.started_at, record.finished_at
    if record.state in (JobState.RUNNING, JobState.SUCCEEDED) and worker is not None and started is not None:
        events.append(JobEvent(state=JobState.RUNNING, at=started, attempt=1, worker=worker))
        if record.state is JobState.SUCCEEDED and finished is not None:
            events.append(JobEvent(state=JobState.SUCCEEDED, at=finished, attempt=1, worker=worker))
    return events


def eta_s(record: JobRecord) -> float | None:
    """Seconds left at the job's rate so far, as of its last report (None before any partial progress)."""
    progress = record.progress
    if progress is None or not record.started_at or not 0 < progress.percent < 100:
        return None
    elapsed = progress.at - record.started_at
    return elapsed * (100 - progress.percent) / progress.percent


def encode_fields(fields: dict[str, Any]) -> dict[str, str]:
    """JSON-encode each value, the registry's hash encoding; times (``*_at``) to the millisecond.

    A ``null`` value tells the transition script to remove the field (the default is read back).
    """
    return {k: json.dumps(_compact(k, v.value if isinstance(v, Enum) else v)) for k, v in fields.items()}


def _compact(name: str, value: Any) -> Any:
    return round(value, 3) if name.endswith("_at") and isinstance(value, float) else value
