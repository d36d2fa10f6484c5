"""Queues and the CLI against real workers: delays, bad input, pause/resume, purge, clean, listing."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.fixtures import Workers, run_cli, wait_for
from trainq import JobState, get_registry
from trainq.ops.control import queue_depths, submit


def state_of(job_id: str) -> JobState:
    return get_registry().get(job_id).state


def test_delayed_job_is_recorded_delayed_until_due(workers: Workers) -> None:
    workers.start("probe")
    result = run_cli("submit", "probe", "--delay", "3s")
    job_id = result.stdout.strip()
    assert state_of(job_id) is JobState.DELAYED
    record = get_registry().get(job_id)
    assert record.eta is not None and 2 < record.eta - record.created_at <= 3.1
    wait_for(lambda: state_of(job_id) is JobState.SUCCEEDED, timeout=20)
    assert (get_registry().get(job_id).started_at or 0) >= record.eta - 0.05


def test_at_accepts_an_iso_time(redis_client: Any) -> None:
    result = run_cli("submit", "probe", "--at", "2030-01-01T02:00")
    assert result.returncode == 0, result.stderr
    record = get_registry().get(result.stdout.strip())
    assert record.state is JobState.DELAYED
    assert time.localtime(record.eta).tm_hour == 2


def _nothing_enqueued() -> None:
    assert get_registry().list() == []
    assert queue_depths(["probe", "training"]) == {"probe": 0, "training": 0}


def test_bad_inputs_exit_2_and_enqueue_nothing(redis_client: Any, tmp_path: Any) -> None:
    cases = {
        ("submit", "training", "--config", '{"epochs": "many"}'): "epochs",
        ("submit", "nosuchtype"): "unknown job type 'nosuchtype'",
        ("submit", "training", "--config", "{not json"): "not valid JSON",
        ("submit", "training", "--config", "[1, 2]"): "must be a JSON object",
        ("submit", "training", "--config", ""): "--config is empty",
        ("submit", "training", "--delay", "1m", "--at", "2030-01-01T00:00"): "give --delay or --at, not both",
        ("submit", "training", "--config", f"@{tmp_path}/missing.json"): "cannot read config file",
        ("submit", "probe", "--timeout", "soon"): "bad duration 'soon'",
        ("submit", "probe", "--tag", "novalue"): "bad --tag",
        ("submit", "probe", "--tag", "env=dev", "--tag", "env=prod"): "--tag env given twice",
        # bytes that are not UTF-8 (as the shell passes them), and JSON's "\ud800" escape
        ("submit", "probe", "--tag", "team=\udcff"): "tags.team is not valid text",
        ("submit", "probe", "--name", "x\udced\udca0\udc80"): "job_name is not valid text",
        ("submit", "training", "--config", '{"dataset": "ir\\ud800is"}'): "dataset is not valid text",
        ("show", "nosuchjob"): "no job with id 'nosuchjob'",
        ("retry", "nosuchjob"): "no job with id 'nosuchjob'",
    }
    with ThreadPoolExecutor(max_workers=4) as pool:  # real processes, a few at a time
        results = list(pool.map(lambda args: run_cli(*args), cases))
    for (args, message), result in zip(cases.items(), results, strict=True):
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr  # one clear line, no traceback
    _nothing_enqueued()


def test_python_payload_error_names_the_field_and_sends_nothing(redis_client: Any) -> None:
    from trainq import PayloadError
    from workers.training import train

    try:
        train.delay(model="resnet50", dataset="digits", epochs="three")
    except PayloadError as error:
        assert "epochs" in str(error)
    else:
        raise AssertionError("expected PayloadError")
    _nothing_enqueued()


def test_pause_and_resume_a_queue(workers: Workers) -> None:
    # given a running pool, paused
    workers.start("probe", name="pauser")
    assert run_cli("pause", "probe").returncode == 0
    job_id = submit("probe", {})
    # then jobs wait, also for a worker started while the queue is paused
    late = workers.start("probe", name="late")
    assert state_of(job_id) is JobState.QUEUED
    assert "not consuming paused queues: probe" in late.output()
    assert queue_depths(["probe"]) == {"probe": 1}
    # when resumed
    assert run_cli("resume", "probe").returncode == 0
    wait_for(lambda: state_of(job_id) is JobState.SUCCEEDED, message="job after resume")


def test_purge_drops_waiting_jobs_as_cancelled(redis_client: Any) -> None:
    ids = [submit("probe", {}) for _ in range(5)]
    result = run_cli("purge", "probe", "--yes")
    assert result.returncode == 0 and "purged 5 jobs" in result.stdout
    assert {state_of(j) for j in ids} == {JobState.CANCELLED}
    assert queue_depths(["probe"]) == {"probe": 0}


def created(job_ids: list[str]) -> list[float]:
    """Each job's creation time, to the millisecond as stored (jobs sent within one share it)."""
    return [r.created_at for r in get_registry().get_many(job_ids)]


