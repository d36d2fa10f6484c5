"""The registry on its own (real Redis): fenced transitions, indexes, counters, logs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from tests.fixtures import free_port
from trainq.errors import BrokerUnavailable
from trainq.job.record import SCHEMA_VERSION, VERSION_FIELD, JobEvent, JobRecord, JobState
from trainq.settings import Settings
from trainq.store import sentinel
from trainq.store.registry import Effects, Registry, stats_field


def record(job_id: str, **fields: object) -> JobRecord:
    now = time.time()
    values: dict[str, object] = {
        "id": job_id,
        "type": "probe",
        "queue": "probe",
        "name": job_id,
        "state": JobState.QUEUED,
        "priority": 5,
        "created_at": now,
        "updated_at": now,
        "attempt": 1,
        **fields,
    }
    return JobRecord.model_validate(values)


def test_a_stale_fence_cannot_change_the_record(registry: Registry) -> None:
    registry.create(record("a", fence=2))
    assert registry.transition("a", JobState.RUNNING, allowed={JobState.QUEUED}, fence=1) is None
    assert registry.transition("a", JobState.RUNNING, allowed={JobState.QUEUED}, fence=2) is JobState.QUEUED
    assert registry.transition("a", JobState.RUNNING, allowed={JobState.QUEUED}, fence=2) is None
    assert registry.get("a").state is JobState.RUNNING


def test_transitions_move_indexes_counters_and_history(registry: Registry) -> None:
    registry.create(record("a"))
    registry.create(record("b", queue="other"))
    event = JobEvent(state=JobState.RUNNING, at=time.time(), attempt=1, worker="w1")
    registry.transition(
        "a", JobState.RUNNING, allowed={JobState.QUEUED}, event=event, lease_until=time.time() - 1
    )
    assert [r.id for r in registry.list(state=JobState.RUNNING)] == ["a"]
    assert [r.id for r in registry.list(state=JobState.QUEUED)] == ["b"]
    assert registry.counts()[JobState.RUNNING] == 1
    assert registry.queue_counts() == {"other": {"queued": 1}, "probe": {"running": 1}}
    assert [e.state for e in registry.events("a")] == [JobState.QUEUED, JobState.RUNNING]
    assert registry.expired_leases(time.time()) == ["a"]
    registry.transition("a", JobState.SUCCEEDED, allowed={JobState.RUNNING}, lease_until=0)
    assert registry.expired_leases(time.time()) == []


def test_list_intersects_filters_newest_first_with_paging(registry: Registry) -> None:
    for n in range(30):
        registry.create(
            record(f"j{n:02}", tags={"parity": "even" if n % 2 == 0 else "odd"}, created_at=1000.0 + n)
        )
    evens = registry.list(tag="parity=even", state=JobState.QUEUED, limit=3, offset=1)
    assert [r.id for r in evens] == ["j26", "j24", "j22"]
    assert registry.list(tag="parity=none") == []


def test_list_without_filters_merges_the_states_newest_first_with_paging(registry: Registry) -> None:
    # given jobs created one after another, left in three different states
    for n in range(12):
        registry.create(record(f"j{n:02}", created_at=1000.0 + n))
        if n % 3:
            registry.transition(
                f"j{n:02}", JobState.RUNNING if n % 3 == 1 else JobState.CANCELLED, allowed={JobState.QUEUED}
            )
    # when every job is listed a page at a time, then the pages run newest first across the states
    pages = [[r.id for r in registry.list(limit=5, offset=offset)] for offset in (0, 5, 10)]
    assert pages == [
        [f"j{n:02}" for n in range(11, 6, -1)],
        [f"j{n:02}" for n in range(6, 1, -1)],
        ["j01", "j00"],
    ]


def test_one_route_index_lists_by_queue_and_by_type_newest_first_with_paging(registry: Registry) -> None:
    # given jobs of two types on one queue, and one of those types on a second queue
    routes = [("probe", "probe"), ("probe", "data"), ("other", "probe")]
    for n in range(12):
        queue, job_type = routes[n % 3]
        registry.create(record(f"j{n:02}", queue=queue, type=job_type, created_at=1000.0 + n))
    # then each job has one entry beside its state's: its route's (no type or queue index)
    assert registry.client.zcard(registry.keys.index_route("probe", "probe")) == 4
    assert not registry.client.exists(registry.keys.index_type("probe"), registry.keys.index_queue("probe"))
    # and listing by queue, by type, or both, pages newest first across the routes
    assert [r.id for r in registry.list(queue="probe", limit=3, offset=1)] == ["j09", "j07", "j06"]
    assert [r.id for r in registry.list(job_type="probe", limit=3, offset=1)] == ["j09", "j08", "j06"]
    both = registry.list(job_type="probe", queue="probe", state=JobState.QUEUED, limit=2, offset=1)
    assert [r.id for r in both] == ["j06", "j03"]
    assert registry.list(queue="nowhere") == [] and registry.list(job_type="data", queue="other") == []


def test_a_finished_standalone_job_is_listed_from_its_retention_set(registry: Registry) -> None:
    # given a standalone job and a pipeline job finished, and a queued job between them
    registry.create(record("alone", created_at=1000.0))
    registry.create(record("queued", created_at=1001.0))
    registry.create(record("step", created_at=1002.0, pipeline_id="run-1", pipeline_job="x"))
    for job_id in ("alone", "step"):
        registry.transition(job_id, JobState.SUCCEEDED, allowed={JobState.QUEUED})
    # then the standalone job is in its state's retention set only, the pipeline job in the state index
    succeeded = JobState.SUCCEEDED.value
    assert registry.client.zrange(registry.keys.finished(succeeded), 0, -1) == [b"alone"]
    assert registry.client.zrange(registry.keys.index_state(succeeded), 0, -1) == [b"step"]
    # and both list under their state, newest first, among every job, and are counted once
    assert [r.id for r in registry.list(state=JobState.SUCCEEDED)] == ["step", "alone"]
    assert [r.id for r in registry.list()] == ["step", "queued", "alone"]
    assert [r.id for r in registry.list(state=JobState.SUCCEEDED, queue="probe", limit=1)] == ["step"]
    assert registry.counts()[JobState.SUCCEEDED] == 2


def test_a_record_keeps_only_what_differs_from_the_defaults(registry: Registry, redis_client: object) -> None:
    # given a job recorded, claimed and finished
    registry.create(record("a"))
    claimed = registry.claim("a", 0, "w@host", time.time() + 30)
    assert claimed is not None and claimed.attempt == 1
    registry.transition(
        "a", JobState.SUCCEEDED, allowed={JobState.RUNNING}, fields={"result": None}, lease_until=0
    )
    # then its hash holds no nulls and carries the schema version, and its history no nulls either
    stored = registry.client.hgetall(registry.keys.job("a"))
    assert b"null" not in stored.values() and stored[VERSION_FIELD.encode()] == str(SCHEMA_VERSION).encode()
    assert not {b"progress", b"result", b"payload", b"options"} & set(stored)
    assert all(b"null" not in e for e in registry.client.lrange(registry.keys.events("a"), 0, -1))
    # and it reads back whole, the claim's attempt filled in by the script
    assert registry.get("a").state is JobState.SUCCEEDED and registry.get("a").payload == {}
    assert [(e.state, e.attempt, e.worker) for e in registry.events("a")][1] == (
        JobState.RUNNING,
        1,
        "w@host",
    )


def _run(registry: Registry, job_id: str, *, fail_first: bool = False) -> None:
    """Claim ``job_id`` on w@host and finish it ``succeeded`` (after one failed attempt if asked)."""
    fence = 0
    if fail_first:
        registry.claim(job_id, fence, "w@host", time.time() + 30)
        registry.transition(
            job_id,
            JobState.RETRYING,
            allowed={JobState.RUNNING},
            fence=fence,
            fields={"failures": 1, "attempt": 2, "fence": 1},
            event=JobEvent(state=JobState.RETRYING, at=time.time(), attempt=1, worker="w@host"),
        )
        fence = 1
    claimed = registry.claim(job_id, fence, "w@host", time.time() + 30)
    assert claimed is not None
    now = time.time()
    event = JobEvent(state=JobState.SUCCEEDED, at=now, attempt=claimed.attempt, worker="w@host")
    finished = registry.finish(
        job_id,
        JobState.SUCCEEDED,
        allowed={JobState.RUNNING},
        fence=fence,
        fields={"finished_at": now},
        event=event,
        effects=Effects(),
    )
    assert finished is not None


def test_a_job_on_the_clean_path_keeps_no_events_list_yet_reads_its_transitions(registry: Registry) -> None:
    # given a job submitted, then claimed
    registry.create(record("a"))
    assert not registry.client.exists(registry.keys.events("a"))
    assert [e.state for e in registry.events("a")] == [JobState.QUEUED]
    registry.claim("a", 0, "w@host", time.time() + 30)
    assert not registry.client.exists(registry.keys.events("a"))
    assert [(e.state, e.attempt, e.worker) for e in registry.events("a")][-1] == (
        JobState.RUNNING,
        1,
        "w@host",
    )
    # when it succeeds on that first attempt
    registry.client.delete(registry.keys.job("a"))
    registry.create(record("a"))
    _run(registry, "a")
    # then it keeps no events list, and its transitions read from the record as they were recorded
    assert not registry.client.exists(registry.keys.events("a"))
    job = registry.get("a")
    assert job.started_at is not None and job.finished_at is not None
    assert (
        registry.events("a")
        == registry.events("a", job)
        == [
            JobEvent(state=JobState.QUEUED, at=job.created_at, reason="submitted"),
            JobEvent(state=JobState.RUNNING, at=job.started_at, attempt=1, worker="w@host"),
            JobEvent(state=JobState.SUCCEEDED, at=job.finished_at, attempt=1, worker="w@host"),
        ]
    )


def test_the_first_event_off_the_clean_path_stores_the_ones_before_it(registry: Registry) -> None:
    # given a running job on the clean path
    registry.create(record("a"))
    running = registry.claim("a", 0, "w@host", time.time() + 30)
    assert running is not None and running.started_at is not None
    # when it is cancelled
    cancel = JobEvent(state=JobState.CANCELLED, at=time.time(), attempt=1, worker="w@host", reason="by user")
    registry.transition("a", JobState.CANCELLED, allowed={JobState.RUNNING}, event=cancel)
    # then its list holds the submit and the start its record implied, then the cancel
    stored = [
        JobEvent.model_validate_json(e) for e in registry.client.lrange(registry.keys.events("a"), 0, -1)
    ]
    assert stored == [
        JobEvent(state=JobState.QUEUED, at=running.created_at, reason="submitted"),
        JobEvent(state=JobState.RUNNING, at=running.started_at, attempt=1, worker="w@host"),
        cancel.model_copy(update={"at": round(cancel.at, 3)}),
    ]
    assert registry.events("a") == stored


def test_a_run_that_was_not_clean_keeps_its_events(registry: Registry) -> None:
    # given a job that failed once before it succeeded, and one whose first event is not a submit
    registry.create(record("retried"))
    _run(registry, "retried", fail_first=True)
    registry.create(record("resumed"), reason="resumed")
    _run(registry, "resumed")
    # then both keep their whole events list
    assert [e.state for e in registry.events("retried")] == [
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.RETRYING,
        JobState.RUNNING,
        JobState.SUCCEEDED,
    ]
    assert registry.client.llen(registry.keys.events("retried")) == 5
    assert [e.reason for e in registry.events("resumed")] == ["resumed", None, None]
    assert registry.client.llen(registry.keys.events("resumed")) == 3


def test_one_process_talks_to_its_data_through_one_connection_pool(registry: Registry) -> None:
    # given the process's registry, then runs, the quarantine and metrics use its client's pool
    from trainq.broker.quarantine import get_quarantine
    from trainq.ops.metrics import TrainqCollector
    from trainq.pipelines.runs import get_runs
    from trainq.store.registry import get_registry

    pool = get_registry().client.connection_pool
    assert get_runs().client.connection_pool is pool
    assert get_quarantine().client.connection_pool is pool
    assert TrainqCollector(get_registry()).registry.client.connection_pool is pool


def test_logs_append_and_read_after_a_cursor(registry: Registry) -> None:
    registry.create(record("a"))
    registry.append_log("a", ["one", "two"])
    first = registry.read_log("a")
    assert [line for _, line in first] == ["one", "two"]
    registry.append_log("a", ["three"])
    assert [line for _, line in registry.read_log("a", first[-1][0])] == ["three"]


def test_delete_removes_every_trace(registry: Registry) -> None:
    registry.create(record("a", tags={"k": "v"}))
    registry.append_log("a", ["one", "two"])
    registry.delete("a")
    assert registry.client.keys(registry.keys.job("a") + "*") == []
    assert registry.find("a") is None
    assert registry.list() == [] and registry.list(tag="k=v") == []
    assert registry.queue_counts() == {"probe": {}}


def test_a_job_is_counted_in_one_hash_by_queue_type_and_state(registry: Registry) -> None:
    # given a job recorded, claimed and finished
    registry.create(record("a", type="data"))
    registry.claim("a", 0, "w@host", time.time() + 30)
    registry.transition("a", JobState.SUCCEEDED, allowed={JobState.RUNNING}, lease_until=0)
    # then its counts are fields of one hash, each state it left kept at 0, and nothing else counts it
    assert registry.client.hgetall(registry.keys.stats()) == {
        b'["probe","data","queued"]': b"0",
        b'["probe","data","running"]': b"0",
        b'["probe","data","succeeded"]': b"1",
    }
    legacy = (registry.keys.queues(), registry.keys.types())
    legacy += (registry.keys.queue_stats("probe"), registry.keys.type_stats("data"))
    assert registry.client.exists(*legacy) == 0
    # and the readers sum them by queue, by type and in all
    assert registry.queue_counts() == {"probe": {"succeeded": 1}}
    assert registry.type_counts() == {"data": {"succeeded": 1}}
    assert registry.counts()[JobState.SUCCEEDED] == 1


ODD_NAMES = ['q"uote', "back\\slash", "ünï/cødé ☃ 😀", "a,b:[c]", "tab\tline\nend"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_the_scripts_name_a_counter_as_python_does(registry: Registry, name: str) -> None:
    # given a job whose queue and type have odd names (the registry takes any), counted by Python
    # at its creation, then moved and dropped by the scripts (which build the field from the record)
    job = record("a", queue=name, type=f"{name}!")
    assert stats_field(name, f"{name}!", "queued") == json.dumps(
        [name, f"{name}!", "queued"], separators=(",", ":")
    )
    assert (
        stats_field(name, f"{name}!", "queued")
        == f'[{job.to_hash()["queue"]},{job.to_hash()["type"]},"queued"]'
    )
    registry.create(job)
    registry.transition("a", JobState.RUNNING, allowed={JobState.QUEUED})
    # then both wrote the same fields (a field either wrote alone would be left at 1 or -1)
    counters = registry.client.hgetall(registry.keys.stats())
    assert counters == {
        stats_field(name, f"{name}!", "queued").encode(): b"0",
        stats_field(name, f"{name}!", "running").encode(): b"1",
    }
    assert registry.queue_counts() == {name: {"running": 1}}
    assert registry.type_counts() == {f"{name}!": {"running": 1}}
    assert (
        [r.id for r in registry.list(queue=name)]
        == [r.id for r in registry.list(job_type=f"{name}!")]
        == ["a"]
    )
    registry.delete("a")
    assert set(registry.client.hvals(registry.keys.stats())) == {b"0"}
    assert registry.queue_counts() == {name: {}}


def count_as_before(registry: Registry, job: JobRecord) -> None:
    """Move ``job``'s count to where a writer before schema version 4 kept it (the per-queue and
    per-type hashes, the queue and type sets), as if an older worker had recorded it."""
    client, keys, state = registry.client, registry.keys, job.state.value
    client.hdel(keys.stats(), stats_field(job.queue, job.type, state))  # these tests' only job on it
    client.hincrby(keys.queue_stats(job.queue), state, 1)
    client.hincrby(keys.type_stats(job.type), state, 1)
    client.sadd(keys.queues(), job.queue)
    client.sadd(keys.types(), job.type)


def test_counters_of_older_writers_add_to_the_hash(registry: Registry) -> None:
    # given jobs counted by an older writer (one on a queue and of a type only it has seen) and by
    # this release, on a shared queue and type
    old, shared = record("old", queue="old-q", type="old-t"), record("shared", type="old-t")
    for job in (old, shared):
        registry.create(job)
        count_as_before(registry, job)
    registry.create(record("new"))
    # then the readers add both, by queue, by type and in all, and know the older writer's names
    assert registry.queue_counts() == {"old-q": {"queued": 1}, "probe": {"queued": 2}}
    assert registry.type_counts() == {"old-t": {"queued": 2}, "probe": {"queued": 1}}
    assert registry.counts()[JobState.QUEUED] == 3
    assert [r.id for r in registry.list(job_type="old-t")] == ["shared", "old"]
    assert [r.id for r in registry.list(queue="old-q")] == ["old"]
    # when this release moves the older writer's jobs (the hash's field goes below 0) and drops one
    for job_id in ("old", "shared"):
        registry.transition(job_id, JobState.SUCCEEDED, allowed={JobState.QUEUED})
    registry.delete("old")
    # then the sums are still right: the legacy hash counts them where they started, the new one moves them
    assert registry.client.hget(registry.keys.stats(), stats_field("old-q", "old-t", "queued")) == b"-1"
    assert registry.queue_counts() == {"old-q": {}, "probe": {"queued": 1, "succeeded": 1}}
    assert registry.type_counts() == {"old-t": {"succeeded": 1}, "probe": {"queued": 1}}
    assert registry.counts()[JobState.SUCCEEDED] == 1 and registry.counts()[JobState.QUEUED] == 1


def test_with_every_sentinel_down_the_registry_gives_up_within_its_own_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given Sentinel addresses where nothing listens (three sentinels, all down), and 2 failover retries
    monkeypatch.setattr(sentinel, "FAILOVER_RETRIES", 2)
    dead = ";".join(f"sentinel://:s3cret@127.0.0.1:{free_port()}" for _ in range(3))
    settings = Settings(broker_url=dead, sentinel_master="trainq", connect_timeout_s=1)
    registry = Registry.from_settings(settings)
    # when it is pinged
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="Sentinel master 'trainq'"):
        registry.ping()
    # then it fails after its own few retries, not after redis-py's 10 per sentinel on top
    # (3 lookups x 3 sentinels x ~4.4 s before the fix)
    assert time.monotonic() - started < 3


def test_a_process_forked_while_another_thread_holds_the_pool_lock_can_still_talk(registry: Registry) -> None:
    # given the process's registry, and a thread inside its pool's lock (the reaper mid-command)
    from trainq.store.registry import get_registry

    pool = get_registry().client.connection_pool
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with pool._lock:
            entered.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    threading.Timer(0.2, leave.set).start()
    # when the process forks (Celery replacing a pool process)
    pid = os.fork()
    if pid == 0:
        # then the child can run a command (before the fix it waited on a lock no thread would free)
        try:
            get_registry().client.ping()
            os._exit(0)
        finally:
            os._exit(1)
    holder.join()
    deadline = time.monotonic() + 15
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked process hung on the pool's lock")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(done[1]) == 0
