"""Fair queues and job types (real Redis, real worker pools): a tenant's few jobs start in turns
with a big tenant's backlog, and no worker idles while a job waits. Who ran when is read from the
record each probe job writes itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.clients.test_cli_console import trainq
from tests.fixtures import ROOT, Workers, run_cli, wait_for
from tests.integration.test_sharing import all_done, most_at_once, runs, state_of
from trainq import JobState, get_registry
from trainq.ops.control import submit
from trainq.sharing.fair import is_fair_queue


def starts_between(starts: list[float], after: float, before: float) -> int:
    """How many of ``starts`` fall after ``after`` and before ``before``."""
    return sum(after < start < before for start in starts)


def busy_share(intervals: list[tuple[float, float]], processes: int, since: float, until: float) -> float:
    """The share of ``processes`` busy between ``since`` and ``until``, sampled every 10 ms."""
    samples = [since + (until - since) * n / 200 for n in range(201)]
    running = [sum(start <= t < end for start, end in intervals) for t in samples]
    return sum(min(r, processes) for r in running) / (processes * len(samples))


def test_a_fair_types_small_tenant_starts_in_turn_and_no_worker_idles(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given 3 pools of 2 processes on the queue of a fair job type
    for n in range(3):
        workers.start("fair", concurrency=2, name=f"fair{n}")
    # when 30 jobs of key A (no limit) are sent, then 3 of key B
    a_jobs = [submit("fair_probe", {"seconds": 0.4}, limit={"key": "A"}) for _ in range(30)]
    b_sent = time.time()
    b_jobs = [submit("fair_probe", {"seconds": 0.4}, limit={"key": "B"}) for _ in range(3)]
    wait_for(lambda: all_done([*a_jobs, *b_jobs]), timeout=40, message="every job done")
    a_runs = [run for job in a_jobs for run in runs(redis_client, job)]
    b_runs = [run for job in b_jobs for run in runs(redis_client, job)]
    a_starts = sorted(start for start, _ in a_runs)
    # then each of B's jobs started within the first few starts after B was sent (turns, not A's backlog)
    for start, _ in b_runs:
        assert starts_between(a_starts, b_sent, start) <= 4, "B waited behind A's backlog"
    assert max(start for start, _ in b_runs) < a_starts[-12], "B started after most of A's backlog"
    # and while jobs waited, all 6 processes ran jobs at once (the window is the live capacity, not
    # less) and never more (no more than the window), and they were seldom idle: the gaps are the
    # hand-offs between jobs, a few ms each, longer on a busy machine
    everything = a_runs + b_runs
    assert max(sum(s <= t < e for s, e in everything) for t, _ in everything) == 6
    starts = sorted(start for start, _ in everything)
    share = busy_share(everything, 6, starts[5], starts[-1])  # from the 6th start to the last
    print(f"busy share while jobs waited: {share:.3f}")
    assert share > 0.75, f"processes busy {share:.0%} of the time jobs waited"


def test_a_limited_key_in_a_fair_type_keeps_its_limit_and_leaves_the_window_to_others(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given 3 pools of 2 processes on the queue of a fair job type
    for n in range(3):
        workers.start("fair", concurrency=2, name=f"fair{n}")
    # when 30 jobs of key A (limit 2) are sent, then 3 of key B
    limit = {"key": "A", "max_running": 2}
    a_jobs = [submit("fair_probe", {"seconds": 0.2}, limit=limit) for _ in range(30)]
    b_sent = time.time()
    b_jobs = [submit("fair_probe", {"seconds": 0.2}, limit={"key": "B"}) for _ in range(3)]
    wait_for(lambda: all_done([*a_jobs, *b_jobs]), timeout=40, message="every job done")
    a_runs = [run for job in a_jobs for run in runs(redis_client, job)]
    # then never more than 2 of A ran at once, and A's jobs parked for their limit held no place of
    # the window: B's jobs all started at once, before any further start of A
    assert most_at_once(a_runs) == 2
    a_starts = sorted(start for start, _ in a_runs)
    b_starts = [start for job in b_jobs for start, _ in runs(redis_client, job)]
    assert max(b_starts) - b_sent < 1.0
    assert all(starts_between(a_starts, b_sent, start) <= 2 for start in b_starts)
    # and A's two slots were busy while A's jobs waited
    share = busy_share(a_runs, 2, a_starts[0] + 0.05, a_starts[-1])
    print(f"A's slots busy share: {share:.3f}")
    assert share > 0.85


def test_a_queue_made_fair_at_runtime_takes_turns_and_can_be_made_plain_again(
    workers: Workers, redis_client: Any
) -> None:
    # given 2 pools of 2 processes on a plain queue, whose keyless jobs meet no gate
    for n in range(2):
        workers.start("probe", concurrency=2, name=f"probe{n}")
    plain = submit("probe", {})
    assert "limit" not in get_registry().get(plain).options
    # when the queue is made fair from the CLI
    made = run_cli("limits", "fair", "probe")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "probe: fair, window auto"
    wait_for(lambda: is_fair_queue("probe"), timeout=2, message="this process sees probe fair")
    # and 12 jobs of key A are sent, then 2 of key B
    a_jobs = [submit("probe", {"seconds": 0.4}, limit={"key": "A"}) for _ in range(12)]
    # then the waiting ones say why, and the queue is listed with its live capacity
    wait_for(lambda: state_of(a_jobs[-1]) is JobState.QUEUED, message="sent")
    shown = run_cli("show", a_jobs[-1])
    assert "waiting for its turn in fair queue probe" in shown.stdout, shown.stdout
    listed = json.loads(run_cli("limits", "list", "--json").stdout)
    queues = [row for row in listed if row.get("queue") == "probe"]
    assert queues and queues[0]["window"] == "auto" and queues[0]["capacity"] == 4, listed
    b_sent = time.time()
    b_jobs = [submit("probe", {"seconds": 0.4}, limit={"key": "B"}) for _ in range(2)]
    wait_for(lambda: all_done([*a_jobs, *b_jobs]), timeout=30, message="every job done")
    a_starts = sorted(start for job in a_jobs for start, _ in runs(redis_client, job))
    for job in b_jobs:
        assert starts_between(a_starts, b_sent, runs(redis_client, job)[0][0]) <= 3
    # when the queue is made plain again, its keyless jobs meet no gate again
    deleted = run_cli("limits", "delete", "--queue", "probe")
    assert deleted.returncode == 0, deleted.stderr
    wait_for(lambda: not is_fair_queue("probe"), timeout=2, message="probe plain again")
    assert "limit" not in get_registry().get(submit("probe", {})).options
    # and a bad window exits 2 with one message
    bad = run_cli("limits", "fair", "probe", "--window", "0")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: window '0' is invalid: use a number of jobs from 1 to 100000, or auto"
    ]


def test_a_fair_queue_scaled_to_zero_shows_the_autoscaler_a_job(
    tmp_path: Path, workers: Workers, redis_client: redis.Redis
) -> None:
    # given the training pool's KEDA ScaledObject (min 0 replicas, counting the broker's lists only),
    # the training queue made fair with its window auto, and no worker running (scaled to zero)
    manifest = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "worker-training.yaml").read_text())
    scaled = next(doc for doc in manifest if doc["kind"] == "ScaledObject")
    assert scaled["spec"]["minReplicaCount"] == 0
    lists = [trigger["metadata"]["listName"] for trigger in scaled["spec"]["triggers"]]
    made = trainq(tmp_path, "limits", "fair", "training")
    assert made.returncode == 0, made.stderr
    # when three training jobs are submitted from the shell
    config = '{"model": "sgd", "dataset": "digits", "epochs": 1}'
    sent = [trainq(tmp_path, "submit", "training", "--config", config) for _ in range(3)]
    assert all(s.returncode == 0 for s in sent), [s.stderr for s in sent]
    jobs = [s.stdout.strip() for s in sent]
    # then the lists KEDA sums hold one of them (so it scales the pool up), the others wait parked
    assert sum(redis_client.llen(name) for name in lists) == 1
    assert "its window is full" in trainq(tmp_path, "show", jobs[-1]).stdout
    # when the pool's first worker starts, then its own count takes over and every job runs
    workers.start("training")
    wait_for(lambda: all_done(jobs), timeout=60, message="every training job done")
