"""A job cancelled with ``trainq cancel`` ends in Celery too: REVOKED, as for a revoked task, so a
client's ``get()`` raises, a chain's later steps are recorded and its result ends, a chord errors."""

from __future__ import annotations

import pytest
import redis
from celery import chain, chord
from celery.exceptions import ChordError, TaskRevokedError

from tests.fixtures import Workers, in_state, run_cli, wait_for
from tests.jobs import probe
from trainq import JobState

#: Longer than any wait below: a job that is not cancelled runs this long.
LONG_S = 60
#: A cancel reaches a running job within one heartbeat (0.5 s in the tests), plus slack for 2 busy cores.
SOON_S = 10


def cancel(job_id: str) -> None:
    """``trainq cancel JOB`` as a user runs it."""
    result = run_cli("cancel", job_id)
    assert result.returncode == 0, result.stderr


def test_a_cancelled_running_job_is_revoked_for_celery(workers: Workers) -> None:
    # given a job running on a worker
    workers.start("probe")
    result = probe.delay(seconds=LONG_S)
    in_state(result.id, JobState.RUNNING, SOON_S)
    # when the user cancels it
    cancel(result.id)
    # then the client's get() raises at once, and Celery says REVOKED as the registry says cancelled
    with pytest.raises(TaskRevokedError):
        result.get(timeout=SOON_S)
    assert result.state == "REVOKED"
    in_state(result.id, JobState.CANCELLED, SOON_S)


def test_a_job_cancelled_while_running_that_then_fails_is_revoked_for_celery(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a job running on a worker that does not stop a handler mid-run (the solo pool)
    workers.start("probe", pool="solo")
    result = probe.delay(release_key="cancel:fails:go", fault_key="cancel:fails:go")
    in_state(result.id, JobState.RUNNING)
    # when the user cancels it and its handler then raises
    cancel(result.id)
    redis_client.set("cancel:fails:go", 1)
    # then once the worker is done with it (it runs the next job), Celery still says REVOKED, as for a
    # revoked task, not the failure of an attempt the user stopped
    probe.delay().get(timeout=SOON_S)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=SOON_S)
    assert result.state == "REVOKED"
    assert in_state(result.id, JobState.CANCELLED).failures == 0


def test_a_cancelled_delayed_job_is_revoked_for_celery_at_once(workers: Workers) -> None:
    # given a job delayed well past the test, held by its worker
    workers.start("probe")
    result = probe.apply_async(kwargs={}, countdown=LONG_S)
    in_state(result.id, JobState.DELAYED, SOON_S)
    # when the user cancels it
    cancel(result.id)
    # then the client's get() raises now, not once the delay is over
    with pytest.raises(TaskRevokedError):
        result.get(timeout=SOON_S)
    assert result.state == "REVOKED"


@pytest.mark.parametrize("when", ["running", "queued"])
def test_a_chain_whose_first_step_is_cancelled_ends_and_records_its_later_steps(
    workers: Workers, when: str
) -> None:
    # given a chain of three jobs, its first step running (or waiting for a worker)
    if when == "running":
        workers.start("probe")
    result = chain(probe.si(seconds=LONG_S), probe.si(), probe.s()).delay()
    first = result.parent.parent
    in_state(first.id, JobState.RUNNING if when == "running" else JobState.QUEUED, SOON_S)
    # when the user cancels the first step (and a worker takes its message)
    cancel(first.id)
    if when == "queued":
        workers.start("probe")
    # then the chain's result raises (Celery raises a parent's error first), then ends REVOKED too
    with pytest.raises(TaskRevokedError):
        result.get(timeout=SOON_S)
    wait_for(lambda: result.state == "REVOKED", SOON_S, message="the chain's result REVOKED")
    assert first.state == "REVOKED"
    # and the steps Celery never sends are recorded blocked by the cancelled one, not missing
    for step in (result.parent, result):
        blocked = in_state(step.id, JobState.BLOCKED, SOON_S)
        assert first.id in (blocked.error or "") and step.state == "REVOKED"


def test_a_chord_whose_member_is_cancelled_errors(workers: Workers) -> None:
    # given a chord of two jobs, one running long
    workers.start("probe", concurrency=2)
    result = chord([probe.si(seconds=LONG_S), probe.si()], probe.si()).delay()
    long, short = result.parent.results
    in_state(long.id, JobState.RUNNING, SOON_S)
    # when the user cancels the long one
    cancel(long.id)
    # then the chord's result raises, and ends an error naming the cancelled member: its callback never runs
    with pytest.raises(TaskRevokedError):
        result.get(timeout=SOON_S)
    wait_for(lambda: result.state == "FAILURE", SOON_S, message="the chord's result FAILURE")
    assert isinstance(result.result, ChordError) and long.id in str(result.result)
    assert long.state == "REVOKED" and short.state == "SUCCESS"
