"""Sharing a cluster between keys (real Redis, real worker pools): concurrency limits held across
pools, turns between keys, a slot held by a killed worker, a global rate, supersede, a limit
changed while jobs wait. Who ran when is read from the record each probe job writes itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fixtures import Workers, run_cli, wait_for
from tests.jobs import attempts_key
from trainq import JobState, get_registry
from trainq.errors import SubmitRefused
from trainq.ops.control import cancel, retry, submit
from trainq.ops.metrics import TrainqCollector
from trainq.pipelines.pipeline import run_pipeline_file
from trainq.pipelines.runs import RunState, get_runs
from trainq.sharing.gate import wait_reasons
from trainq.store.sharing import get_sharing


def state_of(job_id: str) -> JobState:
    return get_registry().get(job_id).state


def runs(client: redis.Redis, job_id: str) -> list[tuple[float, float]]:
    """``(start, end)`` of each attempt of ``job_id`` from its own record (end inf: it never ended)."""
    starts, ends = {}, {}
    for raw in client.lrange(attempts_key(job_id), 0, -1):
        event, attempt, at, _ = raw.decode().split(":")
        (starts if event == "start" else ends)[attempt] = float(at)
    return [(start, ends.get(attempt, float("inf"))) for attempt, start in starts.items()]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at one moment (an end at the same instant as a start comes first)."""
    edges = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1])
    )
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def all_done(job_ids: list[str]) -> bool:
    return all(r.state is JobState.SUCCEEDED for r in get_registry().get_many(job_ids))


def test_a_key_holds_its_limit_across_pools_and_other_keys_take_turns(
    workers: Workers, redis_client: Any
) -> None:
    # given 3 pools of 2 processes on one queue
    for n in range(3):
        workers.start("probe", concurrency=2, name=f"pool{n}")
    # when 30 jobs of key A (limit 2) are sent, then 3 of key B
    a_limit = {"key": "{tags[project]}", "max_running": 2}
    a_jobs = [submit("probe", {"seconds": 0.3}, tags={"project": "A"}, limit=a_limit) for _ in range(30)]
    b_jobs = [submit("probe", {"seconds": 0.3}, limit={"key": "B", "max_running": 2}) for _ in range(3)]
    wait_for(lambda: all_done([*a_jobs, *b_jobs]), timeout=60, message="every job done")
    # then never more than 2 of A ran at once, by the jobs' own record
    a_runs = [run for job in a_jobs for run in runs(redis_client, job)]
    assert len(a_runs) == 30
    assert most_at_once(a_runs) == 2
    # and B's jobs all started long before A's backlog was done
    last_a_start = max(start for start, _ in a_runs)
    b_starts = [start for job in b_jobs for start, _ in runs(redis_client, job)]
    assert max(b_starts) < last_a_start - 2.0
    # and A's two slots were never left idle while A had jobs waiting (the pools had processes free)
    busy = sum(end - start for start, end in a_runs)
    span = max(end for _, end in a_runs) - min(start for start, _ in a_runs)
    assert busy / (2 * span) > 0.8, f"A's slots busy {busy:.1f}s of {2 * span:.1f}s"
    # and the key's slots are all given back
    assert run_cli("limits", "list", "--json").stdout.count('"running": 0') == 2


def test_a_killed_workers_slot_comes_back_after_its_lease(workers: Workers, redis_client: Any) -> None:
    # given a key with one slot, held by a job on a pool that is then killed, and a job waiting
    doomed = workers.start("probe", name="doomed")
    limit = {"key": "gpu-box", "max_running": 1}
    held = submit("probe", {"seconds": 2}, limit=limit)
    wait_for(lambda: state_of(held) is JobState.RUNNING, message="first job running")
    waiting = submit("probe", {"seconds": 0.1}, limit=limit)
    workers.start("probe", name="survivor")
    # when the pool holding the slot is SIGKILLed
    doomed.kill()
    # then after the lease the job is recovered once, runs again, and the waiting job gets the slot after it
    wait_for(lambda: all_done([held, waiting]), timeout=30, message="both jobs done")
    record = get_registry().get(held)
    assert record.recoveries == 1
    assert len(runs(redis_client, held)) == 2
    assert most_at_once(runs(redis_client, held)[1:] + runs(redis_client, waiting)) == 1


