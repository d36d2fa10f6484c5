"""GPU pinning on a real training pool: each process sees its own CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.fixtures import Workers, wait_for
from tests.gpu_jobs import gpu_probe
from trainq import JobState, get_registry
from trainq.errors import ConfigError
from trainq.job.gpus import check_pool, parse_gpus

GPU_ENV = {
    "TRAINQ_GPUS": "0,1",
    "TRAINQ_WORKER_MODULES": json.dumps(["workers.training", "tests.jobs", "tests.gpu_jobs"]),
}


def finished(job_ids: list[str]) -> bool:
    return all(get_registry().get(j).state in (JobState.SUCCEEDED, JobState.DEAD) for j in job_ids)


def test_two_concurrent_training_jobs_get_different_gpus(workers: Workers) -> None:
    # given a training pool of 2 processes pinned to GPUs 0 and 1
    workers.start("training", concurrency=2, env=GPU_ENV)
    barrier = f"test:gpus:{uuid.uuid4().hex}"
    # when two jobs run at once (each waits until the other has started)
    jobs = [gpu_probe.delay(barrier=barrier).id for _ in range(2)]
    wait_for(lambda: finished(jobs), timeout=40, message="both gpu jobs finished")
    # then each saw a different single GPU
    records = [get_registry().get(j) for j in jobs]
    assert [r.state for r in records] == [JobState.SUCCEEDED, JobState.SUCCEEDED], [r.error for r in records]
    assert sorted(r.result["gpu"] for r in records) == ["0", "1"]
    assert records[0].result["pid"] != records[1].result["pid"]


def test_pool_with_more_processes_than_gpus_refuses_to_start(workers: Workers) -> None:
    # given two GPUs, when a pool of 3 processes starts
    worker = workers.start("training", concurrency=3, env=GPU_ENV, ready=False)
    worker.popen.wait(timeout=60)
    # then it exits with a message naming the problem, instead of sharing a GPU
    assert worker.popen.returncode != 0
    assert "lists 2 GPU(s) (0,1) but the pool has 3 processes" in worker.output()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("0,1", ["0", "1"]),
        (" 2 , 3 ", ["2", "3"]),
        ("GPU-8f2a,GPU-11bc", ["GPU-8f2a", "GPU-11bc"]),
    ],
)
def test_parse_gpus(value: str | None, expected: list[str]) -> None:
    assert parse_gpus(value) == expected


@pytest.mark.parametrize(("value", "problem"), [("0,,1", "empty entry"), ("0,0", "lists a GPU twice")])
def test_parse_gpus_rejects_bad_lists(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_gpus(value)


def test_non_prefork_pool_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs the prefork pool"):
        check_pool(["0"], 1, "thread")
