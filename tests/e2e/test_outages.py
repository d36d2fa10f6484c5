"""Redis outages under a busy command job: the job ends or is recovered, the pool keeps working,
and the CLI gives up on a hung Redis quickly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from markupsafe import escape

from tests.fixtures import (
    ROOT,
    Process,
    Workers,
    free_port,
    python_elsewhere,
    run_cli,
    start_redis,
    submit_elsewhere,
    wait_for,
)
from tests.integration.test_web import AUTH_ENV, Web
from tests.jobs import attempts_key
from tests.tapping_proxy import TappingProxy
from trainq.job.context import OUTBOX_BATCH_LINES, OUTBOX_MAX_LINES, Job
from trainq.job.record import JobRecord, JobState
from trainq.job.types import get_job_type
from trainq.settings import Settings
from trainq.store.registry import DATA_LOSS_NOTE_S, Registry

pytestmark = pytest.mark.slow

#: Prints ~100 KB/s of output and a progress report per line for about 6 s: a pipe nobody
#: drains fills within a second.
BUSY = (
    "i=0; while [ $i -lt 300 ]; do echo \"line $i $(printf '%01000d' 0)\"; "
    'echo "trainq:progress $i/300 loss=0.5"; i=$((i+1)); sleep 0.02; done'
)
#: How long Redis stays away: past redis-py's own retries (~7 s), long enough to fill the pipe.
OUTAGE_S = 10.0


class PrivateRedis:
    """A Redis of the test's own, so it can be killed and frozen."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.env = {"TRAINQ_BROKER_URL": f"redis://127.0.0.1:{self.port}/0", "TRAINQ_KEY_PREFIX": "outage:"}
        self.server: Process = start_redis(directory, self.port)
        self.registry = Registry.from_settings(
            Settings(broker_url=self.env["TRAINQ_BROKER_URL"], key_prefix="outage:")
        )

    def state(self, job_id: str) -> JobState | None:
        try:
            record = self.registry.find(job_id)
        except Exception:  # still coming back
            return None
        return record.state if record else None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis")
    yield redis
    os.kill(redis.server.pid, signal.SIGCONT)
    redis.server.stop()


def _busy_job_survives(
    private_redis: PrivateRedis, workers: Workers, outage: str, lease_s: float, outage_s: float = OUTAGE_S
) -> None:
    # given a one-process command pool and a busy command job streaming output and progress
    env = {**private_redis.env, "TRAINQ_LEASE_S": str(lease_s)}
    worker = workers.start("command", concurrency=1, env=env)
    [job_id] = submit_elsewhere(private_redis.env, [f"submit('command', {{'command': {BUSY!r}}})"])
    wait_for(
        lambda: len(private_redis.registry.read_log(job_id)) > 20, timeout=30, message="the job is streaming"
    )
    # when Redis goes away for longer than the lease while the job prints
    if outage == "kill":
        private_redis.server.kill()
        time.sleep(outage_s)  # the fault itself: Redis stays down this long
        private_redis.server = start_redis(private_redis.directory, private_redis.port)
    else:
        os.kill(private_redis.server.pid, signal.SIGSTOP)
        time.sleep(outage_s)  # the fault itself: Redis stays frozen this long
        os.kill(private_redis.server.pid, signal.SIGCONT)
    # then the job finishes (on this attempt, or again after a recovery), never stuck running
    wait_for(
        lambda: private_redis.state(job_id) is JobState.SUCCEEDED,
        timeout=60,
        message="the busy job succeeded",
    )
    # and the same pool keeps taking work
    [later] = submit_elsewhere(private_redis.env, ["submit('command', {'command': 'echo after'})"])
    wait_for(lambda: private_redis.state(later) is JobState.SUCCEEDED, timeout=30, message="a later job")
    assert worker.alive()
    lines = [line for _, line in private_redis.registry.read_log(job_id, count=10_000)]
    assert any(line.startswith("line 299 ") for line in lines)


def test_busy_command_job_survives_redis_killed_and_restarted_from_aof(
    private_redis: PrivateRedis, workers: Workers
) -> None:
    # the outage is shorter than the lease: the same attempt must carry on and finish
    _busy_job_survives(private_redis, workers, "kill", lease_s=30)


def test_busy_command_job_survives_redis_frozen(private_redis: PrivateRedis, workers: Workers) -> None:
    # the outage is longer than the lease: the job finishes, maybe after a recovery
    _busy_job_survives(private_redis, workers, "stop", lease_s=3, outage_s=6)


