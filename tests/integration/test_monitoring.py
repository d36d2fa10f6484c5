"""Monitoring against real Redis, workers, Flower and the metrics exporter: live progress,
``status``/``workers``, Prometheus metrics, and Flower's login and redacted job listing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures import Process, Workers, free_port, run_cli, wait_for
from trainq import JobState, get_registry
from trainq.celery import app
from trainq.ops.control import cancel, submit

FLOWER_USER, FLOWER_PASSWORD = "ops", "s3cret-pass"


def http_get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """``(status, body)`` of a GET, with optional basic auth; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")
    except OSError:
        return 0, ""


def start_flower(
    tmp: Path, port: int, workers: Workers, name: str = "flower", env: dict[str, str] | None = None
) -> Process:
    """``trainq flower`` on 127.0.0.1:port with basic auth, answering HTTP (a 401 counts);
    it is stopped with the test's ``workers``, even when the test fails."""
    flower = Process(
        [
            sys.executable,
            "-m",
            "trainq",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
            f"--basic-auth={FLOWER_USER}:{FLOWER_PASSWORD}",
        ],
        tmp / f"{name}.log",
        env,
    )
    workers.started.append(flower)
    url = f"http://127.0.0.1:{port}/healthcheck"
    wait_for(lambda: http_get(url)[0] or not flower.alive(), 30, 0.2, message="Flower up")
    assert flower.alive(), flower.output()
    return flower


def flower_workers(port: int) -> dict[str, bool]:
    """Worker name -> online, as Flower's event state has it."""
    status, body = http_get(f"http://127.0.0.1:{port}/workers?json=1", (FLOWER_USER, FLOWER_PASSWORD))
    return {w["hostname"]: w["status"] for w in json.loads(body)["data"]} if status == 200 else {}


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exporter as ``(name, labels) -> value``."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_progress_is_visible_in_registry_celery_status_and_workers_before_the_job_ends(
    workers: Workers,
) -> None:
    # given a probe worker and a job that reports progress every 3 s for 10 steps
    workers.start("probe", name="watch")
    job_id = submit("probe", {"seconds": 30, "steps": 10}, job_name="nightly-probe")
    # when its first step is reported
    record = wait_for(
        lambda: (r := get_registry().get(job_id)).progress and r, 15, message="first progress report"
    )
    # then the registry and Celery's result meta both show it while the job still runs
    assert record.state is JobState.RUNNING
    assert record.progress.step == 1 and record.progress.total == 10
    result = app.AsyncResult(job_id)
    assert result.state == "PROGRESS"
    assert result.info["step"] == 1 and result.info["total"] == 10 and result.info["metrics"] == {"loss": 1.0}
    # and `status` lists it under its queue with a bar and an ETA
    shown = run_cli("status", "--once")
    assert shown.returncode == 0, shown.stderr
    assert job_id in shown.stdout and "nightly-probe" in shown.stdout and "/10" in shown.stdout
    running = json.loads(run_cli("status", "--json").stdout)["running"]
    assert [(j["id"], j["queue"]) for j in running] == [(job_id, "probe")]
    assert running[0]["eta_s"] is not None and running[0]["eta_s"] > 0
    # and `workers` shows the live worker on its queue with this job active, and flags a queue with no worker
    submit("data", {})
    report = json.loads(run_cli("workers", "--json").stdout)
    (name,) = report["workers"]
    assert name.startswith("watch@") and report["workers"][name]["queues"] == ["probe"]
    assert [j["id"] for j in report["workers"][name]["active"]] == [job_id]
    assert report["queues"]["probe"]["no_worker"] is False
    assert report["queues"]["data"] == {**report["queues"]["data"], "no_worker": True, "waiting": 1}
    table = run_cli("workers")
    assert "NO WORKER" in table.stdout and "nightly-probe" in table.stdout
    assert get_registry().get(job_id).state is JobState.RUNNING
    cancel(job_id)


