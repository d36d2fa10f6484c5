"""trainq web's HTTP API against a real stack: a ``trainq web`` (uvicorn) subprocess, Redis and real
Celery workers, driven with httpx. Submit, 422s, paging, pipelines, SSE, auth and CSRF, command refusal.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery import chain
from markupsafe import escape

from tests.fixtures import (
    Beats,
    Process,
    Workers,
    dump_redis,
    free_port,
    in_state,
    run_cli,
    start_redis,
    wait_for,
)
from tests.integration.test_registry import record
from tests.jobs import probe
from trainq import JobState, app, get_registry
from trainq.broker.quarantine import get_quarantine
from trainq.job.record import JobRecord
from trainq.pipelines.runs import get_runs

USER, PASSWORD, TOKEN = "alice", "wonder-land-7", "tok-3f9a1c"
AUTH_ENV = {"TRAINQ_WEB_BASIC_AUTH": f"{USER}:{PASSWORD},bob:builder", "TRAINQ_WEB_TOKEN": TOKEN}
JSON = {"content-type": "application/json"}


class Web:
    """A ``trainq web`` subprocess on a free port, and clients for it."""

    def __init__(self, tmp: Path, env: dict[str, str], name: str = "web") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "trainq", "web", f"--port={self.port}"]
        self.process = Process(args, tmp / f"{name}.log", env)
        wait_for(self._answers, 30, 0.1, message=f"trainq web on {self.port}")

    def _answers(self) -> bool:
        assert self.process.alive(), self.process.output()
        try:
            return httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, auth: Any = (USER, PASSWORD), **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=auth, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """trainq web with basic auth (alice, bob) and a bearer token, for the whole module."""
    server = Web(tmp_path_factory.mktemp("web"), AUTH_ENV)
    yield server
    server.process.stop()


@pytest.fixture
def api(web: Web, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    """A client logged in as alice, on the flushed test database."""
    with web.client() as client:
        yield client


def job_count() -> int:
    return sum(get_registry().counts().values())


def test_submit_shows_progress_result_and_the_caller_in_the_events(
    api: httpx.Client, workers: Workers
) -> None:
    # given a probe worker
    workers.start("probe")
    # when alice submits a job with options over HTTP, twice with one idempotency key
    params = {"name": "nightly <b>", "priority": 7, "tag": ["team=vision"]}
    headers = {**JSON, "idempotency-key": "web-once"}
    first = api.post("/api/v1/jobs/probe", params=params, json={"seconds": 0.6, "steps": 3}, headers=headers)
    again = api.post("/api/v1/jobs/probe", params=params, json={"seconds": 0.6, "steps": 3}, headers=headers)
    # then one job exists, with the options applied
    assert first.status_code == 201, first.text
    job_id = first.json()["id"]
    assert again.json()["id"] == job_id and job_count() == 1
    wait_for(lambda: api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "succeeded", 60, 0.1)
    shown = api.get(f"/api/v1/jobs/{job_id}").json()
    assert (shown["name"], shown["priority"], shown["tags"]) == ("nightly <b>", 7, {"team": "vision"})
    # and its progress numbers, result, transitions and Flower link are there
    assert (
        shown["progress"]["step"] == 3
        and shown["progress"]["total"] == 3
        and shown["progress"]["percent"] == 100
    )
    assert shown["result"]["attempt"] == 1
    assert [e["state"] for e in shown["events"]] == ["queued", "running", "succeeded"]
    assert shown["events"][0]["reason"] == "submitted via web by alice"
    assert shown["flower_url"].endswith(f"/task/{job_id}")
    # and the OpenAPI schema and its docs page describe the API
    assert "/api/v1/pipelines/{run_id}/resume" in api.get("/api/v1/openapi.json").json()["paths"]
    assert api.get("/api/docs").status_code == 200
    # and the list filters find it like trainq list does
    found = api.get("/api/v1/jobs", params={"tag": "team=vision", "state": "succeeded"}).json()
    assert [j["id"] for j in found["jobs"]] == [job_id] and found["next_offset"] is None


def test_a_submit_its_key_refuses_is_409_naming_the_key_and_the_job_holding_it(api: httpx.Client) -> None:
    # given a fair job type's key (its name) whose newer jobs are refused while one waits, and one waiting
    assert run_cli("limits", "set", "fair_probe", "--supersede", "refuse").returncode == 0
    first = api.post("/api/v1/jobs/fair_probe", json={}, headers=JSON)
    assert first.status_code == 201, first.text
    # when another is submitted over HTTP
    refused = api.post("/api/v1/jobs/fair_probe", json={}, headers=JSON)
    # then it is a 409 naming the key and the job holding it, as `trainq submit` says it (exit 1)
    assert refused.status_code == 409, refused.text
    holder = first.json()["id"]
    assert refused.json()["detail"].endswith(
        f" was not started: refused: job {holder} of fair_probe is still waiting or running"
    )
    assert {r.state for r in get_registry().list(limit=10)} == {JobState.QUEUED, JobState.CANCELLED}


def test_bad_input_is_422_with_the_problems_and_nothing_is_enqueued(api: httpx.Client) -> None:
    # given an empty registry; when bad submissions arrive, then each is refused with its reasons
    bad = {
        "bad payload": api.post("/api/v1/jobs/probe", json={"seconds": "soon", "steps": -1.5}, headers=JSON),
        "unknown type": api.post("/api/v1/jobs/no-such-type", json={}, headers=JSON),
        "bad priority": api.post("/api/v1/jobs/probe", params={"priority": 12}, json={}, headers=JSON),
        "bad tag": api.post("/api/v1/jobs/probe", params={"tag": "novalue"}, json={}, headers=JSON),
        "tag twice": api.post(
            "/api/v1/jobs/probe", params={"tag": ["env=dev", "env=prod"]}, json={}, headers=JSON
        ),
        "bad delay": api.post("/api/v1/jobs/probe", params={"delay": "soonish"}, json={}, headers=JSON),
        "past at": api.post(
            "/api/v1/jobs/probe", params={"at": "2020-01-01T00:00:00"}, json={}, headers=JSON
        ),
        "not json": api.post("/api/v1/jobs/probe", content=b"{oops", headers=JSON),
        "not an object": api.post("/api/v1/jobs/probe", json=[1, 2], headers=JSON),
        "too deep": api.post("/api/v1/jobs/probe", content=b"[" * 100_000, headers=JSON),
        "bad name": api.post(
            "/api/v1/jobs/probe", params={"name": "web\x1b]0;PWNED\x07"}, json={}, headers=JSON
        ),
        "not text": api.post("/api/v1/jobs/data", content=b'{"dataset": "ir\\ud800is"}', headers=JSON),
    }
    for what, response in bad.items():
        assert response.status_code == 422, (what, response.text)
        assert response.json()["errors"], what
    assert any(e.startswith("seconds:") for e in bad["bad payload"].json()["errors"])
    assert "known types" in bad["unknown type"].json()["detail"]
    assert "priority" in bad["bad priority"].json()["detail"] and "input" not in bad["bad priority"].text
    assert bad["bad name"].json()["detail"] == (
        "job name 'web\\x1b]0;PWNED\\x07' must be 1 to 200 printable characters"
    )
    assert "dataset is not valid text (lone surrogate)" in bad["not text"].json()["detail"]
    assert bad["tag twice"].json()["detail"] == "tag env given twice: a tag holds one value"
    assert "at 2020-01-01T00:00:00 is " in bad["past at"].json()["detail"]
    assert (
        bad["past at"]
        .json()["detail"]
        .endswith(" ago: the job would run now; give a time to come, or leave at out")
    )
    # and a form-encoded body is not taken as JSON
    assert (
        api.post("/api/v1/jobs/probe", content=b"{}", headers={"content-type": "text/csv"}).status_code == 415
    )
    assert job_count() == 0


def test_an_unknown_query_parameter_is_422_naming_it_and_the_one_meant(api: httpx.Client) -> None:
    # given an empty registry; when requests carry misspelled or unknown query parameters
    pipeline = {"queue_id": "typo", "jobs": [{"job_id": "a", "type": "probe"}]}
    validate = api.post("/api/v1/pipelines", params={"validate": "true"}, json=pipeline)
    options = {"prio": 9, "tags": "a=b", "attempts": 3, "backoff": "exponential"}
    submit = api.post("/api/v1/jobs/training", params=options, json={}, headers=JSON)
    listing = api.get("/api/v1/jobs", params={"limit": 5, "stat": "running"})
    # then each is 422 naming every unknown parameter and the close one meant, and nothing runs
    assert validate.status_code == 422, validate.text
    assert validate.json()["detail"] == "unknown query parameter 'validate'; did you mean 'validate_only'?"
    assert submit.status_code == 422, submit.text
    assert submit.json()["errors"] == [
        "unknown query parameter 'prio'; did you mean 'priority'?",
        "unknown query parameter 'tags'; did you mean 'tag'?",
        "unknown query parameter 'attempts'",
        "unknown query parameter 'backoff'",
    ]
    assert listing.status_code == 422 and "did you mean 'state'?" in listing.text, listing.text
    assert job_count() == 0 and get_runs().recent(5) == []
    # and the declared parameters still work
    checked = api.post("/api/v1/pipelines", params={"validate_only": "true"}, json=pipeline)
    assert checked.status_code == 201 and checked.json()["jobs"] == ["a"], checked.text


def test_a_key_held_by_another_job_type_is_422_naming_it(api: httpx.Client) -> None:
    # given a probe job submitted over HTTP with an idempotency key
    first = api.post("/api/v1/jobs/probe", json={}, headers={**JSON, "idempotency-key": "nightly"})
    assert first.status_code == 201, first.text
    # when a data job comes with the same key
    other = api.post(
        "/api/v1/jobs/data", json={"dataset": "iris"}, headers={**JSON, "idempotency-key": "nightly"}
    )
    # then it is refused naming the key and the type holding it, and only the first job exists
    assert other.status_code == 422, other.text
    assert other.json()["detail"] == (
        f"idempotency key 'nightly' is already held by job {first.json()['id']} of job type 'probe'; "
        "use another key for this job type"
    )
    assert job_count() == 1


def test_listing_pages_through_ten_thousand_jobs_newest_first(api: httpx.Client) -> None:
    # given 10,000 recorded jobs of two types (stored directly, as a busy registry would hold them)
    now = time.time()
    records = [
        JobRecord(
            id=f"seed{n:05d}",
            type="probe" if n % 2 else "training",
            queue="probe" if n % 2 else "training",
            name=f"seed {n}",
            state=JobState.SUCCEEDED if n % 3 else JobState.DEAD,
            priority=5,
            created_at=now + n * 0.001,
            updated_at=now,
        )
        for n in range(10_000)
    ]
    get_registry().create_many(records)

    # when a client reads the first page, one in the middle and the last ones, 500 at a time
    def page(offset: int) -> tuple[list[str], int | None, float]:
        started = time.perf_counter()
        body = api.get("/api/v1/jobs", params={"limit": 500, "offset": offset}).json()
        return [j["id"] for j in body["jobs"]], body["next_offset"], time.perf_counter() - started

    first, after_first, first_s = page(0)
    middle, _, _ = page(5000)
    last, after_last, last_s = page(9500)
    beyond, after_beyond, _ = page(10_000)
    # then the pages hold the jobs newest first, and the last page answers as fast as the first
    newest = [f"seed{n:05d}" for n in reversed(range(10_000))]
    assert (first, middle, last) == (newest[:500], newest[5000:5500], newest[9500:])
    assert (after_first, after_last, beyond, after_beyond) == (500, None, [], None)
    print(f"\nlist pages of 500 at 10,000 jobs: first {first_s * 1000:.0f} ms, last {last_s * 1000:.0f} ms")
    assert last_s < max(1.0, 5 * first_s)
    # and the filters narrow it as trainq list's do
    dead = api.get("/api/v1/dead", params={"limit": 5}).json()["jobs"]
    assert [j["id"] for j in dead] == ["seed09999", "seed09996", "seed09993", "seed09990", "seed09987"]
    both = api.get("/api/v1/jobs", params={"type": "training", "state": "dead", "limit": 2}).json()["jobs"]
    assert [j["id"] for j in both] == ["seed09996", "seed09990"]
    assert api.get("/api/v1/jobs", params={"limit": 501}).status_code == 422


def test_pipeline_run_status_resume_and_cancel(
    api: httpx.Client, workers: Workers, redis_client: redis.Redis
) -> None:
    # given a probe worker and a pipeline whose middle job fails while a fault key exists
    workers.start("probe", concurrency=2)
    redis_client.set("fault:web", 1)
    definition = """