def test_cli_against_a_frozen_redis_exits_3_within_the_connect_timeout(private_redis: PrivateRedis) -> None:
    # given a Redis that accepts connections but never answers, and how long the CLI takes to start
    env = {**private_redis.env, "TRAINQ_CONNECT_TIMEOUT_S": "2"}
    started = time.monotonic()
    assert run_cli("submit", "--help", env=env).returncode == 0
    start_up = time.monotonic() - started
    os.kill(private_redis.server.pid, signal.SIGSTOP)
    # when the CLI lists jobs and submits one
    for args in (["list"], ["submit", "probe"]):
        started = time.monotonic()
        result = run_cli(*args, env=env, timeout=60)
        took = time.monotonic() - started
        # then it exits 3 within the 2 s timeout plus start-up (and 2 s of slack for a busy machine)
        assert result.returncode == 3, result.stderr
        print(f"trainq {' '.join(args)}, frozen Redis: exit 3 after {took:.1f}s (start-up {start_up:.1f}s)")
        assert took < start_up + 2 + 2, (took, start_up)


def test_outbox_holds_a_bounded_log_while_redis_is_down_and_counts_what_it_dropped(tmp_path: Path) -> None:
    # given a running job whose registry is not there yet
    port = free_port()
    registry = Registry.from_settings(
        Settings(broker_url=f"redis://127.0.0.1:{port}/0", key_prefix="outbox:")
    )
    now = time.time()
    record = JobRecord(
        id="j1",
        type="probe",
        queue="probe",
        name="j1",
        state=JobState.RUNNING,
        priority=5,
        created_at=now,
        updated_at=now,
    )
    job = Job(record, registry, get_job_type("probe"), tmp_path)
    # when it logs twice as many lines as the outbox holds
    total = 2 * OUTBOX_MAX_LINES + 500
    started = time.monotonic()
    for number in range(total):
        job.log(f"line {number}")
    # then logging never waited on Redis (one wait is a connect timeout of seconds; 20,500 would be hours)
    assert time.monotonic() - started < 10
    # and once Redis is up, the log holds the newest lines and, where the gap is, one line counting
    # the dropped ones (a batch already in flight may still land before it)
    server = start_redis(tmp_path / "redis", port)
    try:

        def stored() -> list[str]:
            return [line for _, line in registry.read_log("j1", count=3 * OUTBOX_MAX_LINES)]

        wait_for(lambda: stored()[-1:] == [f"line {total - 1}"], timeout=20, message="the newest line")
        lines = stored()
        # (a loaded machine may see the outbox retry between drops: each gap gets its own count line)
        gaps = [line for line in lines if line.startswith("[trainq] ")]
        counts = [int(line.split()[1]) for line in gaps]
        assert gaps == [f"[trainq] {n} log lines dropped while the registry was unreachable" for n in counts]
        dropped = sum(counts)
        assert dropped > 0
        numbers = [int(line.split()[1]) for line in lines if line.startswith("line ")]
        assert len(numbers) + dropped == total and len(numbers) <= OUTBOX_MAX_LINES + OUTBOX_BATCH_LINES
        assert numbers == sorted(set(numbers)) and numbers[-1] == total - 1
        job.close(5)
    finally:
        server.stop()


def test_a_short_freeze_as_a_command_ends_neither_fails_nor_reruns_it(
    private_redis: PrivateRedis, workers: Workers, tmp_path: Path
) -> None:
    # given a command pool whose Redis calls give up after 0.5 s, and a job that runs until a flag
    # file appears, noting each start and end in a file of its own
    env = {**private_redis.env, "TRAINQ_CONNECT_TIMEOUT_S": "0.5", "TRAINQ_LEASE_S": "20"}
    workers.start("command", concurrency=1, env=env)
    flag, notes = tmp_path / "flag", tmp_path / "notes"
    command = (
        f"echo start >> {notes}; while [ ! -e {flag} ]; do echo waiting; sleep 0.1; done; echo end >> {notes}"
    )
    [job_id] = submit_elsewhere(private_redis.env, [f"submit('command', {{'command': {command!r}}})"])
    wait_for(lambda: private_redis.state(job_id) is JobState.RUNNING, 30, message="the job runs")
    # when Redis freezes, the command ends meanwhile, and Redis answers again within the lease
    os.kill(private_redis.server.pid, signal.SIGSTOP)
    flag.touch()
    wait_for(lambda: "end" in notes.read_text(), 10, message="the command ended")
    time.sleep(2)  # the fault itself: frozen past the worker's 0.5 s timeouts, well within its lease
    os.kill(private_redis.server.pid, signal.SIGCONT)
    # then the job succeeded on its first attempt, exit code 0, and its command ran once
    wait_for(lambda: private_redis.state(job_id) is JobState.SUCCEEDED, 30, message="the job succeeded")
    record = private_redis.registry.get(job_id)
    assert (record.attempt, record.failures, record.exit_code) == (1, 0, 0), record
    assert notes.read_text().split() == ["start", "end"]


