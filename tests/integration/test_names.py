"""Queue and job type names: reserved broker keys and unsafe names are refused at every entry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.fixtures import ROOT, Process, wait_for
from trainq import get_registry, job_type
from trainq.broker.names import NAME_PATTERN, check_queue
from trainq.celery import app
from trainq.cli import main
from trainq.errors import InvalidInput, InvalidName, InvalidSetting
from trainq.inputs.documents import brief
from trainq.inputs.limits import NAME_MAX_CHARS
from trainq.job.types import get_job_type
from trainq.settings import PoolSettings, Settings, get_settings

RESERVED = [
    "unacked",
    "unacked_index",
    "unacked_mutex",
    "_kombu.binding.data",
    "celery",
    "celeryev",
    "celeryev.abc",
    "abc.reply.celery.pidbox",
    "celery.pidbox",
    "celery-task-meta-abc",
    "redbeat",
    "trainq:job",
    "trainq",
    "data:1",
    "a b",
    "",
    "x" * (NAME_MAX_CHARS + 1),
    "-leading",
    "tab\tname",
]


@pytest.mark.parametrize("queue", RESERVED)
def test_submit_to_a_reserved_or_unsafe_queue_exits_2_and_stores_nothing(
    redis_client: redis.Redis, queue: str
) -> None:
    # given a broker whose kombu keys hold nothing yet
    # when a job is submitted to a queue named like a broker key
    result = CliRunner().invoke(main, ["submit", "data", "--config", '{"dataset":"iris"}', "--queue", queue])
    # then it is refused with exit 2 naming the rule, and nothing is recorded or sent
    assert result.exit_code == 2, result.output
    assert "invalid queue name" in result.output and "letters, digits" in result.output
    assert get_registry().list() == []
    assert redis_client.keys("*") == []


def test_python_and_job_type_declarations_refuse_reserved_names(redis_client: redis.Redis) -> None:
    # when Python callers pass a reserved queue, or declare a job type with a reserved name or queue
    class Empty(BaseModel):
        pass

    with pytest.raises(InvalidName, match="unacked_index"):
        get_job_type("data").apply_async(kwargs={"dataset": "iris"}, queue="unacked_index")
    with pytest.raises(InvalidName, match="job type name 'unacked'"):
        job_type("unacked", input=Empty)(lambda job, config: None)
    with pytest.raises(InvalidName, match=r"_kombu\.binding\.x"):
        job_type("fine", input=Empty, queue="_kombu.binding.x")(lambda job, config: None)
    # then nothing was recorded
    assert get_registry().list() == []


@pytest.mark.parametrize("option", ["queue", "routing_key"])
def test_sends_that_skip_the_job_task_refuse_reserved_names(redis_client: redis.Redis, option: str) -> None:
    # given trainq's app as `celery -A trainq call` and Flower's send-task API use it: app.send_task,
    # which never passes through JobTask.apply_async
    # when a job is sent to a kombu key's name, then it is refused before kombu writes anything
    with pytest.raises(InvalidName, match="unacked"):
        app.send_task("trainq.data", kwargs={"dataset": "iris"}, exchange="", **{option: "unacked"})
    # then kombu's bookkeeping key did not become a list (which takes every worker down)
    assert redis_client.keys("*") == []
    # and a send to a fine queue still goes
    app.send_task("trainq.data", kwargs={"dataset": "iris"}, queue="data")
    lists = [k for k in redis_client.keys("data*") if redis_client.type(k) == b"list"]  # or a priority list
    assert sum(redis_client.llen(k) for k in lists) == 1


def test_pipeline_file_with_a_reserved_queue_fails_validation(tmp_path: Path, redis_client: Any) -> None:
    path = tmp_path / "p.json"
    jobs = [{"job_id": "a", "command": "true", "queue": "unacked"}]
    path.write_text(json.dumps({"pipeline_id": "p", "jobs": jobs}))
    result = CliRunner().invoke(main, ["pipeline", "validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "invalid queue name 'unacked'" in result.output


def test_settings_pools_and_worker_queues_refuse_reserved_names(
    redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a pool configured for kombu's key, in code or in TRAINQ_POOLS
    with pytest.raises(ValidationError, match="invalid queue name 'unacked'"):
        Settings(pools={"unacked": PoolSettings()})
    monkeypatch.setenv("TRAINQ_POOLS", '{"unacked": {}}')
    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidSetting, match=r"TRAINQ_POOLS: .*invalid queue name 'unacked'"):
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    # trainq worker Q
    result = CliRunner().invoke(main, ["worker", "unacked_mutex"])
    assert result.exit_code == 2, result.output
    assert "invalid queue name 'unacked_mutex'" in result.output


def test_purge_pause_and_resume_refuse_kombu_keys(redis_client: redis.Redis) -> None:
    # given kombu's bookkeeping of a message in flight
    redis_client.hset("unacked", "tag", "[]")
    # when a user purges, pauses or resumes a queue named like it
    runner = CliRunner()
    for args in (["purge", "unacked", "--yes"], ["pause", "unacked"], ["resume", "_kombu.binding.data"]):
        result = runner.invoke(main, args)
        # then each is refused with exit 2 and the bookkeeping is intact
        assert result.exit_code == 2, (args, result.output)
        assert "invalid queue name" in result.output
    assert redis_client.hgetall("unacked") == {b"tag": b"[]"}


def test_trainq_worker_starts_a_pool_with_celery_options_after_the_queues(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    # when `trainq worker probe` starts (as the systemd unit does), with Celery options after the queue
    args = [sys.executable, "-m", "trainq", "worker", "probe", "-P", "solo", "--without-gossip"]
    worker = Process(args, tmp_path / "worker.log")
    try:
        # then a pool on probe comes up
        wait_for(lambda: " ready." in worker.output() or not worker.alive(), 30, message="worker ready")
        assert worker.alive(), worker.output()
        assert ".> probe" in worker.output()
    finally:
        worker.stop()


def test_celery_worker_with_a_reserved_queue_refuses_to_start(redis_client: redis.Redis) -> None:
    # when an operator starts `celery -A trainq worker -Q unacked`
    args = [sys.executable, "-m", "celery", "-A", "trainq", "worker", "-Q", "data,unacked", "-P", "solo"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    # then it exits 2 with one clear line and has touched no kombu key
    assert result.returncode == 2, result.stderr
    assert "refusing to start: invalid queue name 'unacked'" in result.stderr
    assert redis_client.type("unacked") in (b"none", b"hash")


@settings(max_examples=200, deadline=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.from_regex(NAME_PATTERN, fullmatch=True)))
def test_every_name_is_accepted_only_when_safe(name: str) -> None:
    # given any string; then it is either refused with InvalidName or is a safe, non-reserved name
    try:
        check_queue(name, "trainq:")
    except InvalidName as exc:
        assert "letters, digits" in str(exc)
        return
    assert NAME_PATTERN.fullmatch(name) and len(name) <= NAME_MAX_CHARS
    assert name.lower() not in ("unacked", "unacked_index", "unacked_mutex", "celery")
    assert not name.startswith(("_kombu", "trainq:", "celeryev")) and ":" not in name


def test_a_job_id_too_long_is_refused_saying_so(redis_client: redis.Redis) -> None:
    # given a Python caller that chooses a job id of 256 letters; when it submits a job with it
    with pytest.raises(InvalidInput) as refused:
        get_job_type("probe").apply_async(kwargs={}, task_id="j" * 256)
    # then the refusal names the length, not the characters, and nothing is stored
    assert str(refused.value) == f"invalid job id {brief('j' * 256)}: it is 256 characters; at most 255"
    assert get_registry().list() == []
