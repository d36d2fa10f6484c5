"""Multi-host rehearsal without Docker: the compose topology run as local processes.

Every trainq service of ``deploy/docker-compose.yml`` (a pool per queue, Beat, Flower) starts
here with the command and environment ``docker compose config`` gives it; only the ``redis``
host name points at a local Redis with a password and AOF, the shared volume at a temporary
directory, and Flower at loopback. A pipeline runs through every pool while one worker "host"
is lost mid-job and started again.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.fixtures import ROOT, Process, start_redis, wait_for
from tests.unit.test_deploy_files import COMPOSE_FILE, K8S, compose_config
from trainq.job.record import JobState
from trainq.pipelines.runs import Runs, RunState
from trainq.store.keys import Keys
from trainq.store.registry import Registry

pytestmark = pytest.mark.slow
VOLUME = "/var/lib/trainq"
PIPELINE = {
    "pipeline_id": "rehearsal",
    "jobs": [
        {"job_id": "prepare", "type": "data", "config": {"dataset": "digits"}},
        {
            "job_id": "train",
            "type": "training",
            "depends_on": ["prepare"],
            "config": {"dataset": "digits", "model": "sgd", "epochs": 4, "pace_s": 1.0},
        },
        {
            "job_id": "evaluate",
            "type": "evaluation",
            "depends_on": ["train"],
            "config": {"dataset": "digits", "model": "sgd"},
        },
        {"job_id": "report", "command": "echo rehearsal done", "depends_on": ["evaluate"]},
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Topology:
    """The compose services as local processes sharing one Redis and one 'volume'."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.password = secrets.token_hex(12)
        self.flower_auth = f"ops:{secrets.token_hex(8)}"
        self.redis_port, self.flower_port = free_port(), free_port()
        env_file = tmp / "deploy.env"
        env_file.write_text(
            f"REDIS_PASSWORD={self.password}\nTRAINQ_FLOWER_BASIC_AUTH={self.flower_auth}\n"
            f"TRAINQ_WEB_BASIC_AUTH=ops:{secrets.token_hex(8)}\n"
        )
        config = compose_config(COMPOSE_FILE, env_file)
        assert config.returncode == 0, config.stderr
        self.services: dict[str, Any] = yaml.safe_load(config.stdout)["services"]
        self.processes: dict[str, Process] = {}
        self.client = redis.Redis(port=self.redis_port, password=self.password)
        self.registry = Registry(self.client, Keys(self.services["beat"]["environment"]["TRAINQ_KEY_PREFIX"]))

    def start_redis(self) -> None:
        """Redis as the compose file runs it: AOF, noeviction, a password."""
        self.processes["redis"] = start_redis(
            self.tmp / "redis",
            self.redis_port,
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--requirepass",
            self.password,
        )

    def env(self, service: str) -> dict[str, str]:
        """The service's compose environment, with the redis host and the volume made local."""
        home = str(self.tmp / "home")
        env = {k: str(v) for k, v in self.services[service]["environment"].items()}
        return {
            k: v.replace("@redis:6379/", f"@127.0.0.1:{self.redis_port}/").replace(VOLUME, home)
            for k, v in env.items()
        }

    def command(self, service: str) -> list[str]:
        """The service's compose command run by this interpreter, Flower bound to loopback."""
        args = list(self.services[service]["command"])
        assert args[0] == "celery", args
        local = {"--address=0.0.0.0": "--address=127.0.0.1", "--port=5555": f"--port={self.flower_port}"}
        return [sys.executable, "-m", *[local.get(a, a) for a in args]]

    def start(self, service: str) -> Process:
        if service in self.processes:  # a restart: reap the old one first
            self.processes[service].stop()
        log = self.tmp / f"{service}.log"
        process = Process(self.command(service), log, self.env(service))
        self.processes[service] = process
        return process

    def stop_all(self) -> None:
        """SIGTERM every service at once (warm shutdowns overlap), then reap each; Redis last."""
        services = [p for name, p in self.processes.items() if name != "redis" and p.alive()]
        for process in services:
            process.popen.send_signal(signal.SIGTERM)
        for process in [*services, *([self.processes["redis"]] if "redis" in self.processes else [])]:
            process.stop()


