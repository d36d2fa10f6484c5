"""Races on real Redis: run ids and idempotency keys are each taken in one atomic step, and the
delay that once let two callers take the same one is injected here."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from trainq.job.record import JobRecord, JobState
from trainq.pipelines import runs
from trainq.pipelines.dag import PlannedJob
from trainq.pipelines.runs import get_runs
from trainq.settings import get_settings
from trainq.store.registry import Registry


def new_record(job_id: str) -> JobRecord:
    now = time.time()
    return JobRecord(
        id=job_id,
        type="probe",
        queue="probe",
        name=job_id,
        state=JobState.QUEUED,
        priority=5,
        created_at=now,
        updated_at=now,
        attempt=1,
    )


def test_a_run_id_already_taken_is_never_reused(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a random source that draws the same run id twice, then another
    draws = iter(["c0ffee", "c0ffee", "beef01"])
    monkeypatch.setattr(runs, "secrets", SimpleNamespace(token_hex=lambda n: next(draws)))
    planned = [PlannedJob("only", "command", {"command": "true"}, {}, [])]
    # when two runs of one pipeline start
    first = get_runs().start("twice", planned, "test")
    second = get_runs().start("twice", planned, "test")
    # then the second drew again: two runs, each with its own recorded job
    assert (first, second) == ("twice-c0ffee", "twice-beef01")
    assert {r.id for r in get_runs().recent()} == {first, second}
    assert registry.find(f"{first}.only") and registry.find(f"{second}.only")


def test_a_run_id_has_six_random_bytes(registry: Registry) -> None:
    run_id = get_runs().start("sized", [PlannedJob("only", "command", {"command": "true"}, {}, [])], "test")
    assert len(run_id.removeprefix("sized-")) == 2 * runs.RUN_ID_BYTES == 12


def test_two_submitters_racing_on_one_key_make_one_job(registry: Registry) -> None:
    # given two clients, the first paused after reading the key and before writing its job
    slow, fast = Registry.from_settings(get_settings()), Registry.from_settings(get_settings())
    paused, resume = threading.Event(), threading.Event()
    write = slow._add_many

    def paused_write(
        pipe: Any, records: list[JobRecord], reason: str = "submitted", writes: Any = ()
    ) -> None:
        paused.set()
        resume.wait(10)
        write(pipe, records, reason, writes)

    slow._add_many = paused_write  # type: ignore[method-assign]
    outcomes: dict[str, tuple[str, bool]] = {}
    first = threading.Thread(target=lambda: outcomes.update(slow=slow.create(new_record("slow"), "nightly")))
    first.start()
    assert paused.wait(10)
    # when the second submits with the same key meanwhile, then the first goes on
    outcomes["fast"] = fast.create(new_record("fast"), "nightly")
    resume.set()
    first.join(10)
    # then exactly one job exists, and both callers got its id
    assert sorted(created for _, created in outcomes.values()) == [False, True]
    assert outcomes["slow"][0] == outcomes["fast"][0] == "fast"
    assert [r.id for r in registry.list()] == ["fast"]


def test_the_key_of_a_deleted_job_is_claimed_again(registry: Registry) -> None:
    assert registry.create(new_record("gone"), "k") == ("gone", True)
    assert registry.create(new_record("other"), "k") == ("gone", False)
    registry.delete("gone")
    assert registry.create(new_record("again"), "k") == ("again", True)
    assert registry.create(new_record("late"), "k") == ("again", False)