def test_list_filters_pages_newest_first_and_stats(workers: Workers) -> None:
    workers.start("probe")
    cv = [submit("probe", {}, tags={"team": "cv"}) for _ in range(3)]
    nlp = submit("probe", {}, tags={"team": "nlp"})
    queued = submit("training", {}, tags={"team": "cv"})
    wait_for(lambda: all(state_of(j) is JobState.SUCCEEDED for j in [*cv, nlp]))
    listed = [r["id"] for r in json.loads(run_cli("list", "--tag", "team=cv", "--json").stdout)]
    assert sorted(listed) == sorted([queued, *cv])
    assert created(listed) == sorted(created(listed), reverse=True)  # newest first
    page = json.loads(
        run_cli("list", "--tag", "team=cv", "--state", "succeeded", "--limit", "2", "--json").stdout
    )
    paged = [r["id"] for r in page]
    (left,) = set(cv) - set(paged)
    assert len(paged) == 2 and created(paged) == sorted(created(paged), reverse=True)
    assert min(created(paged)) >= created([left])[0]  # the two newest
    assert json.loads(run_cli("list", "--type", "training", "--json").stdout)[0]["id"] == queued
    stats = json.loads(run_cli("stats", "--json").stdout)
    assert stats["states"]["succeeded"] == 4 and stats["states"]["queued"] == 1
    training = {"states": {"queued": 1}, "pending": 1, "paused": False, "live_worker": False}
    assert stats["queues"]["training"] == training  # no worker reads it
    assert stats["queues"]["probe"]["live_worker"] is True


def test_clean_keeps_the_newest_finished_records(workers: Workers) -> None:
    workers.start("probe")
    ids = [submit("probe", {}) for _ in range(4)]
    wait_for(lambda: all(state_of(j) is JobState.SUCCEEDED for j in ids))
    waiting = submit("training", {})
    result = run_cli("clean", "--keep", "1")
    assert result.returncode == 0 and "removed 3 records" in result.stdout
    # and the job kept is the newest created (the registry keeps times to the millisecond: a tie
    # between two submits in one millisecond may keep either)
    records = get_registry().get_many(ids)
    newest = {r.id for r in records if r.created_at == max(r.created_at for r in records)}
    remaining = [r.id for r in get_registry().list()]
    assert remaining[0] == waiting and len(remaining) == 2 and remaining[1] in newest, (remaining, newest)
    assert run_cli("clean").returncode == 2


def test_logs_follow_streams_until_the_job_ends(workers: Workers) -> None:
    workers.start("probe")
    job_id = submit("probe", {"seconds": 1, "steps": 4})
    result = run_cli("logs", "-f", job_id, timeout=30)
    assert result.returncode == 0
    assert "probe done after 1.0s" in result.stdout
    assert "[succeeded]" in result.stderr
    assert "100.0%" in result.stderr


def test_a_delayed_job_whose_worker_died_holding_it_runs_a_lease_after_it_is_due(
    workers: Workers, redis_client: Any
) -> None:
    # given a delayed job a worker took and holds until it is due (its unacked entry is written)
    worker = workers.start("probe", name="holder")
    job_id = run_cli("submit", "probe", "--delay", "2s").stdout.strip()
    wait_for(lambda: any(job_id.encode() in v for v in redis_client.hvals("unacked")), 10, message="held")
    shown = run_cli("show", job_id)
    assert "due" in shown.stdout, shown.stdout
    # when that worker is killed with it, and another worker runs
    worker.kill()
    workers.start("probe", name="other")
    # then the job runs a lease (3 s here) after it was due, not after kombu's visibility timeout (5 min)
    wait_for(lambda: state_of(job_id) is JobState.SUCCEEDED, timeout=30, message="the delayed job ran")
    events = get_registry().events(job_id)
    assert any(e.reason == "delayed job overdue; re-sent" for e in events), events
    assert [e.state for e in events].count(JobState.RUNNING) == 1


def test_a_cancelled_delayed_job_is_not_held_by_a_worker_until_due(
    workers: Workers, redis_client: Any
) -> None:
    # given a job delayed by an hour and cancelled before any worker took it
    job_id = run_cli("submit", "probe", "--delay", "1h").stdout.strip()
    assert run_cli("cancel", job_id).returncode == 0
    # when a worker takes its message
    worker = workers.start("probe")
    # then it drops it at once, saying why, instead of holding it for an hour
    dropped = f"dropping delayed delivery {job_id}: the job is cancelled"
    wait_for(lambda: dropped in worker.output(), 20, message="the delivery dropped")

    def held() -> bool:
        return any(job_id.encode() in v for v in redis_client.hvals("unacked"))

    wait_for(lambda: not held(), 10, message="its unacked entry gone")


def test_resume_finds_the_workers_after_redis_lost_their_records(workers: Workers, redis_client: Any) -> None:
    # given a running pool whose record of its queues Redis lost (restarted without its data)
    workers.start("probe", name="forgotten")
    workers_key = get_registry().keys.workers()
    redis_client.delete(workers_key)
    # when its worker has recorded them again (each round of its reaper), and the queue is paused
    wait_for(lambda: redis_client.hlen(workers_key) == 1, 10, message="the worker recorded again")
    assert run_cli("pause", "probe").returncode == 0
    job_id = submit("probe", {})
    # then resuming names the worker, which runs the job
    resumed = run_cli("resume", "probe")
    assert resumed.returncode == 0 and resumed.stdout.startswith("queue probe resumed on forgotten@"), resumed
    wait_for(lambda: state_of(job_id) is JobState.SUCCEEDED, message="job after resume")
    # and a queue no worker was started for says its jobs wait for one
    lonely = run_cli("resume", "lonely")
    assert lonely.returncode == 0 and lonely.stdout == "queue lonely resumed\n"
    assert lonely.stderr == "no worker is recorded for lonely: its jobs wait for one (trainq worker lonely)\n"


def test_a_worker_on_a_pool_without_processes_says_what_it_cannot_do(workers: Workers) -> None:
    # given a worker on the solo pool and one on the default prefork pool
    solo = workers.start("probe", pool="solo")
    prefork = workers.start("data")
    # then the solo one warns that timeouts and cancels of running jobs need the prefork pool
    warning = "pool solo: a job's timeout is not enforced and a cancel cannot stop a running job"
    assert warning in solo.output()
    assert "is not enforced" not in prefork.output()
