"""Secrets on every surface, against a private password-protected Redis, real workers, Flower,
trainq web and the metrics exporter: a broker password, Flower's password (in the URL trainq web
links Flower with) and a ``${VAR}`` token are planted and searched for everywhere a user or another
program can look. Also: unset variables, and ``/metrics`` outages.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.conftest import TEST_ENV
from tests.fixtures import (
    Process,
    Workers,
    dump_redis,
    free_port,
    python_elsewhere,
    start_redis,
    submit_elsewhere,
    wait_for,
)
from tests.integration.test_monitoring import http_get
from tests.integration.test_web import Web
from trainq.job.record import JobState
from trainq.ops.flower import flower_launch
from trainq.pipelines.runs import Runs
from trainq.settings import get_settings
from trainq.store.keys import Keys
from trainq.store.registry import Registry, get_registry

#: Commands that each reach the registry or broker in their own way (x1: an id that need not exist).
REACHING_COMMANDS = (
    ("list", "--json"),
    ("dead",),
    ("stats",),
    ("status", "--once"),
    ("workers", "--timeout", "0.5"),
    ("show", "x1"),
    ("logs", "x1"),
    ("cancel", "x1"),
    ("pipeline", "status", "x1"),
    ("submit", "data", "--config", '{"dataset": "iris"}'),
    ("pipeline", "run", "examples/diamond.yaml"),
)


#: Runs CLI commands (a JSON list of argument lists) in one interpreter, for the price of one start.
_CLI_BATCH = """
import json, sys, traceback
from click.testing import CliRunner
from trainq.cli import main
results = []
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(main, args)
    crash = "" if r.exc_info is None or isinstance(r.exception, SystemExit) else "".join(
        traceback.format_exception(*r.exc_info))
    results.append([args, r.exit_code, r.stdout, r.stderr + crash])
