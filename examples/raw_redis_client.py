"""Submit a trainq job with nothing but a Redis client: what a service in another language does.

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/raw_redis_client.py

It writes one Celery protocol-2 message (JSON) onto the job type's queue, then polls Celery's
result key ``celery-task-meta-<id>`` for the outcome. Any language with a Redis client and JSON
can do the same; docs/clients.md describes each field.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid

import redis

client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def submit(job_type: str, payload: dict[str, object], queue: str | None = None) -> str:
    """Push one job onto ``queue`` (default: the job type's); return its id (the Celery task id)."""
    job_id, queue = str(uuid.uuid4()), queue or job_type
    body = [[], payload, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    message = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",  # the protocol's name for this layout, whatever the sender's language
            "task": f"trainq.{job_type}",
            "id": job_id,
            "root_id": job_id,
            "parent_id": None,
            "group": None,
            "retries": 0,  # must be 0: trainq drops later deliveries of a job it has no record of
            "eta": None,
            "expires": None,
            "timelimit": [None, None],
        },
        "properties": {
            "correlation_id": job_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    client.lpush(queue, json.dumps(message))  # priority 0 is the queue's own list
    return job_id


def outcome(job_id: str, timeout_s: float) -> dict[str, object]:
    """Celery's stored result of ``job_id`` (``status``, ``result``), polled until it is final."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        raw = client.get(f"celery-task-meta-{job_id}")
        meta = json.loads(raw) if raw else {}
        if meta.get("status") in ("SUCCESS", "FAILURE"):
            return meta
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not finish in {timeout_s}s")


if __name__ == "__main__":
    job = submit("data", {"dataset": "wine"}, os.environ.get("QUEUE"))
    meta = outcome(job, float(os.environ.get("TIMEOUT_S", "120")))
    print(f"job {job}: {meta['status']} {json.dumps(meta['result'])}")
    sys.exit(0 if meta["status"] == "SUCCESS" else 1)