def worker_ready(process: Process) -> bool:
    assert process.alive(), process.output()
    return " ready." in process.output()


def flower_status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def scaled_lists(queue: str) -> list[str]:
    """The Redis lists the queue's KEDA ScaledObject counts."""
    docs = yaml.safe_load_all((K8S / f"worker-{queue}.yaml").read_text())
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    return [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]]


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    topo = Topology(tmp_path)
    try:
        topo.start_redis()
        yield topo
    finally:
        topo.stop_all()


def test_pipeline_completes_across_hosts_when_one_is_lost_and_restarted(topology: Topology) -> None:
    # given the compose topology: Redis, a pool per queue, one Beat, Flower
    workers = [name for name in topology.services if name.startswith("worker-")]
    assert {"worker-training", "worker-data", "worker-detection", "worker-command"} <= set(workers)
    for name in [*workers, "beat", "flower"]:
        topology.start(name)
    for name in workers:
        wait_for(lambda n=name: worker_ready(topology.processes[n]), 60, message=f"{name} ready")
    flower = f"http://127.0.0.1:{topology.flower_port}"
    wait_for(lambda: flower_status(f"{flower}/healthcheck") == 200, 30, message="flower up")
    # then Redis wants its password and keeps an append-only file
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=topology.redis_port).ping()
    assert topology.client.config_get("appendonly") == {"appendonly": "yes"}
    # and Flower wants its basic auth, and exactly one Beat holds the RedBeat lock
    assert flower_status(f"{flower}/") == 401
    assert flower_status(f"{flower}/", topology.flower_auth) == 200
    lock = f"{topology.registry.keys.prefix}redbeat::lock"
    wait_for(lambda: topology.client.exists(lock), 30, message="beat holds the redbeat lock")
    # and the liveness probe of the manifests answers for the training host
    probe = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "trainq",
            "inspect",
            "ping",
            "-d",
            f"training@{socket.gethostname()}",
            "--timeout",
            "10",
        ],
        cwd=ROOT,
        env={**os.environ, **topology.env("beat")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr

    # when a pipeline runs through every pool
    pipeline_file = topology.tmp / "pipeline.yaml"
    pipeline_file.write_text(yaml.safe_dump(PIPELINE))
    submit = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from trainq import run_pipeline_file as run; print(run(sys.argv[1]))",
            str(pipeline_file),
        ],
        cwd=ROOT,
        env={**os.environ, **topology.env("beat")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submit.returncode == 0, submit.stderr
    run_id = submit.stdout.strip().splitlines()[-1]
    train_id = f"{run_id}.train"

    def train_record() -> Any:
        return topology.registry.find(train_id)

    def epochs_done() -> float:
        record = train_record()
        return record.progress.step if record and record.progress else 0

    # and the training host is lost after two epochs (checkpointed)
    wait_for(lambda: epochs_done() >= 2, 90, message="two training epochs")
    topology.processes["worker-training"].kill()
    # then another host's reaper re-queues the job on its lease, onto a list KEDA counts
    wait_for(lambda: train_record().state is JobState.QUEUED, 30, message="training job re-queued")
    assert sum(topology.client.llen(name) for name in scaled_lists("training")) == 1
    # when the host starts again, the pipeline completes, training resumed from its checkpoint
    restarted = topology.start("worker-training")
    wait_for(lambda: Runs(topology.registry).status(run_id).finished, 120, message="pipeline finished")
    status = Runs(topology.registry).status(run_id)
    assert status.state is RunState.SUCCEEDED, status.model_dump_json(indent=1) + restarted.output()[-3000:]
    record = train_record()
    assert record.attempt == 2 and record.result["resumed_from_epoch"] >= 2
    assert any("lease expired" in (e.reason or "") for e in topology.registry.events(train_id))
    for job in status.jobs:
        worked = topology.registry.get(f"{run_id}.{job.job_id}")
        assert worked.worker and worked.worker.startswith(f"{worked.queue}@"), worked
