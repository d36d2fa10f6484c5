"""Make a Redis dump the way a deployed release leaves it, with that release's own code paths.

    TRAINQ_TEST_DB=5 PYTHONPATH=<a trainq checkout> python3 -m tests.upgrade.make_release_dump OUT.json

Against ``redis://127.0.0.1:6379/<TRAINQ_TEST_DB>`` (flushed first; broker, result backend and
registry share that database, key prefix ``trainq:``), real ``celery worker`` processes and the
CLI leave jobs in every state, a running and a failed pipeline run, schedules, a paused queue and
a quarantined message; then every key is written to OUT.json with an ``expectations`` section
naming what is where (see ``tests/upgrade/test_release_dump.py``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import tests.conftest  # noqa: F401  (the test settings, set before trainq is imported)
from tests.fixtures import ROOT, Workers, run_cli, wait_for

#: Queues: ``probe`` had a worker; ``dump-held`` never had one; ``dump-slow``'s worker was
#: SIGKILLed mid-job; ``dump-paused`` is paused.
PROBE, HELD, SLOW, PAUSED = "probe", "dump-held", "dump-slow", "dump-paused"
TOKEN = "dump-token-5f1c"
SECRET = "dump-secret-9a2e"
IDEMPOTENCY_KEY = "dump-key-1"
FAR_ETA = "2099-01-01T00:00:00+00:00"


def _pipeline(directory: Path, pipeline_id: str, jobs: list[dict[str, Any]]) -> str:
    """Write a pipeline file and start a run of it through the CLI; the run id."""
    import json

    path = directory / f"{pipeline_id}.json"
    path.write_text(json.dumps({"pipeline_id": pipeline_id, "jobs": jobs}))
    return _cli("pipeline", "run", str(path))


def _cli(*args: str) -> str:
    result = run_cli(*args)
    if result.returncode != 0:
        raise RuntimeError(f"trainq {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout.strip()


def make(out: Path) -> dict[str, Any]:
    """Fill the test database as the release would leave it and write the dump to ``out``."""
    from celery import chain
    from trainq.control import submit
    from trainq.jobs import JobState
    from trainq.quarantine import get_quarantine
    from trainq.registry import get_registry
    from trainq.runs import get_runs

    from tests.jobs import probe
    from tests.upgrade.dump import write_dump
    from trainq.settings import get_settings

    registry = get_registry()
    client = registry.client
    client.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="trainq-dump-"))
    pool = Workers(tmp)

    def state(job_id: str) -> JobState:
        return registry.get(job_id).state

    def reaches(job_id: str, wanted: JobState, timeout: float = 30) -> None:
        wait_for(lambda: state(job_id) is wanted, timeout, message=f"{job_id} {wanted.value}")

    try:
        pool.start(PROBE, concurrency=2, name="dump-probe", env={"DUMP_TOKEN": TOKEN})
        _cli(
            "schedule",
            "create",
            "dump-nightly",
            "--cron",
            "0 2 * * *",
            "--type",
            "probe",
            "--config",
            '{"seconds": 0.1}',
            "--priority",
            "7",
        )
        _cli("schedule", "create", "dump-hourly", "--every", "1h", "--type", "probe", "--disabled")
        _cli("pause", PAUSED)

        jobs: dict[str, list[str]] = {s.value: [] for s in JobState}
        ids: dict[str, str] = {}
        ids["progress"] = submit(
            "probe",
            {"seconds": 0.3, "steps": 3},
            job_name="dump-progress",
            tags={"team": "vision", "run": "dump"},
            priority=8,
        )
        ids["secret_env"] = submit(
            "environ", {"name": "SECRET_TOKEN"}, environment={"SECRET_TOKEN": "${DUMP_TOKEN}"}
        )
        ids["secret_payload"] = submit("secret", {"user": "dump", "token": SECRET})
        ids["idempotent"] = _cli("submit", "probe", "--config", '{"seconds": 0.05}', "--key", IDEMPOTENCY_KEY)
        ids["command"] = submit("command", {"command": "echo dump-command-ran"}, queue=PROBE)
        ids["failed"] = submit("probe", {"fail_times": 1, "permanent": True})
        ids["dead"] = submit("probe", {"fail_times": 9}, retry={"max_retries": 1, "base_s": 0.1})
        ids["retrying"] = submit("probe", {"fail_times": 1}, retry={"max_retries": 3, "base_s": 20})
        for name in ("progress", "secret_env", "secret_payload", "idempotent", "command"):
            reaches(ids[name], JobState.SUCCEEDED)
            jobs["succeeded"].append(ids[name])
        reaches(ids["failed"], JobState.FAILED)
        reaches(ids["dead"], JobState.DEAD)
        reaches(ids["retrying"], JobState.RETRYING)
        jobs["failed"].append(ids["failed"])
        jobs["dead"].append(ids["dead"])
        jobs["retrying"].append(ids["retrying"])

        client.lpush(PROBE, b"not json: set aside by the release")
        wait_for(lambda: get_quarantine().count() == 1, 30, message="the quarantined message")

        runs = get_runs()
        failed_run = _pipeline(
            tmp,
            "dump-fails",
            [
                {"job_id": "breaks", "type": "probe", "config": {"fail_times": 1, "permanent": True}},
                {"job_id": "after-break", "type": "probe", "depends_on": ["breaks"]},
            ],
        )
        running_run = _pipeline(
            tmp,
            "dump-flow",
            [
                {"job_id": "first", "type": "probe", "config": {"seconds": 0.05}},
                {"job_id": "held", "type": "probe", "queue": HELD, "depends_on": ["first"]},
                {"job_id": "side", "type": "probe", "queue": HELD},
                {"job_id": "last", "type": "probe", "depends_on": ["held", "side"]},
            ],
        )
        wait_for(lambda: runs.status(failed_run).finished, 30, message="run dump-fails ends")

        def flow_job(job_id: str) -> Any:
            return next(j for j in runs.status(running_run).jobs if j.job_id == job_id)

        wait_for(lambda: flow_job("first").state == "succeeded", 30, message="dump-flow's first job")
        wait_for(
            lambda: flow_job("held").job and state(flow_job("held").job) is JobState.QUEUED,
            30,
            message="dump-flow's held job released",
        )
        # a Celery chain whose first step fails for good: the release records the next step blocked
        chained = chain(probe.s(fail_times=1, permanent=True), probe.si(seconds=0.05)).delay()
        ids["chain_failed"], ids["chain_blocked"] = chained.parent.id, chained.id
        reaches(ids["chain_failed"], JobState.FAILED)
        reaches(ids["chain_blocked"], JobState.BLOCKED)
        jobs["failed"].append(ids["chain_failed"])
        jobs["blocked"].append(ids["chain_blocked"])

        for n in range(3):
            jobs["queued"].append(
                submit(
                    "probe",
                    {"seconds": 0.05},
                    queue=HELD,
                    job_name=f"held-{n}",
                    priority=n * 4,
                    tags={"batch": "held"},
                )
            )
        jobs["queued"].append(submit("command", {"command": "echo held-command"}, queue=HELD))
        ids["paused"] = submit("probe", {}, queue=PAUSED)
        jobs["delayed"].append(submit("probe", {}, queue=HELD, countdown=5, job_name="delayed-due"))
        ids["delayed_far"] = submit("probe", {}, queue=HELD, eta=FAR_ETA, job_name="delayed-far")
        jobs["delayed"].append(ids["delayed_far"])
        ids["cancelled"] = submit("probe", {}, queue=HELD)
        _cli("cancel", ids["cancelled"])
        jobs["cancelled"].append(ids["cancelled"])
        pool.stop_all()  # a warm stop: the retrying job's countdown message goes back to its queue

        slow = Workers(tmp)
        slow.start(SLOW, name="dump-slow")
        ids["running"] = submit("probe", {"seconds": 6, "steps": 6}, queue=SLOW, job_name="killed-mid-run")
        wait_for(
            lambda: (p := registry.get(ids["running"]).progress) and p.step >= 2,
            30,
            message="the slow job's progress",
        )
        slow.started[0].kill()
        jobs["running"].append(ids["running"])
        pool.started += slow.started
        for wanted, listed in jobs.items():
            for job_id in listed:
                assert state(job_id).value == wanted, (job_id, state(job_id), wanted)
        assert runs.status(running_run).state.value == "running"

        settings = get_settings()
        conventions = {
            "release": _release(),
            "key_prefix": settings.key_prefix,
            "broker": "broker, Celery result backend and registry share one Redis database",
            "test_env": {
                k: v
                for k, v in os.environ.items()
                if k.startswith("TRAINQ_")
                and k not in ("TRAINQ_BROKER_URL", "TRAINQ_HOME", "TRAINQ_ARTIFACTS", "TRAINQ_TEST_DB")
            },
            "queues": {
                "probe": "had a worker",
                HELD: "never had a worker",
                SLOW: "worker SIGKILLed mid-job",
                PAUSED: "paused",
            },
            "timestamps": "absolute (made_at): finished records are older than retention by the time "
            "tests load them, so tests set TRAINQ_RETENTION_*=0",
        }
        expectations = {
            "jobs_by_state": jobs,
            "job_ids": ids,
            "runs": {"running": running_run, "failed": failed_run},
            "pipelines": {"running": "dump-flow", "failed": "dump-fails"},
            "run_jobs": {
                "running": {j.job_id: j.state for j in runs.status(running_run).jobs},
                "failed": {j.job_id: j.state for j in runs.status(failed_run).jobs},
            },
            "schedules": {
                "dump-nightly": {"cron": "0 2 * * *", "enabled": True},
                "dump-hourly": {"every": "1h", "enabled": False},
            },
            "paused_queues": [PAUSED],
            "quarantined": 1,
            "idempotency_key": IDEMPOTENCY_KEY,
            "secret_env_value": TOKEN,
            "secret_payload_sha256": hashlib.sha256(SECRET.encode()).hexdigest(),
            "secret_payload": SECRET,
            "command_output": "dump-command-ran",
        }
        return write_dump(out, client, conventions=conventions, expectations=expectations)
    finally:
        pool.stop_all()


def _release() -> str:
    """The commit of the checkout whose trainq made the dump (its ``git describe``)."""
    import subprocess

    import trainq

    where = Path(trainq.__file__).resolve().parent.parent
    found = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return found.stdout.strip() or str(where)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m tests.upgrade.make_release_dump OUT.json")
    document = make(Path(sys.argv[1]))
    print(f"{len(document['keys'])} keys written to {sys.argv[1]} from {ROOT}")