pipeline_id: web-chain
jobs:
  - {job_id: first, type: probe, config: {seconds: 0.1}}
  - {job_id: middle, type: probe, config: {fault_key: "fault:web"}, depends_on: [first], retry_count: 0}
  - {job_id: last, type: probe, depends_on: [middle]}
"""
    # when alice posts it as YAML
    started = api.post("/api/v1/pipelines", content=definition, headers={"content-type": "application/yaml"})
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    # then its status reaches failed, with the last job blocked by the middle one
    status = wait_for(lambda: _finished(api, run_id), 60, 0.1)
    assert status["state"] == "failed" and status["source"] == "web by alice"
    jobs = {j["job_id"]: j for j in status["jobs"]}
    assert jobs["middle"]["state"] == "dead" and "fault:web" in jobs["middle"]["error"]
    assert jobs["last"]["state"] == "blocked" and jobs["last"]["blocked_by"] == "middle"
    # and it is the same content as trainq pipeline status --json
    cli = run_cli("pipeline", "status", run_id, "--json")
    assert json.loads(cli.stdout)["jobs"] == status["jobs"]
    assert run_id in [r["id"] for r in api.get("/api/v1/pipelines").json()]
    # when the fault is gone and alice resumes the run, then it succeeds
    redis_client.delete("fault:web")
    resumed = api.post(f"/api/v1/pipelines/{run_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["restarted"] == ["middle"]
    assert wait_for(lambda: _finished(api, run_id), 60, 0.1)["state"] == "succeeded"
    middle = api.get(f"/api/v1/jobs/{run_id}.middle").json()
    assert f"pipeline run {run_id} resumed via web by alice" in [e["reason"] for e in middle["events"]]
    # and resuming or cancelling a finished run is a conflict, an unknown run is 404
    assert api.post(f"/api/v1/pipelines/{run_id}/resume").status_code == 409
    assert api.post(f"/api/v1/pipelines/{run_id}/cancel").status_code == 409
    assert api.get("/api/v1/pipelines/no-such-run").status_code == 404
    # when a slow run is cancelled, then its running job stops and says who cancelled it
    slow = {"pipeline_id": "slow", "jobs": [{"job_id": "nap", "type": "probe", "config": {"seconds": 30}}]}
    run_id = api.post("/api/v1/pipelines", json=slow).json()["run_id"]
    wait_for(lambda: api.get(f"/api/v1/jobs/{run_id}.nap").json()["state"] == "running", 30, 0.1)
    assert api.post(f"/api/v1/pipelines/{run_id}/cancel").json()["stopped"] == 1
    assert wait_for(lambda: _finished(api, run_id), 30, 0.1)["state"] == "cancelled"
    nap = api.get(f"/api/v1/jobs/{run_id}.nap").json()
    assert nap["state"] == "cancelled"
    assert nap["events"][-1]["reason"] == f"pipeline run {run_id} cancelled via web by alice"
    assert app.AsyncResult(f"{run_id}.nap").state == "REVOKED"  # as for a revoked task, in Celery too


def test_a_pipeline_job_that_has_not_started_is_shown_as_trainq_show_shows_it(api: httpx.Client) -> None:
    # given a run whose second job waits for the first (queued: no worker takes it)
    chain = {
        "pipeline_id": "unstarted",
        "jobs": [{"job_id": "a", "type": "probe"}, {"job_id": "b", "type": "probe", "depends_on": ["a"]}],
    }
    run_id = api.post("/api/v1/pipelines", json=chain).json()["run_id"]
    job_id = f"{run_id}.b"
    # when its job is read over HTTP before it starts, then the answer is trainq show's
    shown = api.get(f"/api/v1/jobs/{job_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json() == json.loads(run_cli("show", job_id, "--json").stdout)
    assert shown.json()["state"] == "waiting" and "it is waiting for a" in shown.json()["why"]
    # and it has no log lines yet, while an id no run has is still a 404
    assert api.get(f"/api/v1/jobs/{job_id}/logs").json() == {"lines": [], "next": "0-0"}
    assert api.get(f"/api/v1/jobs/{run_id}.nosuch").status_code == 404
    assert api.get(f"/api/v1/jobs/{run_id}.nosuch/logs", params={"follow": "true"}).status_code == 404
    # and cancelling it alone is a 409 that says it has not started and names the run's cancel
    refused = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        f"job {job_id} has not started: it is waiting for a; to stop it, cancel its run: "
        f"`trainq pipeline cancel {run_id}`"
    )
    assert api.post(f"/api/v1/jobs/{run_id}.nosuch/cancel").status_code == 404
    # and its page, and the panel the run page opens for it, say the same, linking the run
    for page in (f"/jobs/{job_id}", f"/fragments/jobs/{job_id}"):
        shown_page = api.get(page)
        assert shown_page.status_code == 200 and "it is waiting for a" in shown_page.text, page
        assert f'href="/runs/{run_id}"' in shown_page.text and 'data-state="waiting"' in shown_page.text
    assert api.get(f"/jobs/{run_id}.nosuch").status_code == 404
    # and following its log says what it waits for, then ends when the run is cancelled first
    with api.stream("GET", f"/api/v1/jobs/{job_id}/logs", params={"follow": "true"}) as stream:
        assert stream.status_code == 200
        events = _events(stream.iter_lines())
        waiting = next(events)
        assert waiting["event"] == "waiting" and "it is waiting for a" in waiting["data"]["why"]
        assert api.post(f"/api/v1/pipelines/{run_id}/cancel").status_code == 200
        cancelled, end = next(events), next(events)
        assert cancelled["event"] == "waiting" and f"{job_id} is cancelled" in cancelled["data"]["why"]
        assert end == {"event": "end", "data": {"state": "cancelled", "error": None}}


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Server-Sent Events from a stream's lines, each ``{"event", "data"}`` (data decoded)."""
    event: dict[str, Any] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif line.startswith(("event: ", "data: ")):
            field, _, value = line.partition(": ")
            event[field] = json.loads(value) if field == "data" else value