print(json.dumps(results))
"""


def run_clis(commands: list[tuple[str, ...]], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """The trainq CLI for each command, in one fresh process configured by ``env``; results in order."""
    out = python_elsewhere(_CLI_BATCH, env, json.dumps(commands))
    return [subprocess.CompletedProcess(*result) for result in json.loads(out)]


def test_unreachable_messages_never_show_the_password(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given a broker URL with a password, and nothing listening there
    password = f"S3cretPW{secrets.token_hex(4)}"
    down = {"TRAINQ_BROKER_URL": f"redis://:{password}@127.0.0.1:{free_port()}/0"}
    # and a running Redis given a wrong password
    port = free_port()
    server = start_redis(tmp_path / "redis", port, "--requirepass", "RightPW")
    wrong = {"TRAINQ_BROKER_URL": f"redis://:{password}@127.0.0.1:{port}/0"}
    try:
        # when every command runs against each, then it exits 3 naming the URL with its password masked
        results = run_clis(list(REACHING_COMMANDS), down) + run_clis([("list",), ("stats",)], wrong)
    finally:
        server.stop()
    for result in results:
        assert result.returncode == 3, (result.args, result.stderr)
        assert password not in result.stdout + result.stderr, (result.args, result.stderr)
        assert "error: cannot reach the " in result.stderr, (result.args, result.stderr)
        assert "Traceback" not in result.stderr


def test_only_the_registry_down_is_named_the_registry(redis_client: redis.Redis) -> None:
    # given a running broker and a registry that is down
    env = {"TRAINQ_REGISTRY_URL": f"redis://127.0.0.1:{free_port()}/0"}
    (result,) = run_clis([("list",)], env)
    assert result.returncode == 3
    assert "cannot reach the registry at" in result.stderr and "broker" not in result.stderr


def test_metrics_answer_503_naming_what_is_down(tmp_path: Path, workers: Workers) -> None:
    # given one exporter whose broker is a private password Redis and one whose registry is
    password = f"S3cretPW{secrets.token_hex(4)}"
    broker_port, registry_port, port_a, port_b = free_port(), free_port(), free_port(), free_port()
    broker = start_redis(tmp_path / "broker", broker_port, "--requirepass", password)
    registry = start_redis(tmp_path / "registry", registry_port)
    workers.started += [broker, registry]
    test_db = get_registry().url
    setups = [
        (
            port_a,
            {
                "TRAINQ_BROKER_URL": f"redis://:{password}@127.0.0.1:{broker_port}/0",
                "TRAINQ_REGISTRY_URL": test_db,
            },
        ),
        (
            port_b,
            {"TRAINQ_BROKER_URL": test_db, "TRAINQ_REGISTRY_URL": f"redis://127.0.0.1:{registry_port}/0"},
        ),
    ]
    for port, env in setups:
        args = [sys.executable, "-m", "trainq", "metrics", "--port", str(port)]
        workers.started.append(Process(args, tmp_path / f"metrics-{port}.log", env))
    for port, _ in setups:
        wait_for(
            lambda p=port: http_get(f"http://127.0.0.1:{p}/metrics")[0] == 200, 30, 0.2, message="metrics up"
        )
    # when the broker of one and the registry of the other go down
    broker.stop()
    registry.stop()
    # then each answers 503 naming what is down, with no password
    status, body = http_get(f"http://127.0.0.1:{port_a}/metrics")
    assert status == 503, body
    assert f"cannot reach the broker at redis://:***@127.0.0.1:{broker_port}/0" in body
    assert password not in body
    status, body = http_get(f"http://127.0.0.1:{port_b}/metrics")
    assert status == 503, body
    assert f"cannot reach the registry at redis://127.0.0.1:{registry_port}/0" in body
    assert "broker" not in body


def test_an_unset_variable_fails_the_job_before_its_command_starts(workers: Workers, tmp_path: Path) -> None:
    # given a command worker, and jobs whose environment references a variable it does not set
    worker = workers.start("command", name="envcheck")
    unset = "TRAINQ_TEST_NEVER_SET"
    marker = tmp_path / "ran.txt"
    failing, defaulted = submit_elsewhere(
        {},
        [
            f"submit('command', {{'command': 'touch {marker}'}}, environment={{'X': '${{{unset}}}'}},"
            " retry={'max_retries': 3})",
            f"submit('command', {{'command': 'echo \"$X $WHERE\"'}},"
            f" environment={{'X': '${{{unset}:-fallback}}', 'WHERE': '${{HOME}}'}})",
        ],
    )
    registry = get_registry()
    # when they run, then the first fails at once, without retries, naming the variable and the worker
    record = wait_for(lambda: (r := registry.get(failing)).state.finished and r, 30, message="failed")
    assert record.state is JobState.FAILED and record.attempt == 1, record
    assert f"${{{unset}}} is not set on worker envcheck@" in (record.error or ""), record.error
    assert not marker.exists()
    assert worker.alive()
    # and the second uses its default, and shows ${HOME}'s ordinary value unmasked
    wait_for(lambda: registry.get(defaulted).state is JobState.SUCCEEDED, 30, message="default used")
    assert [line for _, line in registry.read_log(defaulted)] == [f"fallback {os.environ['HOME']}"]


def test_a_planted_password_and_token_appear_on_no_surface(workers: Workers, tmp_path: Path) -> None:
    # given a private Redis with a password, and workers holding a token in their environment
    password, token = f"S3cretPW{secrets.token_hex(6)}", f"tok{secrets.token_hex(8)}"
    flower_auth = ("ops", f"FlowerPW{secrets.token_hex(6)}")
    port, flower_port, metrics_port = free_port(), free_port(), free_port()
    workers.started.append(start_redis(tmp_path / "redis", port, "--requirepass", password))
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    env = {"TRAINQ_BROKER_URL": url, "MY_TOKEN": token}
    workers.start("command", "probe", name="leaky", env=env, events=True)
    launch = flower_launch(get_settings(), "127.0.0.1", flower_port, ":".join(flower_auth))
    flower = Process(launch.argv, tmp_path / "flower.log", {**env, **launch.env})
    workers.started.append(flower)
    wait_for(
        lambda: http_get(f"http://127.0.0.1:{flower_port}/healthcheck")[0] == 200, 30, 0.2, message="Flower"
    )
    # when a pipeline's commands echo the token, report it as a metric and fail with it in their output,
    pipeline = tmp_path / "leak.json"
    echo = (
        'echo "token=$API_TOKEN"; echo "trainq:progress 1/2 tok=$API_TOKEN $API_TOKEN=1"; echo "$API_TOKEN"; '
        'echo "$TRAINQ_BROKER_URL"; env; '  # what the worker's own environment holds: its broker's password
        'echo "under=${API_TOKEN}_suffix"; echo "trainq:progress 2/2 run_$API_TOKEN=2"'  # next to a "_"
    )
    jobs = [
        {"job_id": "echo", "command": echo, "environment": {"API_TOKEN": "${MY_TOKEN}"}},
        {
            "job_id": "fails",
            "command": 'echo "$API_TOKEN"; exit 3',
            "retry_count": 0,
            "environment": {"API_TOKEN": "$MY_TOKEN"},
        },
    ]
    pipeline.write_text(json.dumps({"pipeline_id": "leak", "jobs": jobs}))
    (run,) = run_clis([("pipeline", "run", str(pipeline))], env)
    assert run.returncode == 0, run.stderr
    run_id = run.stdout.strip()
    # and handlers log it, return it as their result or fail with it in their error
    handler_job, failing_job = submit_elsewhere(
        env,
        [
            f"submit('environ', {{'name': 'API_TOKEN', 'fail': {fail}}}, retry={{'max_retries': 0}},"
            " environment={'API_TOKEN': '${MY_TOKEN}'})"
            for fail in (False, True)
        ],
    )
    client = redis.Redis.from_url(url)
    registry = Registry(client, Keys("trainq:"))
    wait_for(lambda: Runs(registry).status(run_id).finished, 60, message="pipeline ends")
    wait_for(lambda: registry.get(handler_job).state is JobState.SUCCEEDED, 30, message="handler job")
    wait_for(lambda: registry.get(failing_job).state is JobState.DEAD, 30, message="failing handler job")
    job_ids = [f"{run_id}.echo", f"{run_id}.fails", handler_job, failing_job]
    # (the token did reach the jobs: masked where they showed it)
    assert registry.read_log(job_ids[0])[0][1] == "token=***"
    assert registry.get(handler_job).result == {"value": "***"}
    assert registry.get(job_ids[1]).state is JobState.DEAD
    assert registry.get(failing_job).error == "RuntimeError: rejected ***"
    flower_api = f"http://127.0.0.1:{flower_port}/api"

    def flower_has_all() -> bool:
        status, body = http_get(f"{flower_api}/tasks", flower_auth)
        return status == 200 and all(job in body for job in job_ids)

    wait_for(flower_has_all, 30, 0.2, message="Flower lists every job")
    args = [sys.executable, "-m", "trainq", "metrics", "--port", str(metrics_port)]
    workers.started.append(Process(args, tmp_path / "metrics.log", env))
    wait_for(
        lambda: http_get(f"http://127.0.0.1:{metrics_port}/metrics")[0] == 200, 30, 0.2, message="metrics"
    )
    # then neither appears in any CLI output,
    surfaces: dict[str, str] = {}
    commands = [
        *(("show", job) for job in job_ids),
        *(("show", job, "--json") for job in job_ids),
        *(("logs", job) for job in job_ids),
        ("list",),
        ("list", "--json"),
        ("dead",),
        ("dead", "--json"),
        ("status", "--once"),
        ("status", "--json"),
        ("stats",),
        ("stats", "--json"),
        ("workers", "--json"),
        ("pipeline", "status", run_id),
        ("pipeline", "status", run_id, "--json"),
        ("pipeline", "list"),
    ]
    for result in run_clis(commands, env):
        assert result.returncode == 0, (result.args, result.stderr)
        surfaces[" ".join(result.args)] = result.stdout + result.stderr
    # nor in the registry, Celery's results or the broker (every key of the database),
    surfaces["redis"] = dump_redis(client).decode(errors="replace")
    assert {f"celery-task-meta-{j}".encode() for j in (handler_job, failing_job)} <= set(client.keys())
    # nor in Flower's API and pages, the metrics endpoint, or the logs of the processes
    flower_paths = ["/tasks", "/workers?refresh=1", *(f"/task/info/{j}" for j in job_ids)]
    for path in [*flower_paths, f"/task/result/{handler_job}"]:
        surfaces[f"flower {path}"] = http_get(f"{flower_api}{path}", flower_auth)[1]
    surfaces["flower /broker"] = http_get(f"http://127.0.0.1:{flower_port}/broker", flower_auth)[1]
    surfaces["/metrics"] = http_get(f"http://127.0.0.1:{metrics_port}/metrics")[1]
    # nor in trainq web's pages and API, though its Flower links were set with Flower's login
    flower_url = f"http://{':'.join(flower_auth)}@127.0.0.1:{flower_port}/"
    web = Web(tmp_path, {**env, "TRAINQ_FLOWER_URL": flower_url})
    workers.started.append(web.process)
    with web.client(auth=None) as client:
        for path in ("/", "/jobs", "/dead", f"/runs/{run_id}", *(f"/jobs/{j}" for j in job_ids)):
            surfaces[f"web {path}"] = client.get(path).text
        for path in ("/api/v1/jobs", f"/api/v1/pipelines/{run_id}", *(f"/api/v1/jobs/{j}" for j in job_ids)):
            surfaces[f"web {path}"] = client.get(path).text
    link = f"http://127.0.0.1:{flower_port}/task/{handler_job}"  # the browser asks for Flower's login
    assert f'href="{link}"' in surfaces[f"web /jobs/{handler_job}"]
    assert json.loads(surfaces[f"web /api/v1/jobs/{handler_job}"])["flower_url"] == link
    for process in workers.started:
        surfaces[f"log {process.log.name}"] = process.output()
    assert "leaky@" in surfaces["flower /workers?refresh=1"]
    planted = (password, token, flower_auth[1])
    leaks = {name: [s for s in planted if s in text] for name, text in surfaces.items()}
    assert {name: found for name, found in leaks.items() if found} == {}


@pytest.mark.rabbitmq
def test_a_login_rabbitmq_refuses_is_one_line_naming_the_broker(redis_client: redis.Redis) -> None:
    # given a RabbitMQ broker URL with a wrong password (the registry: the tests' Redis)
    password = f"WrongPW{secrets.token_hex(4)}"
    env = {
        "TRAINQ_BROKER_URL": f"amqp://guest:{password}@127.0.0.1:5672//",
        "TRAINQ_REGISTRY_URL": TEST_ENV["TRAINQ_BROKER_URL"],
    }
    # when the commands that read or change the broker's queues run
    commands = [("stats",), ("status", "--once"), ("workers", "--timeout", "0.5"), ("pause", "data")]
    results = run_clis([*commands, ("purge", "data", "--yes")], env)
    # then each exits 3 with one line naming the broker, its password masked, as a submit does
    named = "error: cannot reach the broker at amqp://guest:***@127.0.0.1:5672//: "
    for result in results:
        assert result.returncode == 3, (result.args, result.stderr)
        assert result.stderr.startswith(named), result.stderr
        assert "ACCESS_REFUSED" in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
        assert password not in result.stdout + result.stderr