def freezing_proxy(private_redis: PrivateRedis, markers: list[bytes]) -> tuple[TappingProxy, dict[str, str]]:
    """A proxy to ``private_redis`` that freezes it for 3 s as the first request batch holding every one
    of ``markers`` goes out (so it lands when Redis resumes, its answer lost), and a worker's settings
    through it: a 30 s lease, Redis calls that give up after 0.5 s."""

    def freeze() -> None:
        os.kill(private_redis.server.pid, signal.SIGSTOP)
        threading.Timer(3, os.kill, (private_redis.server.pid, signal.SIGCONT)).start()

    proxy = TappingProxy(("127.0.0.1", private_redis.port), markers, freeze)
    env = {
        **private_redis.env,
        "TRAINQ_BROKER_URL": f"redis://127.0.0.1:{proxy.port}/0",
        "TRAINQ_LEASE_S": "30",
        "TRAINQ_CONNECT_TIMEOUT_S": "0.5",
    }
    return proxy, env


@pytest.mark.parametrize(
    ("markers", "options"),
    [
        # an idle worker's main process claims a job due now, with its unacked entry
        ([b"unacked_index", b"EVALSHA"], ""),
        # it holds a delayed job until it is due, and its pool process claims it (naming the fields a
        # start writes)
        ([b"EVALSHA", b"started_at", b"claim"], ", countdown=1"),
    ],
    ids=["main-process", "pool-process"],
)
def test_a_claim_whose_answer_a_frozen_redis_lost_runs_its_job_when_redis_is_back(
    private_redis: PrivateRedis, workers: Workers, tmp_path: Path, markers: list[bytes], options: str
) -> None:
    # given an idle command worker with a 30 s lease whose Redis calls give up after 0.5 s, reaching
    # Redis through a proxy that freezes Redis for 3 s as soon as the worker sends a claim, so the
    # claim lands when Redis resumes but its answer is lost
    proxy, env = freezing_proxy(private_redis, markers)
    try:
        workers.start("command", concurrency=1, env=env)
        notes = tmp_path / "notes"
        # when a job is submitted (by a sender that outwaits the freeze) and the worker claims it
        patient = {**private_redis.env, "TRAINQ_CONNECT_TIMEOUT_S": "10"}
        command = f"echo start >> {notes}"
        [job_id] = submit_elsewhere(patient, [f"submit('command', {{'command': {command!r}}}{options})"])
        wait_for(proxy.matched.is_set, 15, message="the claim was sent")
        # then the job runs within seconds of Redis resuming, not after its 30 s lease: once, on its
        # first attempt
        wait_for(lambda: private_redis.state(job_id) is JobState.SUCCEEDED, 15, message="the job succeeded")
    finally:
        proxy.stop()
    record = private_redis.registry.get(job_id)
    assert (record.attempt, record.recoveries, record.exit_code) == (1, 0, 0), record
    assert notes.read_text().split() == ["start"]


#: A Celery client that never imports trainq: sends a probe job to the broker at argv[1], prints its id.
PLAIN_SENDER = """
import sys
from celery import Celery
app = Celery(broker=sys.argv[1])
print(app.send_task("trainq.probe", kwargs={}, queue="probe").id)
"""


