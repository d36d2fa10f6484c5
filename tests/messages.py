"""Broker messages for tests: a valid Celery envelope as kombu's Redis transport stores it, and
every malformed shape a worker must survive."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

CELERY_BODY = [[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]


def envelope(
    task: str = "trainq.probe", body: bytes | None = None, content_type: str | None = "application/json"
) -> Any:
    """A Celery protocol 2 message as kombu's Redis transport stores it."""
    return {
        "body": base64.b64encode(json.dumps(CELERY_BODY).encode() if body is None else body).decode(),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {"lang": "py", "task": task, "id": "poison", "retries": 0, "timelimit": [None, None]},
        "properties": {
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "probe"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": "poison-tag",
        },
    }


def poison_shapes() -> dict[str, bytes]:
    """Every malformed shape, named, as the raw bytes of a queue entry."""
    good = envelope()
    no_tag, no_info = copy.deepcopy(good), copy.deepcopy(good)
    del no_tag["properties"]["delivery_tag"]
    del no_info["properties"]["delivery_info"]
    bad_base64 = {**good, "body": "***not base64***"}
    # a lone surrogate (JSON "\\ud800") in the id would exit the worker; in the routing key it
    # would be the queue of the job's record, which could then not be written
    id_not_text, routing_key_not_text = copy.deepcopy(good), copy.deepcopy(good)
    id_not_text["headers"]["id"] = "poison-\ud800"
    routing_key_not_text["properties"]["delivery_info"]["routing_key"] = "pro\udfffbe"
    shapes = {
        "not json": b"not json",
        "empty object": b"{}",
        "list": b"[1,2]",
        "null": b"null",
        "not utf-8": b"\xff\xfe\x00garbage",
        "no properties": {k: v for k, v in good.items() if k != "properties"},
        "no headers": {k: v for k, v in good.items() if k != "headers"},
        "headers not a mapping": {**good, "headers": 5},
        "no delivery tag": no_tag,
        "no delivery info": no_info,
        "bad base64": bad_base64,
        "id not text": id_not_text,
        "routing key not text": routing_key_not_text,
        "body not json": envelope(body=b"not json"),
        "body not celery's": envelope(body=b"[1]"),
        "pickle": envelope(body=b"\x80\x04N.", content_type="application/x-python-serialize"),
        "yaml": envelope(body=b"[[], {}, {}]", content_type="application/x-yaml"),
        # kombu hands a body without a content type over undecoded: Celery's main process unpacked it
        "no content type": envelope(content_type=None),
        "unknown task": envelope(task="trainq.no_such_type"),
        # past the decoder's stack, and within it but past what reaches a pool process
        "body nested 100,000 deep": envelope(body=b"[[], " + nested(100_000) + b", {}]"),
        "body nested 900 deep": envelope(body=b"[[], " + nested(900) + b", {}]"),
        "headers nested 900 deep": json.dumps(good)
        .replace('"lang": "py"', '"lang": "py", "x": 1')
        .encode()
        .replace(b'"x": 1', b'"x": ' + nested(900)),
    }
    return {name: raw if isinstance(raw, bytes) else json.dumps(raw).encode() for name, raw in shapes.items()}


def nested(depth: int) -> bytes:
    """A JSON object ``depth`` levels deep, as text (encoding one would need as deep a stack)."""
    return b'{"a":' * depth + b"1" + b"}" * depth
