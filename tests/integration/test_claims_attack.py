"""Attacks on the main-process claim (``trainq.job.claims``) and the pipeline release that rides on a
finish: no job lost, none run twice, none left running without running, no worker crash."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fixtures import Process, Workers, wait_for
from tests.jobs import attempts_key
from trainq import JobState, Pipeline, get_registry
from trainq.ops import control
from trainq.ops.control import submit
from trainq.ops.worker import worker_command
from trainq.pipelines.runs import RunState, get_runs
from trainq.settings import get_settings


def starts(client: redis.Redis, job_id: str) -> int:
    """How many times the probe handler started for ``job_id``."""
    return sum(1 for e in client.lrange(attempts_key(job_id), 0, -1) if e.startswith(b"start:"))


def settled(client: redis.Redis, queues: tuple[str, ...] = ("probe", "q2")) -> None:
    """Wait until no delivery is left that could start a job again: every message of ``queues``
    (each priority's list) taken and kombu's unacked entries all acked."""

    def idle() -> bool:
        lists = (k for q in queues for k in client.scan_iter(f"{q}*", _type="list"))
        return client.hlen("unacked") == 0 and not any(client.llen(k) for k in lists)

    wait_for(idle, 30, message="every delivery taken and acked")


def all_succeeded(job_ids: list[str]) -> bool:
    return all(r.state is JobState.SUCCEEDED for r in get_registry().get_many(job_ids))


def start_worker(workers: Workers, queue: str, *extra: str, concurrency: int = 1) -> Process:
    """A worker with extra ``celery worker`` options (Workers.start takes none)."""
    name = f"w{uuid.uuid4().hex[:6]}"
    base = ["-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    args = worker_command([queue], name=name, concurrency=concurrency, extra=[*base, *extra])
    process = Process(args, workers.tmp / f"{name}.log", None)
    workers.started.append(process)
    wait_for(lambda: " ready." in process.output() or not process.alive(), 30, message="worker ready")
    assert process.alive(), process.output()
    return process


def publish_raw(queue: str, headers: dict[str, Any], kwargs: dict[str, Any] | None = None) -> None:
    """A Celery protocol 2 message with exactly ``headers`` (as a hostile client would write it)."""
    from trainq.celery import app

    with app.producer_or_acquire() as producer:
        producer.publish(
            [[], kwargs or {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
            exchange=queue,
            routing_key=queue,
            headers=headers,
            serializer="json",
            declare=[],
        )


HOSTILE: list[dict[str, Any]] = [
    {"trainq_claim": {"a": 1}},
    {"trainq_claim": 7},
    {"trainq_claim": ["a", "b", "c"]},
    {"trainq_claim": "x" * 200_000},
    {"trainq_claim": ["0" * 64, "{not json"]},
    {"retries": "1"},
    {"retries": 1.5},
    {"retries": True},
    {"retries": 10**30},
    {"retries": -1},
    {"retries": None},
    {"eta": "garbage"},
    {"eta": 12345},
    {"eta": {"a": 1}},
    {"expires": "garbage"},
    {"expires": [1]},
    {"timelimit": ["x", "y"]},
    {"timelimit": "abc"},
    {"timelimit": 5},
    {"timelimit": [1, 2, 3]},
    {"timelimit": [None, -1]},
]


def test_hostile_headers_leave_the_worker_running(workers: Workers, redis_client: redis.Redis) -> None:
    # given a probe worker
    process = workers.start("probe", concurrency=1)
    # when a client writes task messages with odd claim, retries, eta and expires headers
    ids = []
    for extra in HOSTILE:
        job_id = uuid.uuid4().hex
        ids.append(job_id)
        base = {"lang": "py", "task": "trainq.probe", "id": job_id, "root_id": job_id, "retries": 0}
        publish_raw("probe", {**base, **extra})
    # then the worker still runs jobs, and never died or looped on a traceback
    later = [submit("probe", {}) for _ in range(3)]
    wait_for(lambda: all_succeeded(later), 60, message="the later jobs ran")
    assert process.alive(), process.output()[-3000:]
    out = process.output()
    assert sum(i in out for i in ids) + out.count("set aside a message") == len(HOSTILE), out[-3000:]
    assert "Unrecoverable error" not in out, out[-3000:]
    assert out.count("Traceback") < 3 * len(HOSTILE), out[-3000:]


def test_warm_shutdown_with_queued_jobs_loses_none_and_runs_none_twice(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a worker with two processes, busy, and more jobs queued behind them
    first = workers.start("probe", concurrency=2)
    jobs = [submit("probe", {"seconds": 1.5}) for _ in range(2)] + [
        submit("probe", {"seconds": 0.3}) for _ in range(10)
    ]
    wait_for(
        lambda: all(redis_client.exists(attempts_key(j)) for j in jobs[:2]),
        20,
        message="both long jobs started",
    )
    # when the worker is told to shut down warmly while jobs are still queued, and another takes over
    os.kill(first.pid, signal.SIGTERM)
    wait_for(lambda: not first.alive(), 30, message="the first worker exited")
    workers.start("probe", concurrency=2)
    # then every job succeeds (recovered within its lease at worst), and none ran twice
    wait_for(lambda: all_succeeded(jobs), 60, message="every job succeeded")
    assert {j: starts(redis_client, j) for j in jobs} == dict.fromkeys(jobs, 1)


@pytest.mark.parametrize(
    "extra",
    [
        ["--prefetch-multiplier", "4"],
        ["--max-tasks-per-child", "1"],
        ["--autoscale", "3,1"],
        ["-P", "threads"],
        ["-P", "solo"],
    ],
    ids=["prefetch4", "max-tasks-per-child", "autoscale", "threads", "solo"],
)
def test_worker_options_run_each_job_once(
    extra: list[str], workers: Workers, redis_client: redis.Redis
) -> None:
    # given a worker started with an option that changes how it reserves or forks
    start_worker(workers, "probe", *extra, concurrency=2)
    # when jobs come faster than it runs them
    jobs = [submit("probe", {"seconds": 0.4}) for _ in range(10)]
    # then each runs once (a job held past its lease before a pool process took it is recovered,
    # and the delivery that held it must not run it too)
    wait_for(lambda: all_succeeded(jobs), 60, message="every job succeeded")
    settled(redis_client)
    assert {j: starts(redis_client, j) for j in jobs} == dict.fromkeys(jobs, 1)


def test_pause_mid_stream_then_resume(workers: Workers, redis_client: redis.Redis) -> None:
    # given a worker on a queue with a stream of jobs
    workers.start("probe", concurrency=2)
    jobs = [submit("probe", {"seconds": 0.2}) for _ in range(20)]
    wait_for(lambda: redis_client.exists(attempts_key(jobs[0])), 20, message="the first job started")
    # when the queue is paused mid-stream, held a while, then resumed
    control.pause("probe")
    # the pause under test, past a lease and a reaper round: a claimed job left unrun would be recovered
    time.sleep(get_settings().lease_s + 2 * get_settings().reaper_interval_s)
    control.resume("probe")
    # then every job succeeds once, none recovered
    wait_for(lambda: all_succeeded(jobs), 60, message="every job succeeded")
    records = get_registry().get_many(jobs)
    assert [r.recoveries for r in records] == [0] * len(jobs)
    assert {j: starts(redis_client, j) for j in jobs} == dict.fromkeys(jobs, 1)


def test_revoke_of_queued_jobs_cancels_them_and_runs_none(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a worker busy with a long job, and jobs queued behind it
    workers.start("probe", concurrency=1)
    long = submit("probe", {"seconds": 2})
    queued = [submit("probe", {}) for _ in range(3)]
    wait_for(lambda: redis_client.exists(attempts_key(long)), 20, message="the long job started")
    # when the queued jobs are revoked through Celery
    from trainq.celery import app

    app.control.revoke(queued)
    # then they end cancelled, never run, and the long one succeeds
    wait_for(lambda: get_registry().get(long).state is JobState.SUCCEEDED, 30)
    settled(redis_client)
    assert [r.state for r in get_registry().get_many(queued)] == [JobState.CANCELLED] * 3
    assert [starts(redis_client, j) for j in queued] == [0, 0, 0]


def test_diamond_and_chain_on_two_workers_run_each_job_once(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given two workers on different queues, and a pipeline mixing them: a diamond then a long chain
    workers.start("probe", concurrency=2)
    workers.start("q2", concurrency=2)
    pipeline = Pipeline("mix").add("A", type="probe")
    pipeline.add("B", type="probe", depends_on=["A"]).add("C", type="probe", depends_on=["A"])
    pipeline.add("D", type="probe", depends_on=["B", "C"])
    prev = "D"
    for n in range(12):
        job = f"c{n}"
        pipeline.add(job, type="probe", depends_on=[prev], queue="q2" if n % 2 else "probe")
        prev = job
    run_id = pipeline.run()
    # then the run succeeds, every job once
    status = wait_for(lambda: (s := get_runs().status(run_id)).finished and s, 90, message="run ends")
    assert status.state is RunState.SUCCEEDED, {j.job_id: j.state for j in status.jobs}
    names = ["A", "B", "C", "D", *(f"c{n}" for n in range(12))]
    assert {j: starts(redis_client, f"{run_id}.{j}") for j in names} == dict.fromkeys(names, 1)


def test_a_keyed_dependant_runs_once(workers: Workers, redis_client: redis.Redis) -> None:
    # given A -> B where B is a fair job type (a keyed job, sent through its gate), then C
    workers.start("probe", "fair", concurrency=2)
    run_id = (
        Pipeline("keyed")
        .add("A", type="probe")
        .add("B", type="fair_probe", depends_on=["A"])
        .add("C", type="probe", depends_on=["B"])
        .run()
    )
    status = wait_for(lambda: (s := get_runs().status(run_id)).finished and s, 60, message="run ends")
    assert status.state is RunState.SUCCEEDED, {j.job_id: j.state for j in status.jobs}
    assert [starts(redis_client, f"{run_id}.{j}") for j in "ABC"] == [1, 1, 1]


def test_a_delivery_held_past_its_lease_before_a_pool_process_takes_it_does_not_run_again(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a worker with one pool process, which stalls (stopped: as a slow fork or a busy host)
    process = workers.start("probe", concurrency=1)
    children = [int(p) for p in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
    assert len(children) == 1, children
    os.kill(children[0], signal.SIGSTOP)
    try:
        # when a job arrives (the main process claims it and hands it to the stalled process) and
        # stays there past its lease, so the reaper recovers it with a new delivery
        job_id = submit("probe", {"seconds": 0.5})
        wait_for(lambda: get_registry().get(job_id).recoveries >= 1, 30, message="the job recovered")
    finally:
        os.kill(children[0], signal.SIGCONT)
    # then the job succeeds, its handler started once: the held delivery's claim was lost
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 30, message="the job ran")
    settled(redis_client)
    assert starts(redis_client, job_id) == 1, redis_client.lrange(attempts_key(job_id), 0, -1)


def run_ends(run_id: str, timeout: float = 60) -> Any:
    return wait_for(lambda: (s := get_runs().status(run_id)).finished and s, timeout, message="run ends")


def test_cancel_mid_chain_then_resume_runs_each_job_once(workers: Workers, redis_client: redis.Redis) -> None:
    # given a chain A (2 s) -> B -> C -> D on two workers, two queues
    workers.start("probe", concurrency=1)
    workers.start("q2", concurrency=1)
    run_id = (
        Pipeline("cr")
        .add("A", type="probe", config={"seconds": 2})
        .add("B", type="probe", depends_on=["A"], queue="q2")
        .add("C", type="probe", depends_on=["B"])
        .add("D", type="probe", depends_on=["C"], queue="q2")
        .run()
    )
    wait_for(lambda: redis_client.exists(attempts_key(f"{run_id}.A")), 20, message="A started")
    # when the run is cancelled while A runs, then resumed
    get_runs().cancel(run_id)
    assert run_ends(run_id).state is RunState.CANCELLED
    settled(redis_client)
    get_runs().resume(run_id)
    # then it succeeds, A started twice (its stopped attempt and the resumed one), the rest once
    status = run_ends(run_id)
    assert status.state is RunState.SUCCEEDED, {j.job_id: j.state for j in status.jobs}
    assert [starts(redis_client, f"{run_id}.{j}") for j in "ABCD"] == [2, 1, 1, 1]


def test_resume_after_a_failure_releases_the_rest_once(workers: Workers, redis_client: redis.Redis) -> None:
    # given root -> bad -> (x, y) -> z, where bad fails while a fault key is present
    fault = f"test:fault:{uuid.uuid4().hex}"
    redis_client.set(fault, "1")
    workers.start("probe", concurrency=2)
    pipeline = Pipeline("rf").add("root", type="probe")
    pipeline.add("bad", type="probe", config={"fault_key": fault}, depends_on=["root"], retry_count=0)
    pipeline.add("x", type="probe", depends_on=["bad"]).add("y", type="probe", depends_on=["bad"])
    run_id = pipeline.add("z", type="probe", depends_on=["x", "y"]).run()
    assert run_ends(run_id).state is RunState.FAILED
    # when the fault is fixed and the run resumed
    redis_client.delete(fault)
    get_runs().resume(run_id)
    # then it succeeds, and only bad ran again
    status = run_ends(run_id)
    assert status.state is RunState.SUCCEEDED, {j.job_id: j.state for j in status.jobs}
    counts = {j: starts(redis_client, f"{run_id}.{j}") for j in ("root", "bad", "x", "y", "z")}
    assert counts == {"root": 1, "bad": 2, "x": 1, "y": 1, "z": 1}


def test_a_dependant_on_a_queue_no_worker_has_consumed_yet_runs_when_one_starts(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given A -> B where B goes to a queue nobody has consumed or declared yet
    fresh = f"fresh{uuid.uuid4().hex[:6]}"
    workers.start("probe", concurrency=1)
    run_id = (
        Pipeline("fresh").add("A", type="probe").add("B", type="probe", depends_on=["A"], queue=fresh).run()
    )
    wait_for(lambda: get_registry().get(f"{run_id}.A").state is JobState.SUCCEEDED, 20, message="A ran")
    # when a worker for that queue starts
    workers.start(fresh, concurrency=1)
    # then B runs once and the run succeeds
    status = run_ends(run_id)
    assert status.state is RunState.SUCCEEDED, {j.job_id: j.state for j in status.jobs}
    assert starts(redis_client, f"{run_id}.B") == 1


def test_a_duplicate_message_celery_refuses_does_not_claim_the_job(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a queued job, and in front of its message a copy in a content type the worker refuses
    job_id = submit("probe", {})
    (key,) = [k for k in redis_client.keys("probe*") if redis_client.type(k) == b"list"]
    original = json.loads(redis_client.lindex(key, 0))
    copy = {**original, "content-type": "application/x-python-serialize"}
    redis_client.rpush(key, json.dumps(copy))  # BRPOP takes from the right: the copy comes first
    # when a worker takes both
    workers.start("probe", concurrency=1)
    # then the job runs at once, on its first attempt (not left running until its lease expires)
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 20, message="the job ran")
    record = get_registry().get(job_id)
    assert (record.attempt, record.recoveries) == (1, 0)
    assert starts(redis_client, job_id) == 1


def test_script_flushes_during_a_pipeline_lose_no_release(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a fan-out/fan-in pipeline with a chain after it, on two worker processes whose leases
    # outlast a loaded machine's stalls (a lease run out re-runs a job by design: not this test's point)
    workers.start("probe", concurrency=2, env={"TRAINQ_LEASE_S": "30", "TRAINQ_HEARTBEAT_S": "1"})
    pipeline = Pipeline("flush").add("A", type="probe", config={"seconds": 0.2})
    for b in "bcd":
        pipeline.add(b, type="probe", config={"seconds": 0.2}, depends_on=["A"])
    pipeline.add("E", type="probe", depends_on=["b", "c", "d"])
    prev = "E"
    for n in range(6):
        pipeline.add(f"k{n}", type="probe", config={"seconds": 0.2}, depends_on=[prev])
        prev = f"k{n}"
    run_id = pipeline.run()
    # when Redis keeps losing its scripts while it runs
    deadline = time.monotonic() + 20
    while not get_runs().status(run_id).finished and time.monotonic() < deadline:
        redis_client.script_flush()
        time.sleep(0.15)
    # then it succeeds, every job once
    status = run_ends(run_id)
    assert status.state is RunState.SUCCEEDED, {j.job_id: j.state for j in status.jobs}
    names = ["A", "b", "c", "d", "E", *(f"k{n}" for n in range(6))]
    assert {j: starts(redis_client, f"{run_id}.{j}") for j in names} == dict.fromkeys(names, 1)


def test_a_claim_sent_again_after_its_answer_was_lost_is_its_own_and_no_other_claim_is(
    registry: Any, redis_client: redis.Redis
) -> None:
    # given a queued job whose claim by worker w1 landed but whose answer was lost
    job_id = submit("probe", {"seconds": 0})
    lease_until = time.time() + 30
    pipe = redis_client.pipeline()
    registry.claim_on(pipe, job_id, 0, "w1", lease_until)
    sent = list(pipe.command_stack)
    [first] = pipe.execute()
    # when the same claim is sent again, and then a claim of another delivery of the same message by
    # the same worker (a duplicate)
    for args, options in sent:
        pipe.pipeline_execute_command(*args, **options)
    [again] = pipe.execute()
    duplicate = registry.claim(job_id, 0, "w1", lease_until)
    # then the claim sent again is given the record its first try claimed, written once, and the
    # duplicate is refused
    assert registry.claimed(again) == registry.claimed(first) == registry.get(job_id)
    assert registry.get(job_id).attempt == 1
    assert duplicate is None
