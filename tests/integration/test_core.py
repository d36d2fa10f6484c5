"""Core behaviour against real Redis and real workers: routing, transitions, priorities, cancel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures import Workers, run_cli, wait_for
from tests.jobs import attempts_key
from trainq import JobState, get_registry
from trainq.ops.control import cancel, submit


def state_of(job_id: str) -> JobState:
    return get_registry().get(job_id).state


def test_each_type_lands_on_its_own_queue(workers: Workers) -> None:
    # given only the training pool
    workers.start("training")
    from workers.data import prepare
    from workers.training import train

    trained = train.delay(model="resnet50", dataset="digits", epochs=3).id
    prepared = prepare.delay(dataset="digits").id
    # then the training job finishes and the data job waits
    wait_for(lambda: state_of(trained) is JobState.SUCCEEDED, message="training job done")
    assert state_of(prepared) is JobState.QUEUED
    # when a data pool starts, the data job runs
    workers.start("data")
    wait_for(lambda: state_of(prepared) is JobState.SUCCEEDED, message="data job done")
    assert get_registry().get(trained).queue == "training"
    assert get_registry().get(prepared).queue == "data"


def test_transitions_are_recorded_in_order_with_worker(workers: Workers) -> None:
    workers.start("probe", name="alpha")
    job_id = submit("probe", {"seconds": 0.2, "steps": 2})
    wait_for(lambda: state_of(job_id) is JobState.SUCCEEDED)
    events = get_registry().events(job_id)
    assert [e.state for e in events] == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED]
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[1].worker is not None and events[1].worker.startswith("alpha@")
    # and a clean run keeps no events list: show reads its three transitions from the record
    assert not get_registry().client.exists(get_registry().keys.events(job_id))
    shown = run_cli("show", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert [(e["state"], e["attempt"], e["reason"]) for e in json.loads(shown.stdout)["events"]] == [
        ("queued", 0, "submitted"),
        ("running", 1, None),
        ("succeeded", 1, None),
    ]
    record = get_registry().get(job_id)
    assert record.progress is not None and record.progress.percent == 100.0
    assert record.progress.metrics == {"loss": 0.5}
    lines = [line for _, line in get_registry().read_log(job_id)]
    assert "probe done after 0.2s" in lines


def test_priority_nine_runs_before_twenty_priority_zero_jobs(workers: Workers, redis_client: Any) -> None:
    # given 20 priority-0 jobs then one priority-9 job, queued with no worker
    low = [submit("probe", {}, priority=0) for _ in range(20)]
    urgent = submit("probe", {}, priority=9)
    # when the pool starts
    workers.start("probe")
    wait_for(lambda: all(state_of(j) is JobState.SUCCEEDED for j in [*low, urgent]), message="all done")
    # then the urgent job started first
    started = {j: get_registry().get(j).started_at or 0 for j in [*low, urgent]}
    assert min(started, key=started.__getitem__) == urgent


def test_cancel_queued_job_never_starts(workers: Workers, redis_client: Any) -> None:
    job_id = submit("probe", {})
    assert cancel(job_id) is JobState.QUEUED
    workers.start("probe")
    marker = submit("probe", {})
    wait_for(lambda: state_of(marker) is JobState.SUCCEEDED)
    assert state_of(job_id) is JobState.CANCELLED
    assert redis_client.llen(attempts_key(job_id)) == 0


def test_cancel_running_job_stops_it(workers: Workers, redis_client: Any) -> None:
    workers.start("probe")
    job_id = submit("probe", {"seconds": 60})
    wait_for(lambda: state_of(job_id) is JobState.RUNNING)
    result = run_cli("cancel", job_id)
    assert result.returncode == 0, result.stderr
    # the worker is free again: a new job runs to completion on the single process
    after = submit("probe", {})
    wait_for(lambda: state_of(after) is JobState.SUCCEEDED, timeout=20, message="next job after cancel")
    assert state_of(job_id) is JobState.CANCELLED
    ends = [a for a in redis_client.lrange(attempts_key(job_id), 0, -1) if a.startswith(b"end")]
    assert ends == []


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_jobs_info_records_reach_its_log_not_a_warning_level_workers(workers: Workers, pool: str) -> None:
    # given a pool whose own log shows warnings and above
    worker = workers.start("probe", level="warning", ready=False, pool=pool)
    # when two jobs in turn log at debug, info and warning
    job_ids = [submit("log_levels", {"text": f"job {n}"}) for n in range(2)]
    wait_for(lambda: all(state_of(j) is JobState.SUCCEEDED for j in job_ids), message="both done")
    # then each job's log has its info and warning records
    for n, job_id in enumerate(job_ids):
        lines = [line.split(" ", 1)[1] for _, line in get_registry().read_log(job_id)]
        assert lines == [f"INFO tests.levels: job {n} at INFO", f"WARNING tests.levels: job {n} at WARNING"]
    # and the worker's own log only their warnings, as outside a job
    output = worker.output()
    assert "job 0 at WARNING" in output and "job 1 at WARNING" in output
    assert " at INFO" not in output and " at DEBUG" not in output, output
