"""Data the release before #13 wrote stays readable and runnable: its dump is loaded into the
test database, read through the CLI, and finished by a current worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fixtures import Workers, run_cli, wait_for
from tests.integration.test_secrets import run_clis
from tests.upgrade.dump import load_dump
from trainq.job.record import JobState
from trainq.pipelines.runs import get_runs
from trainq.store.registry import get_registry

DUMP = Path(__file__).with_name("release-95980f0.json")
#: Queues with jobs a worker should take; the paused queue stays paused.
QUEUES = ("probe", "dump-held", "dump-slow")
#: The dump's finished records are older than any retention: keep them while the worker sweeps.
KEEP_FOREVER = {f"TRAINQ_RETENTION_{s.upper()}": "0" for s in ("succeeded", "cancelled", "failed", "dead")}


@pytest.fixture
def expected(redis_client: redis.Redis) -> dict[str, Any]:
    """The release's dump loaded into the flushed test database; its expectations."""
    return dict(load_dump(redis_client, DUMP)["expectations"])


def _json(result: Any) -> Any:
    assert result.returncode == 0, (result.args, result.stderr)
    return json.loads(result.stdout)


def test_the_cli_reads_what_the_release_wrote(expected: dict[str, Any]) -> None:
    # given the release's dump, when the CLI lists, shows and reads it
    by_state: dict[str, list[str]] = expected["jobs_by_state"]
    ids, runs = expected["job_ids"], expected["runs"]
    some = {state: listed[0] for state, listed in by_state.items() if listed}
    commands: list[tuple[str, ...]] = [
        ("list", "--json", "--limit", "200"),
        *(("show", job_id, "--json") for job_id in some.values()),
        *(("show", job_id) for job_id in some.values()),
        ("logs", ids["secret_env"]),
        ("logs", ids["command"]),
        ("show", ids["secret_payload"], "--json"),
        ("pipeline", "status", runs["running"], "--json"),
        ("pipeline", "status", runs["failed"], "--json"),
        ("pipeline", "status", runs["running"]),
        ("schedule", "list", "--json"),
        ("stats", "--json"),
        ("quarantine", "list", "--json"),
        ("dead",),
    ]
    results = dict(zip(commands, run_clis(commands, {}), strict=True))
    # then every job is listed in the state the release left it in
    listed = {job["id"]: job["state"] for job in _json(results[commands[0]])}
    for state, job_ids in by_state.items():
        for job_id in job_ids:
            assert listed.get(job_id) == state, (job_id, listed.get(job_id), state)
    # and show gives each state's record, as JSON and as text
    for state, job_id in some.items():
        assert _json(results[("show", job_id, "--json")])["state"] == state
        shown = results[("show", job_id)]
        assert shown.returncode == 0 and job_id in shown.stdout and state in shown.stdout, shown.stderr
    running = _json(results[("show", ids["running"], "--json")])
    assert running["progress"]["step"] >= 2 and running["worker"].startswith("dump-slow@")
    # and logs come back, with the worker-expanded secret masked; a secret payload field stays masked
    assert "SECRET_TOKEN=" in results[("logs", ids["secret_env"])].stdout
    assert expected["secret_env_value"] not in results[("logs", ids["secret_env"])].stdout
    assert expected["command_output"] in results[("logs", ids["command"])].stdout
    assert expected["secret_payload"] not in results[("show", ids["secret_payload"], "--json")].stdout
    # and the pipeline runs show each job's step
    for run in ("running", "failed"):
        status = _json(results[("pipeline", "status", runs[run], "--json")])
        assert status["state"] == run and status["pipeline_id"] == expected["pipelines"][run]
        assert {j["job_id"]: j["state"] for j in status["jobs"]} == expected["run_jobs"][run]
    assert runs["running"] in results[("pipeline", "status", runs["running"])].stdout
    # and the schedules, the paused queue and the quarantined message are there
    schedules = {s["name"]: s for s in _json(results[("schedule", "list", "--json")])}
    for name, rule in expected["schedules"].items():
        assert schedules[name]["enabled"] is rule["enabled"], schedules[name]
    stats = _json(results[("stats", "--json")])
    assert stats["quarantined"] == expected["quarantined"]
    assert [q for q, shown in stats["queues"].items() if shown["paused"]] == expected["paused_queues"]
    assert len(_json(results[("quarantine", "list", "--json")])) == expected["quarantined"]
    assert by_state["dead"][0] in results[("dead",)].stdout


def test_every_filter_lists_the_release_records(expected: dict[str, Any]) -> None:
    # given the release's dump (type and queue indexes, finished jobs in their state index and
    # retention set both), when the registry lists by each filter, then each record is found once
    registry = get_registry()
    job_ids = [job_id for ids in expected["jobs_by_state"].values() for job_id in ids]
    for record in registry.get_many(job_ids):
        for filters in (
            {"state": record.state},
            {"queue": record.queue},
            {"job_type": record.type},
            {"state": record.state, "queue": record.queue, "job_type": record.type},
        ):
            listed = [r.id for r in registry.list(limit=1000, **filters)]
            assert listed.count(record.id) == 1, (record.id, filters)
    # and the counts per state agree with the listings
    counts = registry.counts()
    for state in JobState:
        assert counts[state] == len(registry.list(state=state, limit=1000)), state


def test_the_idempotency_key_still_returns_the_first_job(expected: dict[str, Any]) -> None:
    # given the release's dump, when a job is submitted again with the key the release recorded
    again = run_cli("submit", "probe", "--key", expected["idempotency_key"])
    # then the first job's id comes back
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == expected["job_ids"]["idempotent"]


def test_a_worker_finishes_what_the_release_left(expected: dict[str, Any], workers: Workers) -> None:
    # given the release's dump, when a current worker consumes its queues
    workers.start(*QUEUES, concurrency=2, env=KEEP_FOREVER)
    registry, ids, by_state = get_registry(), expected["job_ids"], expected["jobs_by_state"]
    due = [
        *by_state["queued"],
        *(job_id for job_id in by_state["delayed"] if job_id != ids["delayed_far"]),
        *by_state["retrying"],
        *by_state["running"],
    ]

    def states(job_ids: list[str]) -> dict[str, JobState]:
        return {r.id: r.state for r in registry.get_many(job_ids)}

    # then queued, due delayed, retrying and the running job (its lease long expired) succeed
    wait_for(
        lambda: set(states(due).values()) == {JobState.SUCCEEDED},
        45,
        0.2,
        message="the release's queued, delayed, retrying and running jobs succeed",
    )
    recovered = registry.get(ids["running"])
    assert recovered.recoveries == 1 and recovered.worker != expected_worker(by_state, registry)
    assert registry.get(ids["retrying"]).failures == 1
    # and the running pipeline finishes
    runs = get_runs()
    wait_for(
        lambda: runs.status(expected["runs"]["running"]).state.value == "succeeded",
        30,
        0.2,
        message="the release's running pipeline succeeds",
    )
    # and what was finished, far in the future or paused stays as it was
    assert registry.get(ids["delayed_far"]).state is JobState.DELAYED
    assert registry.get(ids["paused"]).state is JobState.QUEUED
    for state in ("succeeded", "failed", "dead", "cancelled", "blocked"):
        assert set(states(by_state[state]).values()) == {JobState(state)}, state
    assert runs.status(expected["runs"]["failed"]).state.value == "failed"


def expected_worker(by_state: dict[str, list[str]], registry: Any) -> str:
    """The worker the release had on the slow queue (killed), from the running job's history."""
    (job_id,) = by_state["running"]
    return next(e.worker for e in registry.events(job_id) if e.state is JobState.RUNNING)