def test_a_plain_clients_job_whose_recording_a_frozen_redis_answered_too_late_runs_once(
    private_redis: PrivateRedis, workers: Workers
) -> None:
    # given an idle probe worker whose Redis calls give up after 0.5 s, reaching Redis through a proxy
    # that freezes Redis for 3 s as soon as the worker sends the record of a job a plain Celery client
    # sent (its record and claim in one transaction), so the record lands but its answer is lost
    proxy, env = freezing_proxy(private_redis, [b"MULTI", b"EVALSHA", b"created_at"])
    try:
        workers.start("probe", concurrency=1, env=env)
        # when a Celery app without trainq sends a job and the worker records it
        code = PLAIN_SENDER
        job_id = subprocess.run(
            [sys.executable, "-c", code, private_redis.env["TRAINQ_BROKER_URL"]],
            capture_output=True,
            text=True,
            check=True,
            cwd="/",
            timeout=60,
        ).stdout.strip()
        wait_for(proxy.matched.is_set, 15, message="the record was sent")
        # then the job runs within seconds of Redis resuming, not lost nor after its lease: once, on its
        # first attempt
        wait_for(lambda: private_redis.state(job_id) is JobState.SUCCEEDED, 15, message="the job succeeded")
    finally:
        proxy.stop()
    record = private_redis.registry.get(job_id)
    assert (record.attempt, record.recoveries) == (1, 0), record
    starts = [
        e
        for e in private_redis.registry.client.lrange(attempts_key(job_id), 0, -1)
        if e.startswith(b"start:")
    ]
    assert len(starts) == 1, starts


OUTCOME_UNKNOWN = """
import json, os, signal, sys
from trainq import OutcomeUnknown
from trainq.ops.control import submit
submit("probe", {})  # a connection that works, as a long-lived sender holds
os.kill(int(sys.argv[1]), signal.SIGSTOP)
try:
    submit("probe", {})
except OutcomeUnknown as exc:
    print(json.dumps({"job_id": exc.job_id, "message": str(exc)}))
finally:
    os.kill(int(sys.argv[1]), signal.SIGCONT)
"""


def test_a_submit_a_frozen_redis_answers_too_late_names_the_job_that_may_be_stored(
    private_redis: PrivateRedis,
) -> None:
    # given a sender holding a working connection, whose Redis freezes before its next submit
    env = {**private_redis.env, "TRAINQ_CONNECT_TIMEOUT_S": "0.5"}
    out = python_elsewhere(OUTCOME_UNKNOWN, env, str(private_redis.server.pid))
    # then the submit raises OutcomeUnknown naming the job, and what to do before sending it again
    refused = json.loads(out.strip().splitlines()[-1])
    job_id = refused["job_id"]
    assert f"job {job_id} may be stored and sent all the same" in refused["message"]
    assert f"check `trainq show {job_id}` before sending it again" in refused["message"]
    # and, as it said, Redis stored the job once it answered again
    wait_for(lambda: private_redis.state(job_id) is JobState.QUEUED, 10, message="the job is stored")


def test_redis_restarted_without_its_data_is_said_so_by_the_workers(tmp_path: Path, workers: Workers) -> None:
    # given a Redis that keeps nothing across a restart, and a worker running a long job on it
    port = free_port()
    directory = tmp_path / "redis"
    server = start_redis(directory, port, "--appendonly", "no")
    env = {"TRAINQ_BROKER_URL": f"redis://127.0.0.1:{port}/0", "TRAINQ_KEY_PREFIX": "outage:"}
    worker = workers.start("command", concurrency=1, env=env)
    registry = Registry.from_settings(Settings(broker_url=env["TRAINQ_BROKER_URL"], key_prefix="outage:"))
    [job_id] = submit_elsewhere(env, ["submit('command', {'command': 'sleep 60'})"])
    wait_for(lambda: registry.get(job_id).state is JobState.RUNNING, 30, message="the job runs")
    try:
        # when Redis restarts empty
        server.kill()
        server = start_redis(directory, port, "--appendonly", "no")
        # then the worker says the registry's Redis lost its data, and why it stops the job
        wait_for(lambda: "restarted without its data" in worker.output(), 30, message="the loss is logged")
        wait_for(lambda: f"job {job_id} has no record any more" in worker.output(), 30, message="the job")
        assert "cancelled or recovered elsewhere" not in worker.output()
    finally:
        server.stop()


