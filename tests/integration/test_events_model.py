"""A model test of a job's event history (schema 4) on the real registry: random lifecycles of one
job (create, claim, progress, success, failed attempts, recoveries, cancels, manual retries, refused
moves) read back, after every step, exactly the events a schema-3 store kept (every one passed, in
order), and a job on the clean path keeps no events list."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.integration.test_registry import record
from trainq.job.lifecycle import RETRY_RESET
from trainq.job.record import (
    CLEAN_SUBMIT_REASON,
    HISTORY_FIELD,
    RETRYABLE_STATES,
    WAITING_STATES,
    JobEvent,
    JobState,
    Progress,
)
from trainq.store.registry import Effects, Registry

JOB = "job"
#: Worker hostnames: Celery's usual ones, and any text (empty, JSON escapes, non-ASCII: the script's cjson).
workers = st.sampled_from(["w@host", "celery@gpu-1.local"]) | st.text(
    st.characters(exclude_categories=["Cs"]), max_size=6
)
reasons = st.sampled_from(["worker lost", "timeout", "resumed", ""]) | st.text(max_size=8)
results = st.none() | st.recursive(
    st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
RUNNING = {JobState.RUNNING}
CANCELLABLE = frozenset({*WAITING_STATES, JobState.RUNNING})


class EventsModel(RuleBasedStateMachine):
    """One job driven through the registry beside its model: its record's counters and the events
    list a schema-3 store would hold."""

    registry: Registry

    def __init__(self) -> None:
        super().__init__()
        self.registry.client.flushdb()
        self.events: list[JobEvent] = []
        self.state = JobState.QUEUED
        self.attempt, self.fence, self.failures, self.recoveries = 1, 0, 0, 0
        self.worker: str | None = None
        self.absent: set[str] = set()  # fields the record must not hold (nulled, or never set)
        self.clean = False
        self.created = False

    def passed(self, event: JobEvent) -> None:
        """Add ``event`` to the model as a schema-3 store kept it (``JobEvent.encoded``)."""
        self.events.append(JobEvent.model_validate_json(event.encoded()))

    def moved(self, reply: Any, previous: JobState, to: JobState) -> None:
        """Check the registry applied the move from ``previous`` (its reply), and follow it."""
        assert reply == previous, f"{previous.value} -> {to.value} refused"
        self.state = to

    # -- moves -------------------------------------------------------------------------

    @initialize(
        state=st.sampled_from([JobState.QUEUED, JobState.DELAYED]),
        reason=st.just(CLEAN_SUBMIT_REASON) | reasons,
        foreign=st.booleans(),
        worker=workers,
    )
    def create(self, state: JobState, reason: str, foreign: bool, worker: str) -> None:
        new = record(JOB, state=JobState.QUEUED if foreign else state)
        self.absent = {"worker", "started_at", "finished_at", "progress", "result", "error"}
        self.created = True
        if foreign:  # a job first seen by a worker (sent by a client without trainq)
            claimed = self.registry.create_and_claim(new, worker, time.time() + 30)()
            assert claimed is not None and claimed == self.registry.get(JOB)
            assert claimed.started_at is not None
            self.passed(JobEvent(state=JobState.QUEUED, at=new.created_at, reason=CLEAN_SUBMIT_REASON))
            self.passed(JobEvent(state=JobState.RUNNING, at=claimed.started_at, attempt=1, worker=worker))
            self.state, self.worker, self.clean = JobState.RUNNING, worker, True
            self.absent -= {"worker", "started_at"}
            return
        self.registry.create(new, reason=reason)
        self.passed(JobEvent(state=state, at=new.created_at, reason=reason))
        self.state, self.clean = state, state is JobState.QUEUED and reason == CLEAN_SUBMIT_REASON

    @precondition(lambda self: self.state in WAITING_STATES)
    @rule(worker=workers)
    def claim(self, worker: str) -> None:
        claimed = self.registry.claim(JOB, self.fence, worker, time.time() + 30)
        assert claimed is not None and claimed.state is JobState.RUNNING
        assert claimed == self.registry.get(JOB)  # the script returns the record as stored
        assert claimed.started_at is not None and claimed.worker == worker
        self.passed(
            JobEvent(state=JobState.RUNNING, at=claimed.started_at, attempt=self.attempt, worker=worker)
        )
        self.state, self.worker = JobState.RUNNING, worker
        self.absent = (self.absent | {"progress", "next_attempt_at"}) - {"worker", "started_at"}

    @precondition(lambda self: self.state is JobState.RUNNING)
    @rule(kind=st.sampled_from(["progress", "exit_code", "lease"]), step=st.integers(0, 10))
    def silent_update(self, kind: str, step: int) -> None:
        """A heartbeat's lease renewal, a progress report, or a field set by the handler: no event."""
        fields: dict[str, Any] | None = None
        if kind == "progress":
            fields = {"progress": Progress(step=step, total=10, percent=step * 10).model_dump(mode="json")}
        elif kind == "exit_code":
            fields = {"exit_code": step}
        lease = time.time() + 30 if kind == "lease" else None
        reply = self.registry.transition(
            JOB, JobState.RUNNING, allowed=RUNNING, fence=self.fence, fields=fields, lease_until=lease
        )
        self.moved(reply, JobState.RUNNING, JobState.RUNNING)
        self.absent -= set(fields or {})

    @precondition(lambda self: self.state is JobState.RUNNING)
    @rule(result=results)
    def succeed(self, result: Any) -> None:
        now = time.time()
        event = JobEvent(state=JobState.SUCCEEDED, at=now, attempt=self.attempt, worker=self.worker)
        outcome = self.registry.finish(
            JOB,
            JobState.SUCCEEDED,
            allowed=RUNNING,
            fence=self.fence,
            fields={"finished_at": now, "result": result},
            event=event,
            effects=Effects(),
        )
        assert outcome is not None
        self.moved(outcome[0], JobState.RUNNING, JobState.SUCCEEDED)
        self.passed(event)
        self.absent.discard("finished_at")
        (self.absent.add if result is None else self.absent.discard)("result")

    @precondition(lambda self: self.state is JobState.RUNNING)
    @rule(error=reasons, traceback=st.none() | st.just("Traceback ..."))
    def fail_attempt(self, error: str, traceback: str | None) -> None:
        """A failed attempt with retries left: ``retrying`` on the next fence and attempt."""
        now = time.time()
        fields = {
            "failures": self.failures + 1,
            "error": error,
            "traceback": traceback,
            "fence": self.fence + 1,
            "attempt": self.attempt + 1,
            "next_attempt_at": now + 1,
        }
        event = JobEvent(
            state=JobState.RETRYING, at=now, attempt=self.attempt, worker=self.worker, reason=error
        )
        reply = self.registry.transition(
            JOB,
            JobState.RETRYING,
            allowed=RUNNING,
            fence=self.fence,
            fields=fields,
            event=event,
            lease_until=now + 30,
        )
        self.moved(reply, JobState.RUNNING, JobState.RETRYING)
        self.passed(event)
        self.failures, self.fence, self.attempt, self.clean = (
            self.failures + 1,
            self.fence + 1,
            self.attempt + 1,
            False,
        )
        self.absent -= {"error", "next_attempt_at"}
        (self.absent.add if traceback is None else self.absent.discard)("traceback")

    @precondition(lambda self: self.state is JobState.RUNNING)
    @rule(to=st.sampled_from([JobState.FAILED, JobState.DEAD]), error=reasons)
    def fail(self, to: JobState, error: str) -> None:
        """A permanent failure, or the last retry spent: the job ends."""
        now = time.time()
        event = JobEvent(state=to, at=now, attempt=self.attempt, worker=self.worker, reason=error)
        fields = {"failures": self.failures + 1, "error": error, "traceback": None, "finished_at": now}
        outcome = self.registry.finish(
            JOB, to, allowed=RUNNING, fence=self.fence, fields=fields, event=event, effects=Effects()
        )
        assert outcome is not None
        self.moved(outcome[0], JobState.RUNNING, to)
        self.passed(event)
        self.failures, self.clean = self.failures + 1, False
        self.absent = (self.absent | {"traceback"}) - {"error", "finished_at"}

    @precondition(lambda self: self.state is JobState.RUNNING)
    @rule(reason=reasons, counted=st.booleans())
    def recover(self, reason: str, counted: bool) -> None:
        """The job's worker is gone: back to ``queued`` on the next fence and attempt."""
        recoveries = self.recoveries + (1 if counted else 0)
        fields = {
            "recoveries": recoveries,
            "attempt": self.attempt + 1,
            "worker": None,
            "fence": self.fence + 1,
        }
        event = JobEvent(
            state=JobState.QUEUED, at=time.time(), attempt=self.attempt, worker=self.worker, reason=reason
        )
        reply = self.registry.transition(
            JOB, JobState.QUEUED, allowed=RUNNING, fence=self.fence, fields=fields, event=event, lease_until=0
        )
        self.moved(reply, JobState.RUNNING, JobState.QUEUED)
        self.passed(event)
        self.recoveries, self.attempt, self.fence, self.worker = (
            recoveries,
            self.attempt + 1,
            self.fence + 1,
            None,
        )
        self.clean = False
        self.absent.add("worker")

    @precondition(lambda self: self.state in CANCELLABLE)
    @rule(reason=reasons, error=st.booleans(), to=st.sampled_from([JobState.FAILED, JobState.BLOCKED]))
    def cancel(self, reason: str, error: bool, to: JobState) -> None:
        """A cancel by a user (any delivery), a sharing key's refusal (with an error), or a job
        that is never sent (``record_unsent``: a waiting job ends failed or blocked)."""
        now = time.time()
        previous = self.state
        if previous is JobState.RUNNING or not error:
            to = JobState.CANCELLED
        event = JobEvent(state=to, at=now, attempt=self.attempt, worker=self.worker, reason=reason)
        fields: dict[str, Any] = {"finished_at": now, **({"error": reason} if error else {})}
        allowed = CANCELLABLE if to is JobState.CANCELLED else WAITING_STATES
        outcome = self.registry.finish(
            JOB, to, allowed=allowed, fence=None, fields=fields, event=event, effects=Effects()
        )
        assert outcome is not None
        self.moved(outcome[0], previous, to)
        self.passed(event)
        self.clean = False
        self.absent -= {"finished_at", *(["error"] if error else [])}

    @precondition(lambda self: self.state is JobState.QUEUED)
    @rule(reason=reasons)
    def park(self, reason: str) -> None:
        """A sharing key parks the queued job (an event, no state change)."""
        event = JobEvent(state=JobState.QUEUED, at=self.registry.get(JOB).created_at, reason=reason)
        reply = self.registry.transition(JOB, JobState.QUEUED, allowed={JobState.QUEUED}, event=event)
        self.moved(reply, JobState.QUEUED, JobState.QUEUED)
        self.passed(event)
        self.clean = False

    @precondition(lambda self: self.state in (JobState.QUEUED, JobState.RETRYING))
    @rule(reason=reasons)
    def resend(self, reason: str) -> None:
        """The reaper re-sends a queued job after a Redis master change, or an overdue retry: the
        next fence, back to ``queued`` (``lifecycle.requeue``)."""
        self.requeue(reason, {self.state}, {})
        self.fence, self.clean = self.fence + 1, False

    @precondition(lambda self: self.state in RETRYABLE_STATES)
    @rule(reason=st.just("re-queued") | reasons)
    def retry(self, reason: str) -> None:
        """``trainq retry``: a new attempt series on the next fence (``lifecycle.retry``)."""
        self.requeue(reason, RETRYABLE_STATES, RETRY_RESET)
        self.attempt, self.failures, self.recoveries, self.fence, self.worker = 1, 0, 0, self.fence + 1, None
        self.absent |= {k for k, v in RETRY_RESET.items() if v is None}
        self.clean = False

    def requeue(self, reason: str, allowed: Iterable[JobState], fields: dict[str, Any]) -> None:
        """Back to ``queued`` on the next fence with ``fields``, from a state in ``allowed``."""
        previous = self.state
        event = JobEvent(
            state=JobState.QUEUED, at=time.time(), attempt=self.attempt, worker=self.worker, reason=reason
        )
        reply = self.registry.transition(
            JOB,
            JobState.QUEUED,
            allowed=allowed,
            fence=self.fence,
            fields={**fields, "fence": self.fence + 1},
            event=event,
            lease_until=0,
        )
        self.moved(reply, previous, JobState.QUEUED)
        self.passed(event)

    @precondition(lambda self: self.created)
    @rule(
        kind=st.sampled_from(["claim", "stale fence", "wrong state"]),
        off=st.sampled_from([-1, 1, 7]),
        to=st.sampled_from(list(JobState)),
        worker=workers,
        with_event=st.booleans(),
    )
    def refused(self, kind: str, off: int, to: JobState, worker: str, with_event: bool) -> None:
        """A stale delivery or a move from a state the job is not in: refused, nothing written."""
        before = self.snapshot()
        if kind == "claim":
            fence = self.fence + off if self.state in WAITING_STATES else self.fence
            assert self.registry.claim(JOB, fence, worker, time.time() + 30) is None
        else:
            allowed = {self.state} if kind == "stale fence" else set(JobState) - {self.state}
            fence = self.fence + off if kind == "stale fence" else self.fence
            event = JobEvent(state=to, at=time.time(), attempt=self.attempt, worker=worker, reason="late")
            fields = {"worker": None, "progress": None, "attempt": self.attempt + 1, "fence": fence + 1}
            reply = self.registry.transition(
                JOB,
                to,
                allowed=allowed,
                fence=fence,
                fields=fields,
                event=event if with_event else None,
                lease_until=0,
            )
            assert reply is None
        assert self.snapshot() == before

    # -- checks ------------------------------------------------------------------------

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a refused move must leave alone."""
        keys, client = self.registry.keys, self.registry.client
        return (
            client.hgetall(keys.job(JOB)),
            client.lrange(keys.events(JOB), 0, -1),
            client.zscore(keys.leases(), JOB),
            self.registry.counts(),
        )

    @precondition(lambda self: self.created)
    @invariant()
    def reads_the_schema_3_history(self) -> None:
        keys, client = self.registry.keys, self.registry.client
        job = self.registry.get(JOB)
        assert self.registry.events(JOB) == self.events
        assert self.registry.events(JOB, job) == self.events
        assert (job.state, job.attempt, job.fence) == (self.state, self.attempt, self.fence)
        assert (job.failures, job.recoveries, job.worker) == (self.failures, self.recoveries, self.worker)
        stored = client.hgetall(keys.job(JOB))
        assert not {name.encode() for name in self.absent} & set(stored)
        assert b"null" not in stored.values()
        listed = [JobEvent.model_validate_json(e) for e in client.lrange(keys.events(JOB), 0, -1)]
        if self.clean:
            assert not client.exists(keys.events(JOB)) and HISTORY_FIELD.encode() not in stored
        else:
            assert stored.get(HISTORY_FIELD.encode()) == b"1" and listed == self.events
        assert [r.id for r in self.registry.list(state=self.state)] == [JOB]
        assert {s: n for s, n in self.registry.counts().items() if n} == {self.state: 1}


def test_every_lifecycle_reads_back_the_events_it_passed(registry: Registry) -> None:
    EventsModel.registry = registry
    run_state_machine_as_test(
        EventsModel,
        settings=settings(
            max_examples=150,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def test_events_read_while_the_job_leaves_the_clean_path_are_one_snapshot(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a running job on the clean path, and its worker lost just after its events list is read
    registry.create(record(JOB))
    registry.claim(JOB, 0, "w@host", time.time() + 30)
    before = registry.events(JOB)
    find = registry.find

    def lost_meanwhile(job_id: str) -> Any:
        event = JobEvent(state=JobState.QUEUED, at=time.time(), attempt=1, worker="w@host", reason="lost")
        fields = {"recoveries": 1, "attempt": 2, "worker": None, "fence": 1}
        registry.transition(JOB, JobState.QUEUED, allowed=RUNNING, fence=0, fields=fields, event=event)
        return find(job_id)

    monkeypatch.setattr(registry, "find", lost_meanwhile)
    # when its events are read (without a record), then they are those before the change, or after it
    # (before the fix: the submit alone, the list read before the change and the record after it)
    assert registry.events(JOB) in (before, registry.events(JOB, find(JOB)))
