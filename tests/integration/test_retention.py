"""Retention against real Redis: finished records expire with every index and count that names
them; waiting and running jobs never do; a pipeline run and its jobs go together."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis
from click.testing import CliRunner, Result

from tests.clients.test_cli_console import trainq
from tests.fixtures import Workers, run_cli, wait_for
from tests.integration.test_registry import record
from tests.jobs import attempts_key
from trainq.cli import main
from trainq.job.record import JobState
from trainq.ops.control import cancel, submit
from trainq.pipelines.runs import Runs
from trainq.store.registry import Registry

RUNNING = {JobState.QUEUED}
KEEP = {"succeeded": 1.0, "dead": 100.0}


def retention(state: str) -> float:
    return KEEP.get(state, 0.0)


def finish(registry: Registry, job_id: str, state: JobState) -> None:
    registry.transition(job_id, JobState.RUNNING, allowed={JobState.QUEUED})
    registry.transition(job_id, state, allowed={JobState.RUNNING})


def test_the_sweep_drops_finished_records_past_retention_and_keeps_the_rest(
    registry: Registry, redis_client: redis.Redis
) -> None:
    # given a succeeded job with a tag and a log, a dead one, a running one, a queued one,
    # a cancelled one (kept forever: retention 0) and a succeeded pipeline job
    for job_id in "sdrqc":
        registry.create(record(job_id, tags={"team": "vision"}))
    registry.create(record("p", pipeline_id="run-1", pipeline_job="x"))
    registry.append_log("s", ["a line"])
    finish(registry, "s", JobState.SUCCEEDED)
    finish(registry, "d", JobState.DEAD)
    finish(registry, "c", JobState.CANCELLED)
    finish(registry, "p", JobState.SUCCEEDED)
    registry.transition("r", JobState.RUNNING, allowed={JobState.QUEUED}, lease_until=time.time() + 60)
    # when the sweep runs 2 s later (succeeded kept 1 s, dead 100 s)
    dropped = registry.expire(retention, time.time() + 2, batch=10)
    # then only the standalone succeeded job is gone, from every index and count
    assert dropped == 1
    assert registry.find("s") is None
    assert not redis_client.keys("trainq:job:s*")
    assert {r.id for r in registry.list()} == {"d", "r", "q", "c", "p"}
    assert {r.id for r in registry.list(tag="team=vision")} == {"d", "r", "q", "c"}
    assert registry.counts()[JobState.SUCCEEDED] == 1  # the pipeline job, which expires with its run
    assert registry.queue_counts()["probe"] == {
        "dead": 1,
        "running": 1,
        "queued": 1,
        "cancelled": 1,
        "succeeded": 1,
    }
    assert registry.type_counts() == registry.queue_counts()
    # and a second sweep (another worker's) finds nothing left to drop and counts nothing twice
    assert registry.expire(retention, time.time() + 2, batch=10) == 0
    assert registry.type_counts()["probe"]["succeeded"] == 1
    # and the dead job goes once its own retention has passed
    assert registry.expire(retention, time.time() + 101, batch=10) == 1
    assert registry.find("d") is None and registry.find("r") and registry.find("q")


def test_a_retried_job_loses_its_expiry_until_it_finishes_again(registry: Registry) -> None:
    # given a succeeded job, re-queued as `trainq retry` does
    registry.create(record("a"))
    finish(registry, "a", JobState.SUCCEEDED)
    registry.transition("a", JobState.QUEUED, allowed={JobState.SUCCEEDED})
    # when the sweep runs well past the retention
    # then the queued job stays
    assert registry.expire(retention, time.time() + 10, batch=10) == 0
    assert registry.get("a").state is JobState.QUEUED
    # and when it finishes again, its retention counts from the new finish
    finish(registry, "a", JobState.SUCCEEDED)
    assert registry.expire(retention, time.time() + 0.5, batch=10) == 0
    assert registry.expire(retention, time.time() + 2, batch=10) == 1


def test_an_idempotency_key_goes_with_its_expired_job(registry: Registry, redis_client: redis.Redis) -> None:
    # given a job submitted with an idempotency key, finished
    assert registry.create(record("k1"), idempotency_key="nightly-2026-11-30") == ("k1", True)
    finish(registry, "k1", JobState.SUCCEEDED)
    # when the sweep drops it past its retention
    assert registry.expire(retention, time.time() + 2, batch=10) == 1
    # then no key is left behind (one per idempotent submit, forever, before), and the key is free again
    assert redis_client.keys("trainq:idempotency:*") == []
    assert registry.create(record("k2"), idempotency_key="nightly-2026-11-30") == ("k2", True)
    assert registry.create(record("k3"), idempotency_key="nightly-2026-11-30") == ("k2", False)


def test_one_sweep_costs_at_most_a_batch_per_state(registry: Registry) -> None:
    # given 25 succeeded jobs past their retention
    for n in range(25):
        registry.create(record(f"j{n}"))
        finish(registry, f"j{n}", JobState.SUCCEEDED)
    # when sweeps of 10 run, then each drops at most 10, oldest first, until none is left
    later = time.time() + 5
    assert [registry.expire(retention, later, batch=10) for _ in range(4)] == [10, 10, 5, 0]
    assert registry.counts()[JobState.SUCCEEDED] == 0


def test_the_sweep_counts_retention_from_the_finish_and_passes_over_long_runs(registry: Registry) -> None:
    # given ten jobs created long ago that finished just now (long runs), then two quick old jobs
    for n in range(10):
        registry.create(record(f"long{n}", created_at=1000.0 + n))
        finish(registry, f"long{n}", JobState.SUCCEEDED)
    for job_id in ("quick1", "quick2"):
        registry.create(record(job_id, created_at=2000.0))
        registry.transition(job_id, JobState.RUNNING, allowed={JobState.QUEUED})
        registry.transition(
            job_id, JobState.SUCCEEDED, allowed={JobState.RUNNING}, fields={"finished_at": 2001.0}
        )
    # when a sweep of 5 runs with the long runs still inside their retention
    # then it passes over them (two pages refused) and drops the two finished long ago
    assert registry.expire(retention, time.time() + 0.5, batch=5) == 2
    assert registry.find("quick1") is None and registry.find("quick2") is None
    assert len(registry.list(state=JobState.SUCCEEDED, limit=50)) == 10
    # and the long runs go once their own retention (from their finish) has passed
    assert registry.expire(retention, time.time() + 2, batch=5) == 5


def cli(*args: str) -> Result:
    """The trainq CLI in this process (its exit code and output; a subprocess costs ~1 s)."""
    return CliRunner().invoke(main, list(args))


def test_workers_expire_finished_jobs_and_runs_on_time(workers: Workers, tmp_path: Path) -> None:
    # given a worker whose retention keeps succeeded jobs and runs 1 s
    workers.start("probe", "command", concurrency=2, env={"TRAINQ_RETENTION_SUCCEEDED": "1s"})
    # and a job that succeeded, one still running, one waiting on a queue nobody consumes
    done = submit("probe", {}, tags={"kind": "short"})
    busy = submit("probe", {"seconds": 30})
    waiting = submit("probe", {}, queue="nobody")
    # and a two-job pipeline that succeeds
    path = tmp_path / "p.json"
    jobs = [{"job_id": "a", "command": "true"}, {"job_id": "b", "command": "true", "depends_on": ["a"]}]
    path.write_text(json.dumps({"pipeline_id": "retention", "jobs": jobs}))
    run = cli("pipeline", "run", str(path), "--wait")
    assert run.exit_code == 0, run.output
    run_id = run.output.splitlines()[0]
    # when the finished job and run pass their retention
    # then they leave show, list, stats and the run's listing, within a few reaper rounds
    wait_for(lambda: cli("show", done).exit_code != 0, 15, message=f"{done} expires")
    assert done not in {j["id"] for j in json.loads(cli("list", "--json").output)}
    assert json.loads(cli("list", "--tag", "kind=short", "--json").output) == []
    stats = json.loads(cli("stats", "--json").output)
    assert stats["states"]["succeeded"] == 0
    # and stats show the memory used and the retention in force (this process's: the defaults)
    assert stats["memory_used"].endswith(("K", "M", "G")) and stats["retention_s"]["failed"] == 30 * 86400
    wait_for(lambda: cli("pipeline", "status", run_id).exit_code != 0, 15, message=f"{run_id} expires")
    assert run_id not in cli("pipeline", "list").output
    assert cli("show", f"{run_id}.a").exit_code != 0
    # and the running and waiting jobs are still there, untouched
    states = {j["id"]: j["state"] for j in json.loads(cli("list", "--json").output)}
    assert states == {busy: "running", waiting: "queued"}
    cancel(busy)
    # and one real CLI process agrees
    assert run_cli("show", done).returncode != 0


def test_a_run_waits_for_a_job_requeued_by_hand_then_goes_with_its_jobs(registry: Registry) -> None:
    # given a succeeded run whose only job was re-queued by hand after the run ended
    runs, keys, now = Runs(registry), registry.keys, time.time()
    run = {"id": "r1", "pipeline_id": "p", "state": "succeeded", "source": "", "created_at": now}
    registry.client.hset(keys.pipeline("r1"), mapping={**run, "graph": json.dumps({"a": []})})
    registry.client.zadd(keys.pipelines_finished("succeeded"), {"r1": now})
    registry.create(record("r1.a", pipeline_id="r1", pipeline_job="a"))
    # when the sweep runs past the run's retention, then the run and its queued job stay
    assert runs.expire(retention, now + 10, batch=10) == 0
    assert registry.find("r1.a") is not None and registry.client.exists(keys.pipeline("r1"))
    # when the job finishes and a retention passes again, then the run goes with its job
    finish(registry, "r1.a", JobState.SUCCEEDED)
    assert runs.expire(retention, now + 12, batch=10) == 1
    assert registry.find("r1.a") is None and not registry.client.exists(keys.pipeline("r1"))
    assert registry.counts()[JobState.SUCCEEDED] == 0


def test_clean_keeps_the_finished_jobs_of_a_run_still_running(
    workers: Workers, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a run whose first job printed its output and succeeded, and whose second still runs
    workers.start("command", "probe")
    (tmp_path / "p8.yaml").write_text(
        "pipeline_id: p8\njobs:\n  - job_id: a\n    command: echo important-a-output\n"
        "  - job_id: b\n    type: probe\n    config: {release_key: go-b}\n    depends_on: [a]\n"
    )
    started = trainq(tmp_path, "pipeline", "run", "p8.yaml")
    assert started.returncode == 0, started.stderr
    run = started.stdout.strip()
    wait_for(lambda: "running" in trainq(tmp_path, "show", f"{run}.b").stdout, 20, message="b running")
    # when finished records are cleaned, by age and by count
    for how in (["--older-than", "0s"], ["--keep", "0"]):
        cleaned = trainq(tmp_path, "clean", *how)
        assert cleaned.returncode == 0 and cleaned.stdout == "removed 0 records\n", cleaned
    # then the finished job keeps its record and its log
    logs = trainq(tmp_path, "logs", f"{run}.a")
    assert logs.returncode == 0 and "important-a-output" in logs.stdout, logs
    # and once the run has ended, clean drops its jobs
    redis_client.set("go-b", 1)
    wait_for(lambda: "succeeded" in trainq(tmp_path, "pipeline", "status", run).stdout.splitlines()[0], 20)
    cleaned = trainq(tmp_path, "clean", "--keep", "0")
    assert cleaned.stdout == "removed 2 records\n", cleaned


def test_a_message_whose_job_record_was_cleaned_is_dropped_not_run(
    tmp_path: Path, workers: Workers, redis_client: redis.Redis
) -> None:
    # given a job cancelled while its message waits in a queue no worker takes yet, and cleaned away
    submitted = trainq(tmp_path, "submit", "probe")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert trainq(tmp_path, "cancel", job_id).returncode == 0
    assert trainq(tmp_path, "clean", "--keep", "0").stdout == "removed 1 records\n"
    # when a worker of its queue starts and takes the message
    worker = workers.start("probe")
    wait_for(lambda: job_id in worker.output() and "dropping" in worker.output(), 20, message="dropped")
    # then the message is dropped: the job never ran nor came back as a Celery client's new job
    assert redis_client.llen(attempts_key(job_id)) == 0
    assert trainq(tmp_path, "show", job_id).returncode == 2
