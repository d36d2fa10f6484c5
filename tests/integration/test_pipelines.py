"""Pipelines against real Redis and real workers: order, fan-out/fan-in, exact release,
failure and resume, cancel, lost releases, validation, and secrets kept out of sight."""

from __future__ import annotations

import json
import textwrap
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from tests.fixtures import Workers, dump_redis, run_cli, wait_for
from trainq import JobState, Pipeline, app, get_registry, run_pipeline_file
from trainq.cli import main
from trainq.job import lifecycle
from trainq.job.record import JobEvent, JobRecord
from trainq.job.types import get_job_type
from trainq.pipelines.runs import FIRST_FENCE, RunState, RunStatus, get_runs

SECRET = "s3cr3t-value-4711"


def write(tmp_path: Path, jobs: list[dict[str, Any]], name: str = "pipeline.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"pipeline_id": "test", "jobs": jobs}))
    return path


def record(run_id: str, job: str) -> JobRecord:
    return get_registry().get(f"{run_id}.{job}")


def finished(run_id: str, timeout: float = 60) -> RunStatus:
    return wait_for(
        lambda: (s := get_runs().status(run_id)).finished and s, timeout, message=f"{run_id} ends"
    )


def cli(*args: str) -> Result:
    """The trainq CLI in this process (its own exit code and output)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_linear_chain_of_four_commands_runs_in_order(workers: Workers, tmp_path: Path) -> None:
    # given a chain a -> b -> c -> d of commands, and two worker processes free to run any of them
    workers.start("command", concurrency=2)
    jobs = [{"job_id": "a", "command": "echo a >> order.txt"}]
    for prev, job in zip("abc", "bcd", strict=True):
        jobs.append({"job_id": job, "command": f"echo {job} >> order.txt", "depends_on": [prev]})
    jobs[-1].update(command="echo d >> order.txt && cp order.txt result.txt", result_files=["result.txt"])
    # when it runs from the CLI and is waited for
    result = run_cli("pipeline", "run", str(write(tmp_path, jobs)), "--wait")
    # then it succeeds, each job starting only after the one before it finished
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = result.stdout.splitlines()[0]
    assert (tmp_path / "order.txt").read_text().split() == ["a", "b", "c", "d"]
    records = [record(run_id, job) for job in "abcd"]
    for before, after in pairwise(records):
        assert after.started_at is not None and before.finished_at is not None
        assert after.started_at >= before.finished_at
    assert f"run {run_id} succeeded" in result.stdout
    # and its result files are collected
    out = cli("pipeline", "results", run_id, "--output", str(tmp_path / "out"))
    assert out.exit_code == 0
    assert (tmp_path / "out" / "d" / "result.txt").read_text().split() == ["a", "b", "c", "d"]


def test_fan_out_of_three_then_fan_in(workers: Workers) -> None:
    # given root -> {x, y, z} (1 s each) -> join, built in Python, and three worker processes
    workers.start("probe", concurrency=3)
    pipeline = Pipeline("fan").add("root", type="probe")
    for branch in "xyz":
        pipeline.add(branch, type="probe", config={"seconds": 1}, depends_on=["root"])
    run_id = pipeline.add("join", type="probe", depends_on=["x", "y", "z"]).run()
    # when it runs
    assert finished(run_id).state is RunState.SUCCEEDED
    root, join = record(run_id, "root"), record(run_id, "join")
    branches = [record(run_id, b) for b in "xyz"]
    # then the branches start after the root, run side by side, and join starts after all of them
    assert all(b.started_at >= root.finished_at for b in branches)  # type: ignore[operator]
    assert max(b.started_at for b in branches) < min(b.finished_at for b in branches)  # type: ignore[type-var]
    assert join.started_at >= max(b.finished_at for b in branches)  # type: ignore[operator,type-var]


def test_a_job_starts_when_its_own_dependencies_are_done(workers: Workers) -> None:
    # given A fast and B slow (no dependencies), C after A, D after A and B
    workers.start("probe", concurrency=3)
    run_id = (
        Pipeline("exact")
        .add("A", type="probe", config={"seconds": 0.2})
        .add("B", type="probe", config={"seconds": 5})
        .add("C", type="probe", config={"seconds": 0.2}, depends_on=["A"])
        .add("D", type="probe", depends_on=["A", "B"])
        .run()
    )
    assert finished(run_id).state is RunState.SUCCEEDED
    a, b, c, d = (record(run_id, job) for job in "ABCD")
    # then C ran and finished while B was still running, and D started only after both
    assert c.finished_at < b.finished_at  # type: ignore[operator]
    assert d.started_at >= max(a.finished_at, b.finished_at)  # type: ignore[operator,type-var]
    # and C was released quickly after A finished (the hook runs in the worker)
    assert c.started_at - a.finished_at < 1.0  # type: ignore[operator]


def test_failure_blocks_only_descendants_and_resume_reruns_only_those(
    workers: Workers, tmp_path: Path
) -> None:
    # given a job that fails until a flag file exists, with descendants, beside an independent branch
    workers.start("command", concurrency=2)
    jobs = [
        {"job_id": "root", "command": "echo root"},
        {"job_id": "bad", "command": "test -f fixed.flag", "depends_on": ["root"], "retry_count": 0},
        {"job_id": "child", "command": "echo child", "depends_on": ["bad"]},
        {"job_id": "grandchild", "command": "echo grandchild", "depends_on": ["child", "side"]},
        {"job_id": "side", "command": "sleep 1", "depends_on": ["root"]},
        {"job_id": "side2", "command": "echo side2", "depends_on": ["side"]},
    ]
    path = write(tmp_path, jobs)
    # when it runs and is waited for, it exits 1
    result = run_cli("pipeline", "run", str(path), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    run_id = result.stdout.splitlines()[0]
    status = {job.job_id: job for job in get_runs().status(run_id).jobs}
    # then only the failed job's descendants are blocked, by it; the other branch ran to the end
    assert {j: s.state for j, s in status.items()} == {
        "root": "succeeded",
        "bad": "dead",
        "child": "blocked",
        "grandchild": "blocked",
        "side": "succeeded",
        "side2": "succeeded",
    }
    assert status["child"].blocked_by == status["grandchild"].blocked_by == "bad"
    assert status["bad"].exit_code == 1
    shown = cli("pipeline", "status", run_id)
    assert "blocked by bad" in shown.output and "failed" in shown.output
    kept = {job: record(run_id, job) for job in ("root", "side", "side2")}
    # when the cause is fixed and the run resumed
    (tmp_path / "fixed.flag").write_text("")
    resumed = cli("pipeline", "resume", run_id)
    assert resumed.exit_code == 0 and "re-running bad" in resumed.output
    # then it succeeds, and the jobs that had succeeded were not run again
    assert finished(run_id).state is RunState.SUCCEEDED
    for job, before in kept.items():
        after = record(run_id, job)
        assert (after.started_at, after.attempt) == (before.started_at, before.attempt)
    assert [e.reason for e in get_registry().events(f"{run_id}.bad")][-3] == f"pipeline run {run_id} resumed"
    assert record(run_id, "grandchild").state is JobState.SUCCEEDED
    assert cli("pipeline", "resume", run_id).exit_code == 2  # nothing left to resume


def test_resume_after_the_file_was_edited_reruns_the_run_s_own_spec_and_says_so(
    workers: Workers, tmp_path: Path
) -> None:
    # given a run from a file whose job failed, resumed once with the file unchanged
    workers.start("command", concurrency=1)
    path = write(tmp_path, [{"job_id": "bad", "command": "exit 3", "retry_count": 0}], "fail.json")
    started = run_cli("pipeline", "run", str(path), "--wait")
    assert started.returncode == 1, started.stdout + started.stderr
    run_id = started.stdout.splitlines()[0]
    unchanged = run_cli("pipeline", "resume", run_id)
    assert unchanged.returncode == 0 and unchanged.stderr == "", unchanged.stdout + unchanged.stderr
    assert finished(run_id).state is RunState.FAILED
    # when the user fixes the file and resumes the run
    write(tmp_path, [{"job_id": "bad", "command": "true", "retry_count": 0}], "fail.json")
    resumed = run_cli("pipeline", "resume", run_id)
    # then it resumes the run as it started, and says on stderr that the file is newer and how to run it
    assert resumed.returncode == 0 and "re-running bad" in resumed.stdout, resumed.stdout + resumed.stderr
    assert resumed.stderr == (
        f"note: {path} changed since this run started; resume re-runs the run's own spec "
        f"(run the file again for the new one: trainq pipeline run {path})\n"
    )
    assert finished(run_id).state is RunState.FAILED
    assert record(run_id, "bad").exit_code == 3


def test_retry_of_a_dead_pipeline_job_releases_its_blocked_dependants(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a -> b where a fails while a flag is in Redis, with no retries: a dead, b blocked
    workers.start("probe", concurrency=1)
    redis_client.set("test:fault:a", 1)
    run_id = (
        Pipeline("rerun")
        .add("a", type="probe", config={"fault_key": "test:fault:a"}, retry_count=0)
        .add("b", type="probe", depends_on=["a"])
        .run()
    )
    status = finished(run_id, timeout=10)
    assert status.state is RunState.FAILED
    assert {j.job_id: (j.state, j.blocked_by) for j in status.jobs} == {
        "a": ("dead", None),
        "b": ("blocked", "a"),
    }
    # when b, never started, is retried, it points at what holds it
    held = run_cli("retry", f"{run_id}.b")
    assert held.returncode != 0 and "blocked by a" in held.stderr and "pipeline resume" in held.stderr
    # and when the cause is removed and a is retried through the CLI
    redis_client.delete("test:fault:a")
    result = run_cli("retry", f"{run_id}.a")
    assert result.returncode == 0, result.stdout + result.stderr
    # then a succeeds, b is released and succeeds, and the run ends succeeded
    status = finished(run_id, timeout=10)
    assert {j.job_id: j.state for j in status.jobs} == {"a": "succeeded", "b": "succeeded"}
    assert status.state is RunState.SUCCEEDED
    assert record(run_id, "b").started_at >= record(run_id, "a").finished_at  # type: ignore[operator]


def test_a_retry_releases_no_dependant_another_failed_job_still_holds(redis_client: redis.Redis) -> None:
    # given {a, c} -> d -> e with a and c dead (run by hand, no worker): d and e blocked by a
    run_id = (
        Pipeline("held")
        .add("a", type="probe")
        .add("c", type="probe")
        .add("d", type="probe", depends_on=["a", "c"])
        .add("e", type="probe", depends_on=["d"])
        .run()
    )
    registry = get_registry()

    def end(job: str, state: JobState) -> None:
        current = record(run_id, job)
        claimed = registry.claim(current.id, current.fence, "w@test", time.time() + 60)
        assert claimed is not None
        lifecycle.finish(registry, claimed, state)

    def steps() -> dict[str, tuple[str, str | None]]:
        return {j.job_id: (j.state, j.blocked_by) for j in get_runs().status(run_id).jobs}

    end("a", JobState.DEAD)
    end("c", JobState.DEAD)
    assert steps()["e"] == ("blocked", "a") and get_runs().status(run_id).state is RunState.FAILED
    # when a is retried
    assert cli("retry", f"{run_id}.a").exit_code == 0
    # then a is queued and the run runs, but d and e stay blocked, now by c
    assert steps() == {
        "a": ("queued", None),
        "c": ("dead", None),
        "d": ("blocked", "c"),
        "e": ("blocked", "c"),
    }
    assert get_runs().status(run_id).state is RunState.RUNNING
    # and when c is retried too, d and e wait, and both successes release d
    assert cli("retry", f"{run_id}.c").exit_code == 0
    assert steps()["e"] == ("waiting", None)
    end("a", JobState.SUCCEEDED)
    end("c", JobState.SUCCEEDED)
    assert steps()["d"] == ("queued", None) and steps()["e"] == ("waiting", None)


def test_cancel_stops_running_and_waiting_jobs(workers: Workers, redis_client: redis.Redis) -> None:
    # given a long job with a dependant, and a second root still queued behind it
    workers.start("probe", concurrency=1)
    run_id = (
        Pipeline("cancel")
        .add("long", type="probe", config={"seconds": 60})
        .add("after", type="probe", depends_on=["long"])
        .add("queued", type="probe")
        .run()
    )
    wait_for(lambda: record(run_id, "long").state is JobState.RUNNING, message="long job running")
    # when the run is cancelled
    result = cli("pipeline", "cancel", run_id)
    # then everything stops and nothing more starts
    assert result.exit_code == 0, result.output
    wait_for(lambda: record(run_id, "long").state is JobState.CANCELLED)
    status = {job.job_id: job.state for job in finished(run_id).jobs}
    assert status == {"long": "cancelled", "after": "cancelled", "queued": "cancelled"}
    assert get_runs().status(run_id).state is RunState.CANCELLED
    assert redis_client.llen(f"test:attempts:{run_id}.queued") == 0
    # and Celery says REVOKED for each job it was sent, as for a revoked task (a client's get() raises)
    assert [app.AsyncResult(f"{run_id}.{job}").state for job in ("long", "queued")] == ["REVOKED"] * 2
    # and the run still shows them cancelled once clean has dropped their records
    assert cli("clean", "--keep", "0").exit_code == 0 and get_registry().find(f"{run_id}.long") is None
    assert {job.job_id: job.state for job in get_runs().status(run_id).jobs} == status


def test_a_release_that_loses_the_race_with_a_cancel_records_and_sends_nothing(
    redis_client: redis.Redis,
) -> None:
    # given A -> B, with A queued (no worker) and the run cancelled
    run_id = Pipeline("late").add("A", type="probe").add("B", type="probe", depends_on=["A"]).run()
    assert get_runs().cancel(run_id) == 1  # A; B, never recorded, is cancelled as a step
    queued = redis_client.llen("probe:4")
    # when A's worker, slower than the cancel, releases B
    spec = json.loads(redis_client.hget(get_registry().keys.pipeline_specs(run_id), "B") or "{}")
    sent = get_runs().send(run_id, [("B", spec)], new=True)
    # then B is neither recorded nor sent, and the run stays cancelled
    assert sent == []
    assert get_registry().find(f"{run_id}.B") is None
    assert redis_client.llen("probe:4") == queued
    assert get_runs().status(run_id).state is RunState.CANCELLED


def test_a_finish_writes_and_sends_the_dependants_its_success_alone_releases(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a diamond A -> (B, C) -> D, with A queued (no worker)
    pipeline = Pipeline("diamond").add("A", type="probe").add("B", type="probe", depends_on=["A"])
    pipeline.add("C", type="probe", depends_on=["A"]).add("D", type="probe", depends_on=["B", "C"])
    run_id = pipeline.run()
    sent_after: list[list[str]] = []
    send = get_runs().send
    monkeypatch.setattr(
        get_runs(),
        "send",
        lambda r, jobs, new=False: sent_after.append([j for j, _ in jobs]) or send(r, jobs, new),
    )
    registry = get_registry()

    def messages() -> int:  # on the probe queue, all priorities
        return sum(redis_client.llen(k) for k in redis_client.scan_iter("probe*", _type="list"))

    queued = messages()

    def run(job: str) -> JobRecord:
        claimed = registry.claim(f"{run_id}.{job}", FIRST_FENCE, "w@test", time.time() + 60)
        assert claimed is not None
        lifecycle.finish(registry, claimed, JobState.SUCCEEDED)
        return claimed

    # when A is claimed: its record holds the specs of B and C, which wait for A alone
    a = run("A")
    assert sorted(a.next_specs or {}) == ["B", "C"]
    # then A's finish itself recorded and sent B and C: nothing was left to send after it
    assert sent_after == []
    assert [record(run_id, j).state for j in "BC"] == [JobState.QUEUED, JobState.QUEUED]
    assert messages() == queued + 2
    # and D, which waits for both, is released by the second of them, also within its finish
    b, c = run("B"), run("C")
    assert not b.next_specs and sorted(c.next_specs or {}) == ["D"]
    assert sent_after == [] and record(run_id, "D").state is JobState.QUEUED
    assert messages() == queued + 3
    # and the next_specs are never stored
    assert b"next_specs" not in redis_client.hkeys(registry.keys.job(f"{run_id}.A"))


def test_a_release_lost_with_its_worker_is_swept(workers: Workers) -> None:
    # given A -> B where A's success was recorded but its worker died before releasing B
    run_id = Pipeline("lost").add("A", type="probe").add("B", type="probe", depends_on=["A"]).run()
    now = time.time()
    get_registry().transition(
        f"{run_id}.A",
        JobState.SUCCEEDED,
        allowed={JobState.QUEUED},
        fields={"started_at": now, "finished_at": now},
        event=JobEvent(state=JobState.SUCCEEDED, at=now, reason="worker died before releasing"),
    )
    # when a worker runs (its sweeper looks at running runs after the grace period)
    workers.start("probe")
    # then B is released and runs once, A not again
    assert finished(run_id, timeout=30).state is RunState.SUCCEEDED
    assert record(run_id, "B").attempt == 1
    assert record(run_id, "A").started_at == round(now, 3)  # times are kept to the millisecond


INVALID = [
    (
        '{"pipeline_id": "p", "jobs": [{"job_id": "a", "command": "x"}, {"job_id": "a", "command": "y"}]}',
        "job 'a': duplicate job id",
    ),
    (
        '{"pipeline_id": "p", "jobs": [{"job_id": "a", "command": "x", "depends_on": ["zz"]}]}',
        "job 'a': depends on unknown job 'zz'",
    ),
    (
        '{"pipeline_id": "p", "jobs": [{"job_id": "a", "command": "x", "depends_on": ["b"]},'
        ' {"job_id": "b", "command": "x", "depends_on": ["a"]}]}',
        "dependency cycle: a -> b -> a",
    ),
    (
        '{"pipeline_id": "p", "jobs": [{"job_id": "a", "command": "x", "timeout": "soon"}]}',
        "job 'a': timeout: bad duration 'soon'",
    ),
    (
        '{"pipeline_id": "p", "jobs": [{"job_id": "a", "type": "trainnig"}]}',
        "job 'a': unknown job type 'trainnig'",
    ),
    (
        '{"pipeline_id": "p", "jobs": [{"job_id": "a", "type": "probe", "config": {"seconds": "x"}}]}',
        "job 'a': invalid payload for job type 'probe': seconds:",
    ),
    (
        '{"pipeline_id": "p", "jobs": [{"job_id": "a", "type": "probe", "command": "x"}]}',
        "job 'a': has both command and type",
    ),
    ('{"pipeline_id": "p", "jobs": [{"job_id": "a"}]}', "job 'a': needs either command or type"),
    ('{"pipeline_id": "p", "jobs": [', "is not valid JSON: Expecting value at line 1 column 31"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_every_validation_error_exits_2_with_nothing_stored(
    text: str, message: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    for command in ("validate", "run"):
        result = CliRunner().invoke(main, ["pipeline", command, str(path)])
        assert result.exit_code == 2, result.output
        assert message in result.output
    assert redis_client.keys("*") == []  # no run, no job record, no broker message


def test_all_problems_of_a_file_in_one_run_of_the_real_cli(redis_client: redis.Redis) -> None:
    result = run_cli("pipeline", "run", "examples/invalid-pipeline.json")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 9, result.stderr
    assert "dependency cycle: a -> c -> b -> a" in result.stderr
    assert redis_client.keys("*") == []


def test_a_secret_in_environment_is_never_stored_or_shown(workers: Workers, tmp_path: Path) -> None:
    # given a worker whose environment holds the secret, and a job that prints what it is given
    workers.start("command", env={"MY_SECRET": SECRET})
    jobs = [
        {
            "job_id": "leak",
            "command": 'echo "token=$API_TOKEN"; echo "$API_TOKEN" >&2',
            "environment": {"API_TOKEN": "${MY_SECRET}"},
        }
    ]
    # when the pipeline runs to the end
    run_id = run_pipeline_file(write(tmp_path, jobs))
    assert finished(run_id).state is RunState.SUCCEEDED
    job_id = f"{run_id}.leak"
    # then the command saw it (masked in its log), and no output or stored value holds it
    lines = [line for _, line in get_registry().read_log(job_id)]
    assert lines == ["token=***", "***"]
    outputs = [
        cli("pipeline", "status", run_id).output,
        cli("pipeline", "status", run_id, "--json").output,
        cli("logs", job_id).output,
        cli("show", job_id, "--json").output,
        cli("pipeline", "list").output,
    ]
    assert all(SECRET not in out for out in outputs)
    assert "${MY_SECRET}" in get_registry().get(job_id).options["environment"]["API_TOKEN"]
    assert SECRET.encode() not in dump_database()


def test_a_one_character_worker_value_shows_as_written_while_a_token_is_masked(
    workers: Workers, tmp_path: Path
) -> None:
    # given workers whose GPU index and shard are one character, and which hold a token
    worker = workers.start("command", env={"GPU_ID": "1", "SHARD_ID": "1", "MY_SECRET": SECRET})
    # and a pipeline file taking all three from the worker, as the tester wrote it
    path = tmp_path / "gpu.yaml"
    path.write_text(
        textwrap.dedent("""\
            pipeline_id: gpu
            jobs:
              - job_id: train
                command: >-
                  for e in 0 1 2; do echo "epoch $e/3 loss 1 gpu=$CUDA_VISIBLE_DEVICES shard=$SHARD
                  token=$API_TOKEN"; done; echo "trainq:progress 1/1 acc=1"
                environment:
                  CUDA_VISIBLE_DEVICES: "${GPU_ID}"
                  SHARD: "${SHARD_ID}"
                  API_TOKEN: "${MY_SECRET}"
            """)
    )
    # when it runs through the CLI
    run = run_cli("pipeline", "run", str(path), "--wait")
    assert run.returncode == 0, run.stdout + run.stderr
    job_id = f"{run.stdout.splitlines()[0]}.train"
    # then its log shows the digits as written and only the token masked
    logs = run_cli("logs", job_id)
    assert logs.stdout.splitlines() == [
        *(f"epoch {e}/3 loss 1 gpu=1 shard=1 token=***" for e in range(3)),
        "trainq:progress 1/1 acc=1",
    ], logs.stdout
    # and so do its progress metrics
    progress = json.loads(run_cli("show", job_id, "--json").stdout)["progress"]
    assert (progress["step"], progress["total"], progress["metrics"]) == (1, 1, {"acc": 1}), progress
    # and the worker says which variable it left unmasked, by name only (CUDA_VISIBLE_DEVICES is ordinary)
    told = "environment SHARD: ${SHARD_ID} not masked: too short or too common to be a secret"
    assert told in worker.output() and "CUDA_VISIBLE_DEVICES: ${GPU_ID}" not in worker.output()


def dump_database() -> bytes:
    """Every value in the test database, whatever its type."""
    return dump_redis(redis.Redis.from_url(get_registry().url))


def test_a_job_a_resume_requeues_after_a_cancel_read_the_run_is_cancelled_not_sent(
    redis_client: redis.Redis,
) -> None:
    # given a -> b with a dead (run by hand, no worker)
    run_id = Pipeline("race").add("a", type="probe").add("b", type="probe", depends_on=["a"]).run()
    registry, runs = get_registry(), get_runs()
    a = record(run_id, "a")
    lifecycle.finish(registry, registry.claim(a.id, a.fence, "w@test", time.time() + 60), JobState.DEAD)
    # when a resume has reopened the run (its script) when a cancel comes, which finds a still dead
    graph = json.loads(redis_client.hget(runs.keys.pipeline(run_id), "graph") or "{}")
    runs._call("resume", run_id, "", *[x for job, deps in graph.items() for x in (job, len(deps), *deps)])
    assert runs.cancel(run_id) == 0
    # and the resume then re-queues a
    lifecycle.retry(get_job_type("probe"), registry, record(run_id, "a"), reason="resumed")
    # then a is cancelled with its run, and no new message of it waits for a worker (only its first)
    assert record(run_id, "a").state is JobState.CANCELLED
    assert runs.status(run_id).state is RunState.CANCELLED
    assert [redis_client.llen(k) for k in redis_client.keys("probe*")] == [1]


def test_a_release_sent_twice_never_writes_over_a_job_that_started(redis_client: redis.Redis) -> None:
    # given a run whose job a has started (claimed by hand, no worker)
    run_id = Pipeline("twice").add("a", type="probe").run()
    registry, runs = get_registry(), get_runs()
    a = record(run_id, "a")
    assert registry.claim(a.id, a.fence, "w@test", time.time() + 60) is not None
    # when a sweep that found it unrecorded a moment before sends it again (the check already passed)
    spec = json.loads(redis_client.hget(runs.keys.pipeline_specs(run_id), "a") or "{}")
    assert runs.send(run_id, [("a", spec)], new=True) == []
    # then its record stands: still running, never queued again for a second run
    assert record(run_id, "a").state is JobState.RUNNING
    assert [redis_client.llen(k) for k in redis_client.keys("probe*")] == [1]