def test_result_files_of_one_name_in_two_directories_are_each_kept_and_listed_once(
    api: httpx.Client, workers: Workers, tmp_path: Path
) -> None:
    # given a command worker and a pipeline whose job writes model.txt and metrics.json in two run
    # directories, declared by path and by a glob, and a job declaring overlapping entries
    workers.start("command")
    work = tmp_path / "work"
    work.mkdir()
    (work / "p.yaml").write_text(
        "pipeline_id: same-names\n"
        "jobs:\n"
        "  - job_id: train\n"
        "    command: >-\n"
        "      mkdir -p runs/a runs/b && echo A > runs/a/model.txt && echo B > runs/b/model.txt &&\n"
        "      echo 0.1 > runs/a/metrics.json && echo 0.9 > runs/b/metrics.json\n"
        "    result_files: [runs/a/model.txt, runs/b/model.txt, '**/*.json']\n"
        "  - {job_id: all, command: 'true', depends_on: [train], result_files: ['**', '.']}\n"
    )
    # when it runs from the CLI and its results are fetched, by the CLI and over HTTP
    ran = run_cli("pipeline", "run", str(work / "p.yaml"), "--wait")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = ran.stdout.splitlines()[0]
    out = tmp_path / "out"
    fetched = run_cli("pipeline", "results", run_id, "--output", str(out))
    listed = api.get(f"/api/v1/pipelines/{run_id}/results").json()
    # then each file is kept at its path under the job's folder, none overwritten by another
    train = ["runs/a/model.txt", "runs/b/model.txt", "runs/a/metrics.json", "runs/b/metrics.json"]
    assert [(out / "train" / path).read_text() for path in train] == ["A\n", "B\n", "0.1\n", "0.9\n"]
    # and each is listed once: by the CLI as a file, over HTTP as the job's folder "." covers whole
    assert fetched.returncode == 0, fetched.stderr
    printed = fetched.stdout.splitlines()
    assert len(printed) == len(set(printed))
    assert sorted(printed) == sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert {str(out / "train" / path) for path in train} < set(printed)
    assert str(out / "all" / "runs" / "b" / "model.txt") in printed
    assert listed == [
        {"job_id": "train", "files": [f"{run_id}/train/{path}" for path in train]},
        {"job_id": "all", "files": [f"{run_id}/all"]},
    ]