def test_a_rate_limit_holds_across_pools(workers: Workers, redis_client: Any) -> None:
    # given 3 pools and a key limited to 5 starts a second
    for n in range(3):
        workers.start("probe", concurrency=2, name=f"pool{n}")
    # when 50 jobs of that key are sent at once
    jobs = [submit("probe", {}, limit={"key": "labelling-api", "rate": "5/s"}) for _ in range(50)]
    wait_for(lambda: all_done(jobs), timeout=40, message="every job done")
    # then they started at 5 a second, within 10 %
    starts = sorted(start for job in jobs for start, _ in runs(redis_client, job))
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 4.5 <= rate <= 5.5, f"measured {rate:.2f} starts/s"


def test_a_newer_job_supersedes_or_is_refused(workers: Workers) -> None:
    # given a running job of a key whose newer jobs cancel the older ones
    workers.start("probe", concurrency=2)
    latest_wins = {"key": "exp-{tags[experiment]}", "supersede": "cancel"}
    older = submit("probe", {"seconds": 30}, tags={"experiment": "7"}, limit=latest_wins)
    wait_for(lambda: state_of(older) is JobState.RUNNING, message="older job running")
    # when a newer job of that key arrives
    newer = submit("probe", {"seconds": 0.1}, tags={"experiment": "7"}, limit=latest_wins)
    # then the older one ends cancelled with the reason, and the newer one runs
    wait_for(lambda: state_of(newer) is JobState.SUCCEEDED, message="newer job done")
    cancelled = get_registry().get(older)
    assert cancelled.state is JobState.CANCELLED
    assert get_registry().events(older)[-1].reason == f"superseded by job {newer} of exp-7"
    # and with "refuse" the newer job is the one that ends cancelled, the older one running on
    first = submit("probe", {"seconds": 30}, limit={"key": "nightly", "supersede": "refuse"})
    wait_for(lambda: state_of(first) is JobState.RUNNING, message="first nightly running")
    with pytest.raises(SubmitRefused, match=f"was not started: refused: job {first} of nightly") as refusal:
        submit("probe", {}, limit={"key": "nightly", "supersede": "refuse"})
    refused = get_registry().get(refusal.value.job_id or "")
    assert refused.state is JobState.CANCELLED
    assert refused.error == f"refused: job {first} of nightly is still waiting or running"
    # and the CLI says so, exiting 1: the job was not run
    again = run_cli("submit", "probe", "--limit-key", "nightly")
    assert again.returncode == 1 and again.stdout == "", again
    assert f"was not started: refused: job {first} of nightly" in again.stderr
    assert state_of(first) is JobState.RUNNING
    cancel(first)


def test_a_limit_changed_while_jobs_wait_takes_effect_within_a_second(workers: Workers) -> None:
    # given a key with one slot, one job running and three parked
    workers.start("probe", concurrency=4)
    limit = {"key": "team-x", "max_running": 1}
    jobs = [submit("probe", {"seconds": 30}, limit=limit) for _ in range(4)]
    wait_for(lambda: state_of(jobs[0]) is JobState.RUNNING, message="first job running")
    # and the waiting ones say why, in list and show
    shown = run_cli("show", jobs[1])
    assert "waiting for a slot of team-x (1/1 running)" in shown.stdout, shown.stdout
    listed = run_cli("list", "--state", "queued")
    assert f"{jobs[3]} waiting for a slot of team-x (1/1 running)" in listed.stdout, listed.stdout
    status = run_cli("status", "--once")
    assert "team-x" in status.stdout, status.stdout
    # when the limit is raised
    changed = run_cli("limits", "set", "team-x", "3")
    assert changed.returncode == 0, changed.stderr
    # then two more start within a second, and the last still waits
    wait_for(
        lambda: [state_of(j) for j in jobs[:3]] == [JobState.RUNNING] * 3, timeout=1.0, message="3 running"
    )
    assert state_of(jobs[3]) is JobState.QUEUED
    # and the metrics show the key's running and waiting jobs
    gauges = {
        (family.name, sample.labels.get("key")): sample.value
        for family in TrainqCollector(get_registry()).collect()
        for sample in family.samples
    }
    assert gauges[("trainq_limit_running", "team-x")] == 3
    assert gauges[("trainq_limit_waiting", "team-x")] == 1
    for job in jobs:
        cancel(job)