def test_listings_say_the_registrys_redis_restarted_without_its_data(
    tmp_path: Path, workers: Workers
) -> None:
    # given a Redis trainq never used, that keeps nothing across a restart, a worker on it and a job
    port = free_port()
    directory = tmp_path / "redis"
    server = start_redis(directory, port, "--appendonly", "no")
    env = {"TRAINQ_BROKER_URL": f"redis://127.0.0.1:{port}/0", "TRAINQ_KEY_PREFIX": "lost:"}
    workers.start("command", concurrency=1, env=env)
    submit_elsewhere(env, ["submit('command', {'command': 'true'})"])
    try:
        # then a new install is no loss: list and stats say nothing on stderr
        for command in (("list",), ("stats",)):
            fresh = run_cli(*command, env=env)
            assert fresh.returncode == 0 and fresh.stderr == "", fresh
        # when Redis restarts empty
        server.kill()
        server = start_redis(directory, port, "--appendonly", "no")
        # then list, once the worker saw it, says so in one line: when, and that the jobs before are gone
        listed = wait_for(
            lambda: "restarted without" in (out := run_cli("list", env=env)).stderr and out,
            30,
            message="the warning",
        )
        assert listed.returncode == 0, listed
        [line] = listed.stderr.splitlines()
        assert line.startswith("warning: the registry's Redis restarted without its data (seen 20"), line
        assert " UTC): every job recorded before then is gone (keep its data across restarts" in line
        # and stats says the same, as its JSON does
        stats = run_cli("stats", env=env)
        assert stats.returncode == 0 and stats.stderr == listed.stderr, stats
        as_json = run_cli("stats", "--json", env=env)
        assert json.loads(as_json.stdout)["data_loss"] == line.removeprefix("warning: ")
        # and the web API's job list carries it, and every page shows it in a banner
        web = Web(tmp_path, {**AUTH_ENV, **env})
        try:
            with web.client() as client:
                assert client.get("/api/v1/jobs").json()["data_loss"] == line.removeprefix("warning: ")
                page = client.get("/jobs")
                assert page.status_code == 200 and str(escape(line.removeprefix("warning: "))) in page.text
        finally:
            web.process.stop()
        # and the warning lasts a few days, not forever
        assert 0 < redis.Redis(port=port).ttl("lost:master:data_loss") <= DATA_LOSS_NOTE_S
    finally:
        server.stop()