def test_metrics_track_queue_depth_counts_durations_retries_and_dead_jobs(
    workers: Workers, tmp_path: Path
) -> None:
    # given the exporter and five queued probe jobs with no worker
    port = free_port()
    exporter = Process(
        [sys.executable, "-m", "trainq", "metrics", f"--port={port}"], tmp_path / "metrics.log"
    )
    queued = [submit("probe", {}) for _ in range(5)]
    wait_for(lambda: http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200, 20, 0.2, message="exporter up")
    # then the queue depth matches the queued jobs, per queue and per type
    before = scrape(port)
    assert sample(before, "trainq_queue_depth", queue="probe") == 5
    assert sample(before, "trainq_jobs", type="probe", state="queued") == 5
    assert sample(before, "trainq_queue_jobs", queue="probe", state="queued") == 5
    # when a worker runs them plus one job that retries once and one that exhausts its retries
    retried = submit("probe", {"fail_times": 1})
    doomed = submit("probe", {"fail_times": 10})
    workers.start("probe")
    done = [*queued, retried]
    wait_for(
        lambda: all(get_registry().get(j).state is JobState.SUCCEEDED for j in done), 30, message="jobs done"
    )
    wait_for(lambda: get_registry().get(doomed).state is JobState.DEAD, 30, message="dead job")
    after = scrape(port)
    # then depth is back to zero and outcomes, durations, retries and dead jobs are counted
    assert sample(after, "trainq_queue_depth", queue="probe") == 0
    assert sample(after, "trainq_jobs", type="probe", state="succeeded") == 6
    assert sample(after, "trainq_jobs_finished_total", type="probe", state="succeeded") == 6
    assert sample(after, "trainq_job_duration_seconds_count", type="probe", state="succeeded") == 6
    assert (
        sample(after, "trainq_job_duration_seconds_bucket", type="probe", state="succeeded", le="+Inf") == 6
    )
    assert sample(after, "trainq_job_retries_total", type="probe") == 1 + 3
    assert sample(after, "trainq_dead_jobs") == 1
    assert sample(after, "trainq_jobs", type="probe", state="dead") == 1
    exporter.stop()


def test_flower_needs_credentials_and_lists_jobs_by_name_with_secrets_redacted(
    workers: Workers, tmp_path: Path
) -> None:
    # given Flower with basic auth and a probe worker sending events
    port = free_port()
    start_flower(tmp_path, port, workers)
    workers.start("probe", name="evt", events=True)
    wait_for(lambda: any(flower_workers(port).values()), 30, 0.2, message="Flower sees the worker")
    # when a job whose payload holds a secret runs
    token = "tok-" + hashlib.sha1(str(port).encode()).hexdigest()
    job_id = submit("secret", {"token": token}, job_name="deploy-check")
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 20, message="secret job done")
    # then the handler got the real value, while the registry keeps it masked
    record = get_registry().get(job_id)
    assert record.result["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert record.payload["token"] == "**********"
    # and Flower refuses requests without credentials
    assert http_get(f"http://127.0.0.1:{port}/")[0] == 401
    assert http_get(f"http://127.0.0.1:{port}/api/tasks", ("ops", "wrong"))[0] == 401
    # and lists the job under its type with its id and name, never showing the secret

    def listed() -> Any:
        status, body = http_get(f"http://127.0.0.1:{port}/api/tasks", (FLOWER_USER, FLOWER_PASSWORD))
        task = json.loads(body).get(job_id) if status == 200 else None
        return task if task and task["state"] == "SUCCESS" else None

    task = wait_for(listed, 20, 0.2, message="job listed in Flower")
    assert task["name"] == "trainq.secret"
    assert "deploy-check" in task["args"]
    assert "**********" in task["kwargs"] and token not in json.dumps(task)


def test_flower_refuses_a_public_address_without_authentication() -> None:
    result = run_cli("flower", "--address=0.0.0.0", f"--port={free_port()}")
    assert result.returncode == 2
    assert "refusing to serve Flower on 0.0.0.0 without authentication" in result.stderr
    bad = run_cli("flower", "--basic-auth=nopassword", f"--port={free_port()}")
    assert bad.returncode == 2 and "use user:password" in bad.stderr


def test_plain_celery_flower_gets_trainqs_safe_defaults(tmp_path: Path, workers: Workers) -> None:
    # given `celery -A trainq flower` started from the project directory with no options
    port = free_port()
    env = {"TRAINQ_FLOWER_PORT": str(port), "TRAINQ_FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}"}
    flower = Process([sys.executable, "-m", "celery", "-A", "trainq", "flower"], tmp_path / "plain.log", env)
    workers.started.append(flower)
    url = f"http://127.0.0.1:{port}/healthcheck"
    wait_for(lambda: http_get(url)[0] or not flower.alive(), 30, 0.2, message="Flower up")
    # then it listens on 127.0.0.1 only and asks for the configured credentials
    assert http_get(f"http://127.0.0.1:{port}/")[0] == 401
    assert http_get(f"http://127.0.0.1:{port}/", (FLOWER_USER, FLOWER_PASSWORD))[0] == 200
    listening = {
        c.laddr for c in psutil.Process(flower.pid).net_connections() if c.status == psutil.CONN_LISTEN
    }
    assert {(ip, p) for ip, p in listening if p == port} == {("127.0.0.1", port)}