def test_a_pipeline_files_limit_holds_for_its_jobs(
    workers: Workers, redis_client: Any, tmp_path: Path
) -> None:
    # given a pipeline of four independent jobs sharing a key with one slot, and a pool of 3
    workers.start("probe", concurrency=3)
    limit = {"key": "project-a", "max_running": 1}
    jobs = [
        {"job_id": f"j{n}", "type": "probe", "config": {"seconds": 0.2}, "limit": limit} for n in range(4)
    ]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"pipeline_id": "shared", "jobs": jobs}))
    # when it runs
    run_id = run_pipeline_file(path)
    wait_for(lambda: get_runs().status(run_id).state is RunState.SUCCEEDED, timeout=30, message="run done")
    # then its jobs ran one at a time
    intervals = [run for n in range(4) for run in runs(redis_client, f"{run_id}.j{n}")]
    assert len(intervals) == 4
    assert most_at_once(intervals) == 1


def test_a_delayed_job_parked_for_a_slot_still_waits_for_its_time(
    workers: Workers, redis_client: Any
) -> None:
    # given a key with one slot, held by a running job
    workers.start("probe", concurrency=2)
    limit = {"key": "nightly-box", "max_running": 1}
    first = submit("probe", {"seconds": 0.3}, limit=limit)
    # when a job of that key due in 2 seconds is sent (and parked)
    sent_at = time.time()
    later = submit("probe", {}, limit=limit, countdown=2)
    # then it starts once the slot is free and its time has come, not before
    wait_for(lambda: all_done([first, later]), timeout=20, message="both done")
    assert runs(redis_client, later)[0][0] >= sent_at + 2


def test_a_retried_job_meets_its_keys_limit_again(workers: Workers, redis_client: Any) -> None:
    # given a key with one slot, held by a running job A that ends when released, and a job B parked
    workers.start("probe", concurrency=2)
    limit = {"key": "lk2", "max_running": 1}
    a = submit("probe", {"release_key": "test:release:a"}, limit=limit)
    wait_for(lambda: state_of(a) is JobState.RUNNING, message="A running")
    b = submit("probe", {}, limit=limit)
    assert get_sharing().holders("lk2") == ([a], [b])
    # when B is cancelled while parked, then retried
    cancel(b)
    assert get_sharing().holders("lk2") == ([a], [])
    retry(b)
    # then B is parked again with its reason, not sent, and the key counts A alone
    assert state_of(b) is JobState.QUEUED
    assert get_sharing().holders("lk2") == ([a], [b])
    assert wait_reasons([get_registry().get(b)]) == {b: "waiting for a slot of lk2 (1/1 running)"}
    assert redis_client.llen("probe") == 0 and not runs(redis_client, b)
    assert state_of(a) is JobState.RUNNING
    # and once A ends, B runs in its slot, never beside A
    redis_client.set("test:release:a", 1)
    wait_for(lambda: all_done([a, b]), timeout=10, message="A and B done")
    assert most_at_once(runs(redis_client, a) + runs(redis_client, b)) == 1
    # and the key's slots are all given back
    use = get_sharing().uses(["lk2"])[0]
    assert (use.running, use.waiting) == (0, 0)


def test_a_dead_job_retried_waits_for_the_slot_a_retrying_job_keeps(
    workers: Workers, redis_client: Any
) -> None:
    # given a key with one slot, a job of it dead after its last retry (its fault then mended), and a
    # job that failed its first attempt and runs again (its retry kept its slot) until released
    workers.start("probe", concurrency=2)
    limit = {"key": "lk3", "max_running": 1}
    redis_client.set("test:fault:lk3", 1)
    failed = submit("probe", {"fault_key": "test:fault:lk3"}, limit=limit)
    wait_for(lambda: state_of(failed) is JobState.DEAD, timeout=10, message="first job dead")
    redis_client.delete("test:fault:lk3")
    flaky = submit("probe", {"fail_times": 1, "release_key": "test:release:flaky"}, limit=limit)
    wait_for(
        lambda: (r := get_registry().get(flaky)).attempt == 2 and r.state is JobState.RUNNING,
        message="second job running its second attempt",
    )
    assert get_sharing().holders("lk3") == ([flaky], [])
    # when the failed job is retried
    retry(failed)
    # then it is parked behind the retrying job
    assert state_of(failed) is JobState.QUEUED
    assert get_sharing().holders("lk3") == ([flaky], [failed])
    # and runs only once that job has ended
    redis_client.set("test:release:flaky", 1)
    wait_for(lambda: all_done([failed, flaky]), timeout=10, message="both done")
    first, second = get_registry().get_many([flaky, failed])
    assert second.started_at is not None and first.finished_at is not None
    assert second.started_at >= first.finished_at
    use = get_sharing().uses(["lk3"])[0]
    assert (use.running, use.waiting) == (0, 0)