def test_a_seed_style_run_is_reached_by_its_pipeline_id_as_in_the_cli(api: httpx.Client) -> None:
    # given a batch-queue style definition (``queue_id``) posted over HTTP, with no worker to run it
    definition = {"queue_id": "seed-queue", "jobs": [{"job_id": "a", "type": "probe"}]}
    run_id = api.post("/api/v1/pipelines", json=definition).json()["run_id"]
    # when its users ask for it by the pipeline id, as `trainq pipeline status|cancel|results` take it
    status = api.get("/api/v1/pipelines/seed-queue")
    # then each answers for the latest run, and the run page draws it
    assert status.status_code == 200 and status.json()["id"] == run_id, status.text
    assert api.get("/api/v1/pipelines/seed-queue/results").json() == []
    assert api.get("/runs/seed-queue").status_code == 200
    assert api.post("/api/v1/pipelines/seed-queue/cancel").json() == {"run_id": run_id, "stopped": 1}


def test_stats_over_http_are_trainq_stats_with_the_messages_set_aside(api: httpx.Client) -> None:
    # given a message a worker set aside (undecodable)
    get_quarantine().add("data", b"\xff not a message", "not valid base64")
    # when the stats are read over HTTP and with the CLI
    shown = api.get("/api/v1/stats").json()
    cli = json.loads(run_cli("stats", "--json").stdout)
    # then both count it, and both show the memory used and the retention in force
    assert shown["quarantined"] == cli["quarantined"] == 1
    assert shown["retention_s"] == cli["retention_s"] and shown["memory_used"]
    assert shown.keys() == cli.keys()


def _finished(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    status: dict[str, Any] = api.get(f"/api/v1/pipelines/{run_id}").json()
    return status if status["state"] != "running" else None


def test_an_invalid_pipeline_is_422_listing_every_problem(api: httpx.Client) -> None:
    # given a definition with three problems; when it is posted as JSON
    bad = {
        "pipeline_id": "broken",
        "jobs": [
            {"job_id": "a", "type": "no-such-type"},
            {"job_id": "b", "type": "probe", "depends_on": ["zz"]},
            {"job_id": "c", "type": "probe", "config": {"seconds": "x"}},
        ],
    }
    response = api.post("/api/v1/pipelines", json=bad)
    # then the answer lists them all and nothing started
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert len(errors) == 3 and any("'zz'" in e for e in errors) and any("no-such-type" in e for e in errors)
    assert api.get("/api/v1/pipelines").json() == [] and job_count() == 0


def test_a_pipeline_definition_has_the_files_size_limit_and_past_it_is_413(api: httpx.Client) -> None:
    # given a definition padded to 2 MiB, within the 4 MiB a pipeline file may have, and one past 4 MiB
    definition = json.dumps({"pipeline_id": "wide", "jobs": [{"job_id": "a", "type": "probe"}]})
    within, past = (definition + " " * size for size in (2 * 1024 * 1024, 4 * 1024 * 1024))
    url = "/api/v1/pipelines?validate_only=true"

    def posted(body: str) -> list[httpx.Response]:
        """``body`` posted as JSON, and uploaded as a file."""
        return [api.post(url, content=body, headers=JSON), api.post(url, files={"file": ("wide.json", body)})]

    # when each is posted both ways
    # then the one within is taken as the CLI takes it
    for answer in posted(within):
        assert (answer.status_code, answer.json()) == (201, {"pipeline_id": "wide", "jobs": ["a"]})
    # and the one past it is 413, naming the limit
    for answer in posted(past):
        assert answer.status_code == 413, answer.text
        assert answer.json()["detail"] == "the pipeline definition is larger than 4,194,304 bytes"
    assert api.get("/api/v1/pipelines").json() == [] and job_count() == 0


def test_a_pipeline_environment_value_that_is_not_a_string_is_422_naming_it(api: httpx.Client) -> None:
    # given a definition whose environment gives JSON numbers and a boolean; when it is posted
    job = {
        "job_id": "s1",
        "type": "probe",
        "environment": {"MODEL_VERSION": 1.10, "BIG": 1e20, "DEBUG": False},
    }
    response = api.post("/api/v1/pipelines", json={"pipeline_id": "env", "jobs": [job]})
    # then each variable is one problem, named with what it was read as, and nothing started
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        f"job 's1': environment.{name}: read as {read}, not a string; quote the value"
        for name, read in (
            ("MODEL_VERSION", "the number 1.1"),
            ("BIG", "the number 1e+20"),
            ("DEBUG", "the boolean false"),
        )
    ]
    assert api.get("/api/v1/pipelines").json() == [] and job_count() == 0


def test_a_body_with_a_repeated_key_is_422_naming_it(api: httpx.Client) -> None:
    # given bodies that give one key twice: a payload, a pipeline (JSON, YAML, uploaded) and a schedule
    payload = b'{"seconds": 0,\n "seconds": 30}'
    pipeline = b'{"pipeline_id": "dup", "jobs": [{"job_id": "a", "type": "probe",\n "type": "data"}]}'
    yaml_pipeline = b"pipeline_id: dup\njobs:\n  - job_id: a\n    type: probe\n    job_id: b\n"
    schedule = b'{"name": "dup", "every": "1h", "type": "probe",\n "every": "1m"}'
    yaml_type = {"content-type": "application/yaml"}
    # when each is posted
    answers = {
        "payload": api.post("/api/v1/jobs/probe", content=payload, headers=JSON),
        "pipeline": api.post("/api/v1/pipelines", content=pipeline, headers=JSON),
        "yaml pipeline": api.post("/api/v1/pipelines", content=yaml_pipeline, headers=yaml_type),
        "upload": api.post("/api/v1/pipelines", files={"file": ("p.yaml", yaml_pipeline)}),
        "schedule": api.post("/api/v1/schedules", content=schedule, headers=JSON),
    }
    # then each is 422 naming the key and its line, and nothing is stored
    assert {what: (a.status_code, a.json()["detail"]) for what, a in answers.items()} == {
        "payload": (422, "the body: duplicate key 'seconds' (line 2)"),
        "pipeline": (422, "the pipeline definition: duplicate key 'type' (line 2)"),
        "yaml pipeline": (422, "the pipeline definition: duplicate key 'job_id' (line 5)"),
        "upload": (422, "the pipeline definition: duplicate key 'job_id' (line 5)"),
        "schedule": (422, "the body: duplicate key 'every' (line 2)"),
    }
    assert job_count() == 0 and api.get("/api/v1/pipelines").json() == []
    assert api.get("/api/v1/schedules").json() == []


