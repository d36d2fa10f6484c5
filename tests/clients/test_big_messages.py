"""Messages of a plain Celery client far past trainq's input limits: refused, stored bounded, read fast.

The sender is ``test_celery_client``'s (trainq nowhere on its path); its big values are built in its
own process from ``{"big": N}`` markers, since a command line holds at most 128 KiB an argument.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from tests.clients.test_celery_client import REDIS, SENDER, send
from tests.clients.test_cli_console import trainq
from tests.fixtures import Workers, wait_for
from tests.integration.test_web import Web, web  # noqa: F401  (a fixture)
from trainq import JobState, get_registry
from trainq.inputs.limits import (
    JOB_ID_MAX_CHARS,
    MAX_CONFIG_BYTES,
    REFUSED_PAYLOAD_KEPT_BYTES,
    WEB_LIST_PAYLOAD_MAX_BYTES,
)

#: Expands each ``{"big": N}`` in the jobs into N characters, then runs the sender.
BIG_SENDER = """
import json, sys
def expand(value):
    if isinstance(value, dict):
        return "x" * value["big"] if set(value) == {"big"} else {k: expand(v) for k, v in value.items()}
    return [expand(v) for v in value] if isinstance(value, list) else value
sys.argv[4] = json.dumps(expand(json.loads(sys.argv[4])))
"""
#: Past every limit a message's field has, and more than any one record may hold.
BIG = 2 * MAX_CONFIG_BYTES
#: Most bytes any key of the registry may take after the big messages (a record holds a preview).
KEY_MAX_BYTES = 64 * 1024


def send_big(tmp_path: Path, queue: str, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``send`` with ``BIG_SENDER`` in front: ``{"big": N}`` values are built by the sender."""
    return send(tmp_path, REDIS, queue, jobs, code=BIG_SENDER + SENDER)


def test_messages_past_the_limits_are_refused_stored_bounded_and_read_fast(
    workers: Workers,
    tmp_path: Path,
    redis_client: redis.Redis,
    web: Web,  # noqa: F811
) -> None:
    # given a data worker on its own queue
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue)
    data = {"task": "trainq.data", "kwargs": {"dataset": "iris"}}
    # when a Celery app without trainq sends a payload, a tag, a job id and arguments far past the limits
    seen = send_big(
        tmp_path,
        queue,
        [
            {"task": "trainq.data", "kwargs": {"dataset": {"big": BIG}}},
            {**data, "headers": {"trainq": {"tags": {"team": {"big": BIG}}}}},
            {**data, "task_id": {"big": 100_000}},
            {"task": "trainq.data", "args": [{"big": BIG}]},
        ],
    )
    payload, tag, job_id, args = seen
    # then each is refused, with a reason naming the limit that the sender's get() raised too
    for refused, words in (
        (payload, f"larger than the limit of {MAX_CONFIG_BYTES:,} bytes"),
        (tag, "its value is 2,097,152 characters; at most 256"),
        (job_id, f"it is 100,000 characters; at most {JOB_ID_MAX_CHARS}"),
        (args, "takes keyword arguments only"),
    ):
        assert refused["state"] == "FAILURE" and refused["type"] == "InvalidInput", refused
        assert words in refused["error"], refused
    registry = get_registry()
    for refused in (payload, tag, args):
        assert registry.get(refused["id"]).state is JobState.FAILED
    # and the over-long id names no record (it would name its keys); the payload is kept as a preview
    assert registry.find(job_id["id"]) is None
    kept = registry.get(payload["id"]).payload["(payload)"]
    assert len(kept) < REFUSED_PAYLOAD_KEPT_BYTES + 100 and kept.endswith("never stored whole)"), kept[-80:]
    # and, once the worker acked them (kombu holds a message it delivered until then), no key of
    # trainq's, nor its name, holds the big values (Celery's result of the long id is the sender's own
    # key, as it chose it)
    wait_for(lambda: not redis_client.hlen("unacked"), 30, message="the messages acked")
    for key in redis_client.scan_iter(count=1000):
        if key.startswith(b"celery-task-meta-") and job_id["id"].encode() in key:
            continue
        assert len(key) < 1000 and (redis_client.memory_usage(key) or 0) < KEY_MAX_BYTES, key[:80]
    # and ``trainq show``, the API's job list and the job page answer at once, in a bounded size
    started = time.monotonic()
    shown = trainq(tmp_path, "show", payload["id"])
    assert shown.returncode == 0 and len(shown.stdout) < 3 * REFUSED_PAYLOAD_KEPT_BYTES, shown.stderr
    with web.client() as client:
        for path in ("/api/v1/jobs?limit=50", f"/api/v1/jobs/{payload['id']}", f"/jobs/{payload['id']}"):
            answer = client.get(path)
            assert answer.status_code == 200 and len(answer.content) < 4 * KEY_MAX_BYTES, path
    assert time.monotonic() - started < 30


def test_a_long_payload_within_the_limit_is_shown_cut_and_whole_with_json(
    workers: Workers,
    tmp_path: Path,
    redis_client: redis.Redis,
    web: Web,  # noqa: F811
) -> None:
    # given a refused job whose payload is long yet within the size limit, so it is kept whole
    queue = f"data-{uuid.uuid4().hex[:6]}"
    workers.start(queue)
    (refused,) = send_big(
        tmp_path, queue, [{"task": "trainq.data", "kwargs": {"dataset": "iris", "notes": {"big": 500_000}}}]
    )
    assert get_registry().get(refused["id"]).payload["notes"] == "x" * 500_000
    # when it is shown, then ``trainq show`` prints a cut line saying how to see it whole
    shown = trainq(tmp_path, "show", refused["id"])
    assert shown.returncode == 0, shown.stderr
    assert f"more characters: trainq show {refused['id']} --json)" in " ".join(shown.stdout.split())
    assert len(shown.stdout) < 20_000
    # and ``--json`` prints it whole
    whole = trainq(tmp_path, "show", refused["id"], "--json")
    assert json.loads(whole.stdout)["payload"]["notes"] == "x" * 500_000
    # and the API's job list shows a preview saying where it is whole, the job's own answer all of it
    with web.client() as client:
        (listed,) = client.get("/api/v1/jobs").json()["jobs"]
        preview = listed["payload"]["(payload)"]
        assert len(preview) < WEB_LIST_PAYLOAD_MAX_BYTES + 200, len(preview)
        assert preview.endswith(f"GET /api/v1/jobs/{refused['id']} has it whole)"), preview[-100:]
        assert client.get(f"/api/v1/jobs/{refused['id']}").json()["payload"]["notes"] == "x" * 500_000


def test_tags_past_the_limits_are_refused_by_every_route(tmp_path: Path, redis_client: redis.Redis) -> None:
    # when a user submits a job with a tag value past the limit
    result = trainq(tmp_path, "submit", "probe", "--tag", "team=" + "v" * 300)
    # then it is one line naming the tag and the limit, exit 2, and nothing is recorded
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "tag 'team': its value is 300 characters; at most 256" in result.stderr
    assert not get_registry().list(limit=10)