def test_a_submit_to_a_full_redis_says_it_is_full(tmp_path: Path) -> None:
    # given a Redis holding 2 MB whose maxmemory is then set to 1 MB, so that it refuses every write
    # (filling up to a limit is not enough: a refused command's own buffer is freed after it, which
    # can leave the server just under its limit again)
    port = free_port()
    server = start_redis(tmp_path / "redis", port, "--maxmemory-policy", "noeviction")
    try:
        env = {"TRAINQ_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
        filler = redis.Redis(port=port)
        for n in range(20):
            filler.set(f"filler:{n}", "x" * 100_000)
        filler.config_set("maxmemory", "1mb")
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            filler.set("probe", "x")
        # when a job is submitted, then it is one line saying the Redis is out of memory, exit 3
        result = run_cli("submit", "data", "--config", '{"dataset": "iris"}', env=env)
        assert result.returncode == 3, result.stderr
        assert "is out of memory" in result.stderr and "maxmemory" in result.stderr, result.stderr
        assert "Start it" not in result.stderr and len(result.stderr.splitlines()) == 1
    finally:
        server.stop()


def test_a_web_submit_a_frozen_redis_answers_too_late_gives_the_job_id_to_look_up(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    # given trainq web on a Redis that freezes after one submit went through
    from tests.integration.test_web import Web

    web = Web(tmp_path, {**private_redis.env, "TRAINQ_CONNECT_TIMEOUT_S": "0.5"})
    try:
        with web.client(auth=None) as client:
            assert client.post("/api/v1/jobs/probe", json={}).status_code == 201
            os.kill(private_redis.server.pid, signal.SIGSTOP)
            try:
                answer = client.post("/api/v1/jobs/probe", json={})
            finally:
                os.kill(private_redis.server.pid, signal.SIGCONT)
        # then the 503 names the job a program can look up before sending it again, which was stored
        assert answer.status_code == 503, answer.text
        job_id = answer.json()["job_id"]
        assert f"job {job_id} may be stored and sent all the same" in answer.json()["detail"]
        wait_for(lambda: private_redis.state(job_id) is JobState.QUEUED, 10, message="the job is stored")
    finally:
        web.process.stop()


KEYED_TOO_LATE = """
import json, os, signal, sys
from trainq import OutcomeUnknown
from trainq.ops.control import submit
limit = {"key": "one-box", "max_running": 1}
submit("probe", {"seconds": 0.1}, limit={"key": "warm-up", "max_running": 1})  # a working connection
os.kill(int(sys.argv[1]), signal.SIGSTOP)
try:
    submit("probe", {"seconds": 0.1}, limit=limit)
except OutcomeUnknown as exc:
    print(exc.job_id)
finally:
    os.kill(int(sys.argv[1]), signal.SIGCONT)
"""


def test_a_keyed_job_whose_submit_was_answered_too_late_still_waits_for_its_keys_slot(
    private_redis: PrivateRedis, workers: Workers
) -> None:
    # given a worker that sends again queued jobs with no message after 1 s, and a job holding
    # key one-box's only slot
    env = {**private_redis.env, "TRAINQ_LOST_MESSAGE_S": "1", "TRAINQ_CONNECT_TIMEOUT_S": "0.5"}
    for name in ("one", "two"):
        workers.start("probe", name=name, concurrency=1, env=env)
    [holder] = submit_elsewhere(
        private_redis.env, ["submit('probe', {'seconds': 6}, limit={'key': 'one-box', 'max_running': 1})"]
    )
    wait_for(lambda: private_redis.state(holder) is JobState.RUNNING, 30, message="the holder runs")
    # when a job of the same key is submitted as Redis freezes: recorded, its answer too late
    late = python_elsewhere(KEYED_TOO_LATE, env, str(private_redis.server.pid)).split()[-1]
    # then it runs once the holder is done, never beside it
    for job_id in (holder, late):
        wait_for(lambda j=job_id: private_redis.state(j) is JobState.SUCCEEDED, 60, message=f"{job_id} ran")

    def noted(job_id: str, kind: bytes) -> float:
        notes = private_redis.registry.client.lrange(attempts_key(job_id), 0, -1)
        return float(next(n for n in notes if n.startswith(kind)).split(b":")[2])

    assert noted(late, b"start:") >= noted(holder, b"end:")


def test_a_worker_started_with_its_broker_down_says_so_once_and_starts_when_it_answers(
    tmp_path: Path, workers: Workers
) -> None:
    # given a broker URL with a password where nothing listens yet
    port, password = free_port(), "S3cretPW4worker"
    env = {"TRAINQ_BROKER_URL": f"redis://:{password}@127.0.0.1:{port}/0", "PYTHONPATH": str(ROOT)}
    # when `trainq worker data` starts, from another directory
    args = [sys.executable, "-m", "trainq", "worker", "data", "--without-gossip", "--without-mingle"]
    worker = Process(args, tmp_path / "worker.log", env, cwd=tmp_path)
    workers.started.append(worker)
    # then it says once which broker it cannot reach (password masked) and that it retries
    line = f"cannot reach the broker at redis://:***@127.0.0.1:{port}/0"
    wait_for(lambda: line in worker.output() or not worker.alive(), 60, message="unreachable broker")
    assert "Retrying every 2s until it answers." in worker.output(), worker.output()
    # when the broker comes up
    workers.started.append(start_redis(tmp_path / "redis", port, "--requirepass", password))
    # then the worker starts on it, having printed that line once, no traceback and no password
    wait_for(lambda: " ready." in worker.output() or not worker.alive(), 60, message="worker ready")
    out = worker.output()
    assert worker.alive() and out.count(line) == 1, out
    assert "Traceback" not in out and password not in out, out


def test_a_worker_with_startup_retries_off_exits_3_with_one_line_when_its_broker_is_down(
    tmp_path: Path,
) -> None:
    # given an app module that turns Celery's connection retries on startup off, and a broker URL
    # with a password where nothing listens
    (tmp_path / "noretry.py").write_text(
        "from trainq.celery import app\n\napp.conf.broker_connection_retry_on_startup = False\n"
    )
    port, password = free_port(), "S3cretPW4noretry"
    env = {
        **os.environ,
        "TRAINQ_BROKER_URL": f"redis://:{password}@127.0.0.1:{port}/0",
        "PYTHONPATH": f"{tmp_path}:{ROOT}",
    }
    # when `celery -A noretry worker` starts from that directory
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "noretry", "worker", "-Q", "data"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then it exits 3 with one line naming the broker (password masked), and no traceback
    out = result.stdout + result.stderr
    assert result.returncode == 3, out
    assert out.count(f"cannot reach the broker at redis://:***@127.0.0.1:{port}/0") == 1, out
    assert "Traceback" not in out and password not in out and "Retrying" not in out, out
