"""A Redis master killed under load, Sentinel promoting its replica: every accepted job still
succeeds exactly once, workers and Beat carry on without a restart (no schedule firing twice), and
with no master a submit fails cleanly."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import TEST_ENV
from tests.fixtures import (
    ROOT,
    Beats,
    Process,
    Workers,
    free_port,
    python_elsewhere,
    run_cli,
    start_redis,
    start_sentinel,
    wait_for,
)
from tests.jobs import attempts_key
from trainq import JobState
from trainq.store.keys import Keys
from trainq.store.registry import Registry
from trainq.store.sentinel import master_client

pytestmark = pytest.mark.slow
MASTER = "mymaster"
PASSWORD = "s3ntinel-pw"
JOBS = 100
SUBMITTER = """
import sys, time
from trainq.ops.control import submit
from trainq.errors import TrainqError
for n in range(int(sys.argv[1])):
    try:
        print("ok", submit("probe", {"seconds": 0.3}), flush=True)
    except TrainqError as exc:
        print("refused", type(exc).__name__, str(exc).replace(chr(10), " "), flush=True)
    time.sleep(0.05)  # pacing: submits spread over the failover
"""


class Topology:
    """A master, two replicas and three sentinels on private loopback ports."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.processes: dict[int, Process] = {}
        self.master_port = self._redis("master")
        self.replica_ports = [
            self._redis(f"replica{n}", "--replicaof", "127.0.0.1", str(self.master_port)) for n in (1, 2)
        ]
        self.sentinel_ports = [self._sentinel(n) for n in (1, 2, 3)]
        first, *others = (f"127.0.0.1:{port}" for port in self.sentinel_ports)
        # kombu's form: the master's password on the first address
        self.url = ";".join([f"sentinel://:{PASSWORD}@{first}", *(f"sentinel://{a}" for a in others)])

    def _redis(self, name: str, *extra: str) -> int:
        port = free_port()
        auth = ("--requirepass", PASSWORD, "--masterauth", PASSWORD)  # a master may become a replica
        self.processes[port] = start_redis(self.tmp / name, port, *auth, *extra)
        return port

    def _sentinel(self, n: int) -> int:
        port, process = start_sentinel(
            self.tmp / f"sentinel{n}",
            MASTER,
            self.master_port,
            PASSWORD,
            2,
            # 3 s, not 1: on a loaded 2-core box a just-promoted master can miss pings for a second,
            # and a second failover loses the writes its successor took since
            f"sentinel down-after-milliseconds {MASTER} 3000",
            f"sentinel failover-timeout {MASTER} 3000",
            f"sentinel parallel-syncs {MASTER} 2",
        )
        self.processes[port] = process
        return port

    def master(self) -> int:
        """The port the sentinels name as master."""
        reply = redis.Redis(port=self.sentinel_ports[0]).sentinel_get_master_addr_by_name(MASTER)
        return int(reply[1])

    def replicas_seen(self) -> int:
        """Replicas the first sentinel knows of the current master."""
        return len(redis.Redis(port=self.sentinel_ports[0]).sentinel_slaves(MASTER))

    def kill(self, port: int) -> None:
        self.processes[port].kill()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.stop()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    started = Topology(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def pulses(registry: Registry) -> list[float]:
    """Creation times of the jobs the ``pulse`` schedule submitted, oldest first."""
    return sorted(r.created_at for r in registry.list(tag="schedule=pulse", limit=500))


def ends(client: redis.Redis, job_id: str) -> int:
    return sum(1 for n in client.lrange(attempts_key(job_id), 0, -1) if n.startswith(b"end"))


def test_a_master_failover_loses_and_duplicates_no_accepted_job(
    topology: Topology, workers: Workers, beats: Beats, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # given Sentinel watching a password-protected master with two replicas, two worker pools and Beat;
    # a submit waits for one replica; leases outlast the failover; attempts are noted on another Redis
    wait_for(lambda: topology.replicas_seen() == 2, 20, message="sentinels see both replicas")
    env = {
        "TRAINQ_BROKER_URL": topology.url,
        "TRAINQ_SENTINEL_MASTER": MASTER,
        "TRAINQ_MIN_REPLICAS": "1",
        "TRAINQ_LEASE_S": "15",
        "TEST_ATTEMPTS_URL": TEST_ENV["TRAINQ_BROKER_URL"],
    }
    pools = [workers.start("probe", name=name, concurrency=2, env=env) for name in ("left", "right")]
    python_elsewhere(
        "from trainq.schedules import create; create('pulse', {'every': '1s', 'type': 'probe'})", env
    )
    beat = beats.start(env=env)  # holds redbeat's lock on the master
    # when jobs are submitted steadily and the master is SIGKILLed after the first 30 were accepted
    log = tmp_path / "submitter.log"
    with log.open("w") as out:
        submitter = subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, str(JOBS)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: log.read_text().count("ok ") >= 30, 60, message="30 jobs accepted")
            old = topology.master()
            topology.kill(old)
            wait_for(lambda: topology.master() != old, 30, message="a replica promoted")
            assert submitter.wait(timeout=90) == 0, log.read_text()
        finally:
            if submitter.poll() is None:
                submitter.kill()
    lines = log.read_text().splitlines()
    accepted = [line.split()[1] for line in lines if line.startswith("ok ")]
    assert len(accepted) >= 30 and all(line.startswith(("ok ", "refused ")) for line in lines), lines
    # then every accepted job succeeds, and ran to its end exactly once
    registry = Registry(master_client(topology.url, MASTER, None, socket_connect_timeout=2), Keys("trainq:"))
    wait_for(
        lambda: (
            all(r.state is JobState.SUCCEEDED for r in registry.get_many(accepted))
            and len(registry.get_many(accepted)) == len(accepted)
        ),
        60,
        message="every accepted job succeeded",
    )
    runs = {j: ends(redis_client, j) for j in accepted}
    twice = [j for j, n in runs.items() if n != 1]
    assert not twice, [
        (j, runs[j], [(e.state.value, e.reason, e.worker) for e in registry.events(j)]) for j in twice[:3]
    ]
    # and the same worker processes did it, never restarted
    dead = [pool.output()[-6000:] for pool in pools if not pool.alive()]
    assert not dead, dead
    # and Beat, never restarted, holds its lock on the new master
    lock = redis.Redis(port=topology.master(), password=PASSWORD)
    wait_for(lambda: lock.pttl("trainq:redbeat::lock") > 0, 30, message="Beat's lock on the new master")
    assert beat.alive(), beat.output()
    # and its every-second schedule kept firing after the failover, never twice for one due time
    # (a submit's WAIT also covers the schedule's advance, written just before it)
    failed_over_at = time.time()
    wait_for(lambda: max(pulses(registry)) > failed_over_at, 30, message="a pulse after the failover")
    created = pulses(registry)
    assert all(later - earlier > 0.5 for earlier, later in itertools.pairwise(created)), created
    # when no master is reachable at all (every Redis server down, the sentinels up)
    for port in [old, *topology.replica_ports]:
        if topology.processes[port].alive():
            topology.kill(port)
    # then a submit fails with exit 3 and a message naming the Sentinel master (the broker's
    # producer or the registry, whichever the send path reaches first), its password masked
    refused = run_cli("submit", "probe", env=env, timeout=90)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "cannot reach the" in refused.stderr and repr(MASTER) in refused.stderr, refused.stderr
    assert PASSWORD not in refused.stderr
    assert PASSWORD not in refused.stdout + refused.stderr