def test_logs_follow_as_server_sent_events(api: httpx.Client, workers: Workers) -> None:
    # given a running job that reports progress and prints a line at the end
    workers.start("probe")
    job_id = api.post("/api/v1/jobs/probe", json={"seconds": 1.0, "steps": 4}, headers=JSON).json()["id"]
    # when a client follows its log over SSE
    events: list[tuple[str, Any]] = []
    with api.stream("GET", f"/api/v1/jobs/{job_id}/logs", params={"follow": "true"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for event in _events(stream.iter_lines()):
            events.append((event["event"], event["data"]))
            if event["event"] == "end":
                break
    # then it got the log line, progress updates as they came, and the end with the final state
    kinds = [k for k, _ in events]
    assert any(k == "log" and "probe done after 1.0s" in d["line"] for k, d in events)
    steps = [d["progress"]["step"] for k, d in events if k == "progress" and d["progress"]]
    assert steps == sorted(steps) and len(steps) >= 2 and steps[-1] == 4
    assert kinds[-1] == "end" and events[-1][1]["state"] == "succeeded"
    # and the plain JSON form gives the same lines, resumable after a stream id
    lines = api.get(f"/api/v1/jobs/{job_id}/logs").json()
    assert any("probe done" in entry["line"] for entry in lines["lines"])
    assert api.get(f"/api/v1/jobs/{job_id}/logs", params={"after": lines["next"]}).json()["lines"] == []
    # and following an unknown job's log is a 404, as reading it is, not a stream that breaks
    for params in ({"follow": "true"}, {}):
        missing = api.get("/api/v1/jobs/nosuch/logs", params=params)
        assert missing.status_code == 404 and "no job with id 'nosuch'" in missing.json()["detail"]


def test_log_lines_reach_a_terminal_running_curl_as_text(api: httpx.Client) -> None:
    # given a finished job whose log holds an OSC 52 clipboard write, a bell and an 8-bit OSC (U+009D)
    line = "x \x1b]52;c;ZWNobw==\x07 \x9d0;title\x9c \u202eevil"
    get_registry().create(record("hostile", state=JobState.SUCCEEDED))
    get_registry().append_log("hostile", [line])
    # when its log is read as JSON and followed as Server-Sent Events, as curl would print them
    read = api.get("/api/v1/jobs/hostile/logs")
    with api.stream("GET", "/api/v1/jobs/hostile/logs", params={"follow": "true"}) as stream:
        followed = b"".join(stream.iter_bytes())
    # then both bodies are printable ASCII (no control character but newlines), the line intact in JSON
    for body in (read.content, followed):
        assert all(32 <= byte < 127 or byte == 10 for byte in body), body
    assert read.json()["lines"][0]["line"] == line
    assert b"ZWNobw==\\u0007 \\u009d0;title\\u009c \\u202eevil" in followed


def test_a_blocked_chain_step_retried_over_http_is_409_naming_the_step_that_blocks_it(
    api: httpx.Client, workers: Workers
) -> None:
    # given a chain whose first step failed for good, its second recorded blocked by it
    workers.start("probe")
    chained = chain(probe.si(fail_times=1, permanent=True), probe.si()).delay()
    first = chained.parent.id
    blocked = in_state(chained.id, JobState.BLOCKED, 60)
    # when the blocked step is retried over HTTP
    answer = api.post(f"/api/v1/jobs/{chained.id}/retry")
    # then it is a 409 naming the step to retry, and nothing moved
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"] == (
        f"job {chained.id} is a blocked chain step: retry the step that blocks it, {first} "
        "(its success continues the chain)"
    )
    assert get_registry().get(chained.id) == blocked


def test_auth_csrf_and_the_command_job_refusal(web: Web, redis_client: redis.Redis, tmp_path: Path) -> None:
    # given trainq web with basic auth and a bearer token
    anonymous = httpx.get(f"{web.url}/api/v1/jobs")
    # then a caller without (or with wrong) credentials is 401, and the health check is open
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(f"{web.url}/runs", auth=(USER, "wrong")).status_code == 401
    assert httpx.get(f"{web.url}/api/v1/jobs", headers={"authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{web.url}/api/v1/health").status_code == 200
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{web.url}/api/v1/jobs", headers=bearer).status_code == 200
    with web.client() as api:
        # and a change sent from another site, or a browser's form without the page's CSRF token, is 403
        evil = api.post("/api/v1/jobs/probe", json={}, headers={"origin": "http://evil.example"})
        assert evil.status_code == 403
        browser = {"sec-fetch-site": "same-origin"}
        assert api.post("/jobs/x/retry", data={"next": "/"}, headers=browser).status_code == 403
        forged = api.post(
            "/jobs/x/retry", data={"csrf_token": "forged"}, headers={"cookie": "trainq_csrf=real", **browser}
        )
        assert forged.status_code == 403
        # and a shell command job is refused even for alice: commands over HTTP are off by default
        refused = api.post("/api/v1/jobs/command", json={"command": "id"}, headers=JSON)
        assert refused.status_code == 403 and "TRAINQ_WEB_ALLOW_COMMANDS" in refused.json()["detail"]
        in_pipeline = {"pipeline_id": "sh", "jobs": [{"job_id": "x", "command": "id"}]}
        assert api.post("/api/v1/pipelines", json=in_pipeline).status_code == 403
        schedule = {"name": "sh", "every": "1h", "type": "command", "config": {"command": "id"}}
        assert api.post("/api/v1/schedules", json=schedule).status_code == 403
    assert job_count() == 0
    # and an unauthenticated local server answers only to localhost names (no DNS rebinding)
    local = Web(
        tmp_path, {"TRAINQ_WEB_BASIC_AUTH": "", "TRAINQ_WEB_TOKEN": "", "TRAINQ_WEB_ALLOW_COMMANDS": "true"}
    )
    try:
        assert httpx.get(f"{local.url}/api/v1/jobs").status_code == 200
        assert httpx.get(f"{local.url}/api/v1/jobs", headers={"host": "evil.example"}).status_code == 403
        # and even with commands allowed, an anonymous caller may not submit one
        anonymous_command = httpx.post(f"{local.url}/api/v1/jobs/command", json={"command": "id"})
        assert anonymous_command.status_code == 403 and "authenticated" in anonymous_command.json()["detail"]
    finally:
        local.process.stop()
    assert job_count() == 0


UPLOAD = {"file": ("pipeline.yaml", b"pipeline_id: upload\njobs:\n  - {job_id: one, type: probe}\n")}
#: Headers of a browser posting from another site, or from a subdomain of this one.
OTHER_SITES = [
    {"origin": "http://evil.example"},
    {"sec-fetch-site": "cross-site"},
    {"sec-fetch-site": "same-site", "origin": "http://evil.example"},
]


def test_a_program_uploads_a_pipeline_file_with_basic_auth_or_none_and_a_browser_needs_the_pages_token(
    web: Web, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # given trainq web with basic auth, and one without authentication (on loopback)
    local = Web(tmp_path, {"TRAINQ_WEB_BASIC_AUTH": "", "TRAINQ_WEB_TOKEN": ""}, "web-open")
    try:
        for client in (web.client(), local.client(auth=None)):
            with client:
                # when a program uploads a pipeline file as `curl -F file=@pipeline.yaml` does
                # (neither Origin nor Sec-Fetch-Site), then the run starts without a CSRF token
                started = client.post("/api/v1/pipelines", files=UPLOAD)
                assert started.status_code == 201, started.text
                # and the same upload from another site's page is refused
                for headers in OTHER_SITES:
                    refused = client.post("/api/v1/pipelines", files=UPLOAD, headers=headers)
                    assert refused.status_code == 403, (headers, refused.text)
                # and a browser on this site's page needs the page's token (its form field or header)
                own = {"sec-fetch-site": "same-origin", "origin": str(client.base_url).rstrip("/")}
                untokened = client.post("/api/v1/pipelines", files=UPLOAD, headers=own)
                assert untokened.status_code == 403 and "CSRF" in untokened.json()["detail"]
                tokened = client.post(
                    "/api/v1/pipelines",
                    files=UPLOAD,
                    data={"csrf_token": "t0k"},
                    headers={**own, "cookie": "trainq_csrf=t0k"},
                )
                assert tokened.status_code == 201, tokened.text
    finally:
        local.process.stop()
    assert len(get_runs().recent()) == 4


def test_a_schedules_pipeline_is_inline_over_http_never_a_server_path(
    api: httpx.Client, workers: Workers, tmp_path: Path
) -> None:
    # given files on the server: a system file, a directory and a valid pipeline file
    on_server = tmp_path / "p.yaml"
    on_server.write_text("pipeline_id: local\njobs:\n  - {job_id: one, type: probe}\n")
    for path in ("/etc/passwd", "/root", str(tmp_path), str(on_server), "/no/such/file"):
        # when a schedule names one as its pipeline
        response = api.post("/api/v1/schedules", json={"name": "w11", "cron": "0 2 * * *", "pipeline": path})
        # then it is refused, saying nothing read from the server, and nothing is stored
        assert response.status_code == 422, (path, response.text)
        assert "inline" in response.json()["detail"], response.text
        assert not any(leak in response.text for leak in ("root:", "directory", "No such", "local")), path
    assert api.get("/api/v1/schedules").json() == []
    # when the definition comes inline, then it is stored and its run starts like a posted pipeline
    workers.start("probe")
    inline = {"pipeline_id": "nightly-etl", "jobs": [{"job_id": "one", "type": "probe", "config": {}}]}
    created = api.post("/api/v1/schedules", json={"name": "etl", "every": "1h", "pipeline": inline})
    assert created.status_code == 201, created.text
    assert created.json()["pipeline"] == "inline nightly-etl"
    run_id = api.post("/api/v1/schedules/etl/run").json()["id"]
    wait_for(lambda: api.get(f"/api/v1/pipelines/{run_id}").json()["state"] == "succeeded", 30, 0.1)
    # and an inline pipeline obeys the posted pipelines' rules: no result files outside, no commands
    escaping = {**inline, "jobs": [{**inline["jobs"][0], "result_files": ["/etc/*"]}]}
    refused = api.post("/api/v1/schedules", json={"name": "x", "every": "1h", "pipeline": escaping})
    assert refused.status_code == 422 and "result_files" in refused.text
    command = {"pipeline_id": "sh", "jobs": [{"job_id": "x", "command": "id"}]}
    shell = api.post("/api/v1/schedules", json={"name": "y", "every": "1h", "pipeline": command})
    assert shell.status_code == 403
    assert [s["name"] for s in api.get("/api/v1/schedules").json()] == ["etl"]


def test_running_an_operators_command_schedule_now_is_a_command_over_http(api: httpx.Client) -> None:
    # given a schedule of a shell command, created by an operator with the CLI
    created = run_cli(
        "schedule",
        "create",
        "sh-nightly",
        "--every",
        "1h",
        "--type",
        "command",
        "--config",
        '{"command": "id"}',
    )
    assert created.returncode == 0, created.stderr
    # when alice runs it now over HTTP (commands over HTTP are off), from the API or the page
    refused = api.post("/api/v1/schedules/sh-nightly/run")
    # then it is refused as submitting the command would be, and nothing runs
    assert refused.status_code == 403 and "TRAINQ_WEB_ALLOW_COMMANDS" in refused.json()["detail"]
    assert job_count() == 0
    # while disabling and listing it stay allowed
    assert api.post("/api/v1/schedules/sh-nightly/disable").status_code == 200


#: What the command rule answers a caller without command rights when commands over HTTP are off.
COMMANDS_OFF = "shell command jobs over HTTP are off (TRAINQ_WEB_ALLOW_COMMANDS)"
#: A browser's form post from this site's page, with the page's CSRF token.
PAGE_FORM: dict[str, Any] = {
    "data": {"csrf_token": "t0k", "next": "/"},
    "headers": {"sec-fetch-site": "same-origin", "cookie": "trainq_csrf=t0k"},
}


def _refused(client: httpx.Client, page: str, detail: str, api: str = "") -> None:
    """Post to the API (``api``, by default ``/api/v1`` + ``page``) and the page's form action ``page``:
    each is a 403 saying ``detail``."""
    answer = client.post(api or f"/api/v1{page}")
    assert answer.status_code == 403 and answer.json()["detail"] == detail, (page, answer.text)
    form = client.post(page, **PAGE_FORM)
    assert form.status_code == 403 and escape(detail) in form.text, (page, form.text)


def test_enabling_an_operators_command_schedule_is_a_command_over_http_and_beat_runs_nothing(
    api: httpx.Client, beats: Beats, tmp_path: Path
) -> None:
    # given schedules an operator parked with the CLI: a shell command, and a pipeline holding one
    pipeline = tmp_path / "sh.yaml"
    pipeline.write_text("pipeline_id: sh\njobs:\n  - {job_id: x, command: id}\n")
    parked = {
        "sh-cmd": ["--type", "command", "--config", '{"command": "id"}'],
        "sh-pipe": ["--pipeline", str(pipeline)],
    }
    for name, target in parked.items():
        created = run_cli("schedule", "create", name, "--every", "1s", *target, "--disabled")
        assert created.returncode == 0, created.stderr
    # and a Beat, ticking for an enabled probe schedule every second
    assert run_cli("schedule", "create", "witness", "--every", "1s", "--type", "probe").returncode == 0
    beat = beats.start()
    for name in parked:
        # when alice (commands over HTTP off) enables one, from the API or the page
        # then it is refused as running it now is, and it stays disabled
        _refused(api, f"/schedules/{name}/enable", f"schedule {name!r}: {COMMANDS_OFF}")
    listed = {s["name"]: s["enabled"] for s in api.get("/api/v1/schedules").json()}
    assert listed == {"sh-cmd": False, "sh-pipe": False, "witness": True}
    # and Beat, three ticks of the witness later, has sent nothing of them
    ticks = beat.output().count("Sending due task witness")
    wait_for(lambda: beat.output().count("Sending due task witness") >= ticks + 3, 20, 0.1, "three ticks")
    assert "Sending due task sh-" not in beat.output()
    assert not [r for r in get_registry().list(limit=100) if r.type == "command" or r.pipeline_id]


def test_retrying_or_resuming_what_would_rerun_a_shell_command_is_a_command_over_http(
    api: httpx.Client, workers: Workers, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # given, from an operator's CLI, a dead command job and a failed run: a probe that failed for good
    # (a command job after it blocked) and a command job that failed
    workers.start("command", "probe")
    submitted = run_cli("submit", "command", "--config", '{"command": "exit 3"}', "--retries", "0")
    dead = submitted.stdout.strip()
    pipeline = tmp_path / "ops.yaml"
    pipeline.write_text(
        "pipeline_id: ops\njobs:\n"
        "  - {job_id: fetch, type: probe, config: {fail_times: 1, permanent: true}}\n"
        "  - {job_id: report, command: id, depends_on: [fetch]}\n"
        "  - {job_id: sh, command: exit 3, retry_count: 0}\n"
    )
    run_id = run_cli("pipeline", "run", str(pipeline), "--wait").stdout.split()[0]
    in_state(dead, JobState.DEAD, 60)
    assert api.get(f"/api/v1/pipelines/{run_id}").json()["state"] == "failed"
    workers.stop_all()
    before = dump_redis(redis_client)
    # when alice (commands over HTTP off) retries the dead command job, or the probe whose success
    # would release the command job after it, or resumes the run, from the API or the pages
    # then each is refused as submitting the command would be
    _refused(api, f"/jobs/{dead}/retry", f"job {dead!r}: {COMMANDS_OFF}")
    _refused(api, f"/jobs/{run_id}.fetch/retry", f"job '{run_id}.fetch': {COMMANDS_OFF}")
    resume = f"/api/v1/pipelines/{run_id}/resume"
    _refused(api, f"/runs/{run_id}/resume", f"pipeline run {run_id!r}: {COMMANDS_OFF}", resume)
    # and nothing changed
    assert dump_redis(redis_client) == before


def test_the_anonymous_loopback_caller_never_reruns_or_enables_a_shell_command(
    redis_client: redis.Redis, workers: Workers, tmp_path: Path
) -> None:
    # given a disabled command schedule and a dead command job, from an operator's CLI
    created = run_cli(
        "schedule",
        "create",
        "sh",
        "--every",
        "1s",
        "--type",
        "command",
        "--config",
        '{"command": "id"}',
        "--disabled",
    )
    assert created.returncode == 0, created.stderr
    workers.start("command")
    dead = run_cli("submit", "command", "--config", '{"command": "exit 3"}', "--retries", "0").stdout.strip()
    in_state(dead, JobState.DEAD, 60)
    workers.stop_all()
    before = dump_redis(redis_client)
    # and trainq web without authentication (loopback only), with commands over HTTP allowed
    local = Web(
        tmp_path, {"TRAINQ_WEB_BASIC_AUTH": "", "TRAINQ_WEB_TOKEN": "", "TRAINQ_WEB_ALLOW_COMMANDS": "true"}
    )
    try:
        with local.client(auth=None) as anonymous:
            # when the anonymous caller enables the schedule or retries the job, from the API or the page
            # then each is refused: commands over HTTP need an authenticated caller
            needs = "shell command jobs over HTTP need an authenticated caller"
            _refused(anonymous, "/schedules/sh/enable", f"schedule 'sh': {needs}")
            _refused(anonymous, f"/jobs/{dead}/retry", f"job {dead!r}: {needs}")
    finally:
        local.process.stop()
    # and nothing changed
    assert dump_redis(redis_client) == before


def test_with_redis_down_every_page_and_endpoint_says_so_with_503(tmp_path: Path) -> None:
    # given trainq web on its own Redis (with a password), which then goes down
    password = "S3cretPW-web"
    redis_port, port = free_port(), free_port()
    store = start_redis(tmp_path / "redis", redis_port, "--requirepass", password)
    env = {"TRAINQ_BROKER_URL": f"redis://:{password}@127.0.0.1:{redis_port}/0"}
    server = Process([sys.executable, "-m", "trainq", "web", f"--port={port}"], tmp_path / "web.log", env)
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{port}/api/v1/health") == 200, 30, 0.1, message="web")
        store.stop()
        # when the API and the pages are asked, then each answers 503 naming what is down
        for path in (
            "/api/v1/jobs",
            "/api/v1/pipelines",
            "/api/v1/stats",
            "/api/v1/jobs/x",
            "/jobs",
            "/runs",
        ):
            answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=30)
            assert answer.status_code == 503, (path, answer.text)
            assert "cannot reach the registry" in answer.text and password not in answer.text, path
    finally:
        server.stop()
        store.stop()
    # and no traceback was logged for a plain outage
    assert "Traceback" not in server.output()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def test_allowed_commands_run_for_an_authenticated_caller_and_secrets_stay_out(
    redis_client: redis.Redis, workers: Workers, tmp_path: Path
) -> None:
    # given commands allowed over HTTP, and a worker whose environment holds a secret
    secret = "hunter2-web-9c1e"
    workers.start("command", "probe", env={"WEB_TEST_SECRET": secret})
    web = Web(tmp_path, {**AUTH_ENV, "TRAINQ_WEB_ALLOW_COMMANDS": "true"}, "web-commands")
    try:
        with web.client() as api:
            # when alice runs a command pipeline that echoes the secret, and a job with a SecretStr field
            pipeline = {
                "pipeline_id": "echo",
                "jobs": [
                    {
                        "job_id": "say",
                        "command": "echo token=$TOKEN",
                        "environment": {"TOKEN": "${WEB_TEST_SECRET}"},
                    }
                ],
            }
            run_id = api.post("/api/v1/pipelines", json=pipeline).json()["run_id"]
            secret_job = api.post("/api/v1/jobs/secret", json={"token": secret}, headers=JSON).json()["id"]
            assert wait_for(lambda: _finished(api, run_id), 60, 0.1)["state"] == "succeeded"
            wait_for(lambda: api.get(f"/api/v1/jobs/{secret_job}").json()["state"] == "succeeded", 60, 0.1)
            # then the command ran, and no answer holds the secret
            bodies = [
                api.get(f"/api/v1/jobs/{run_id}.say").text,
                api.get(f"/api/v1/jobs/{run_id}.say/logs").text,
                api.get(f"/api/v1/jobs/{secret_job}").text,
                api.get("/api/v1/jobs").text,
                api.get(f"/jobs/{secret_job}").text,
                api.get(f"/runs/{run_id}").text,
            ]
            assert "token=***" in bodies[1]
            assert "${WEB_TEST_SECRET}" in bodies[0]
            assert all(secret not in body for body in bodies)
            # and alice, who may submit commands, may enable an operator's parked command schedule too
            parked = ["--type", "command", "--config", '{"command": "id"}', "--disabled"]
            assert run_cli("schedule", "create", "sh", "--every", "1h", *parked).returncode == 0
            enabled = api.post("/api/v1/schedules/sh/enable")
            assert enabled.status_code == 200 and enabled.json()["enabled"], enabled.text
    finally:
        web.process.stop()


def test_schedules_and_queues_over_http(api: httpx.Client, web: Web, workers: Workers) -> None:
    # given a probe worker; when alice creates a schedule, then it is listed with its next run
    workers.start("probe")
    spec = {"name": "hourly-probe", "every": "1h", "type": "probe", "config": {"seconds": 0}}
    created = api.post("/api/v1/schedules", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["next_run_at"] > time.time() + 3000
    assert api.post("/api/v1/schedules", json={**spec, "every": "sometimes"}).status_code == 422
    assert created.json()["overlap"] == "allow" and created.json()["skipped"] == 0
    # and one may skip overlapping runs, never anything else
    solo = api.post("/api/v1/schedules", json={**spec, "name": "solo", "overlap": "skip"})
    assert solo.status_code == 201 and solo.json()["overlap"] == "skip", solo.text
    refused = api.post("/api/v1/schedules", json={**spec, "name": "often", "overlap": "sometimes"})
    assert refused.status_code == 422 and "overlap" in refused.text
    assert api.delete("/api/v1/schedules/solo").status_code == 200
    # when it is disabled, then it has no next run; enabled again, it has
    assert api.post("/api/v1/schedules/hourly-probe/disable").json()["next_run_at"] is None
    assert api.post("/api/v1/schedules/hourly-probe/enable").json()["enabled"] is True
    # when it is run now, then its job runs and the job's events say who asked
    job_id = api.post("/api/v1/schedules/hourly-probe/run").json()["id"]
    wait_for(lambda: api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "succeeded", 30, 0.1)
    reason = api.get(f"/api/v1/jobs/{job_id}").json()["events"][0]["reason"]
    assert reason == "submitted by schedule hourly-probe via web by alice"
    assert api.delete("/api/v1/schedules/hourly-probe").status_code == 200
    assert api.get("/api/v1/schedules").json() == []
    # and the queues show the live worker; a pause is recorded and undone
    queues = api.get("/api/v1/queues").json()
    assert queues["queues"]["probe"]["workers"] and not queues["queues"]["probe"]["paused"]
    assert api.post("/api/v1/queues/probe/pause").json()["paused"] is True
    assert api.get("/api/v1/stats").json()["queues"]["probe"]["paused"] is True
    api.post("/api/v1/queues/probe/resume")
    assert api.get("/api/v1/stats").json()["queues"]["probe"]["paused"] is False
    # and each change is in the server's log with the caller
    logged = web.process.output()
    for line in ("schedule hourly-probe created", "schedule hourly-probe disabled", "queue probe paused"):
        assert f"{line} via web by alice" in logged


def test_flower_task_api_refuses_command_jobs(workers: Workers, tmp_path: Path) -> None:
    # given Flower (with basic auth) and TRAINQ_WEB_ALLOW_COMMANDS off, as by default
    from tests.integration.test_monitoring import FLOWER_PASSWORD, FLOWER_USER, start_flower

    port = free_port()
    start_flower(tmp_path, port, workers)
    flower = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", auth=(FLOWER_USER, FLOWER_PASSWORD), timeout=20
    )
    # when a shell command job is applied through Flower's task API (both routes)
    for route in ("async-apply", "apply"):
        response = flower.post(
            f"/api/task/{route}/trainq.command", json={"kwargs": {"command": "touch /tmp/x"}}
        )
        # then Flower does not take it, and no command job is recorded
        assert response.status_code != 200, response.text
    assert get_registry().list(job_type="command") == []
    assert "command jobs cannot be submitted through Flower" in (tmp_path / "flower.log").read_text()
    # and another job type still goes through the same API
    applied = flower.post("/api/task/async-apply/trainq.probe", json={"kwargs": {"seconds": 0}})
    assert applied.status_code == 200, applied.text
    assert get_registry().get(applied.json()["task-id"]).type == "probe"
    # when a job applied there carries a shell command as its link, or trainq's file options
    workers.start("probe", "command", concurrency=2)
    marker, link_id = tmp_path / "pwned", uuid.uuid4().hex
    command = {"command": f"touch {marker}"}
    link = {"task": "trainq.command", "kwargs": command, "options": {"queue": "command", "task_id": link_id}}
    carrier = flower.post(
        "/api/task/async-apply/trainq.probe", json={"kwargs": {}, "link": {**link, "immutable": True}}
    )
    copying = flower.post(
        "/api/task/async-apply/trainq.probe", json={"kwargs": {}, "cwd": "/etc", "result_files": ["passwd"]}
    )
    # then the job is a Celery client's: the command is refused as a client's is, the options too (400)
    assert carrier.status_code == 200, carrier.text
    step = wait_for(lambda: (r := get_registry().find(link_id)) is not None and r.state.finished and r, 30)
    assert step.state is JobState.FAILED and "command jobs from Celery clients without trainq" in step.error
    assert not marker.exists()
    assert copying.status_code == 400 and "unknown field 'cwd'" in copying.text, copying.text


def big_pipeline(jobs: int, width: int = 20) -> dict[str, Any]:
    """``jobs`` probe jobs in columns of ``width``, each depending on one or two of the column before."""
    spec = []
    for n in range(jobs):
        base, row = (n // width - 1) * width, n % width
        deps = [] if n < width else sorted({f"j{base + row}", f"j{base + (row + 1 + n % 3) % width}"})
        spec.append({"job_id": f"j{n}", "type": "probe", "depends_on": deps})
    return {"pipeline_id": f"big{jobs}", "jobs": spec}


def test_the_run_page_of_a_thousand_job_pipeline_renders_under_a_second(api: httpx.Client) -> None:
    # given a running 1,000-job pipeline (no workers: its roots stay queued)
    run_id = api.post("/api/v1/pipelines", json=big_pipeline(1000), timeout=120).json()["run_id"]
    api.get(f"/runs/{run_id}")  # templates compiled, connections open
    # when its run page and its live status are fetched
    started = time.perf_counter()
    page = api.get(f"/runs/{run_id}")
    page_s = time.perf_counter() - started
    started = time.perf_counter()
    status = api.get(f"/api/v1/pipelines/{run_id}")
    status_s = time.perf_counter() - started
    print(f"\n1,000-job run page: {page_s * 1000:.0f} ms; its status poll: {status_s * 1000:.0f} ms")
    # then the page draws every job and arrow, in under a second
    assert page.status_code == 200 and page.text.count('class="node ') == 1000
    assert page.text.count("marker-end=") == sum(len(j["depends_on"]) for j in status.json()["jobs"])
    assert page_s < 1.0
