"""A portable JSON image of one Redis database: every key, typed, with its TTL.

``export_db`` writes what ``load_dump`` restores; values are UTF-8 text where they decode,
else ``{"b64": ...}``, so the file is readable, diffable and independent of Redis's RDB format.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import redis

#: Version of this file format (not of trainq's records).
FORMAT = "redis-json-dump/1"

Text = str | dict[str, str]


def encode(value: bytes) -> Text:
    """``value`` as text if it is UTF-8, else ``{"b64": ...}``."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def decode(value: Text) -> bytes:
    """The bytes ``encode`` was given."""
    return value.encode() if isinstance(value, str) else base64.b64decode(value["b64"])


def export_key(client: redis.Redis, key: bytes) -> dict[str, Any] | None:
    """One key as ``{"key", "type", "ttl_ms", "value"}``; None if it vanished meanwhile."""
    kind = client.type(key).decode()
    value: Any
    extra: dict[str, Any] = {}
    if kind == "string":
        value = encode(client.get(key) or b"")
    elif kind == "hash":
        value = [[encode(f), encode(v)] for f, v in sorted(client.hgetall(key).items())]
    elif kind == "list":
        value = [encode(item) for item in client.lrange(key, 0, -1)]
    elif kind == "set":
        value = [encode(item) for item in sorted(client.smembers(key))]
    elif kind == "zset":
        value = [[encode(m), s] for m, s in client.zrange(key, 0, -1, withscores=True)]
    elif kind == "stream":
        value = [
            [entry_id.decode(), [[encode(f), encode(v)] for f, v in fields.items()]]
            for entry_id, fields in client.xrange(key)
        ]
        info = client.xinfo_stream(key)
        extra = {
            "last_id": _text(info["last-generated-id"]),
            "entries_added": info.get("entries-added", info["length"]),
        }
    elif kind == "none":
        return None
    else:
        raise ValueError(f"key {key!r} has type {kind}, which this dump does not carry")
    return {"key": encode(key), "type": kind, "ttl_ms": client.pttl(key), "value": value, **extra}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def export_db(client: redis.Redis) -> list[dict[str, Any]]:
    """Every key of ``client``'s database, sorted by name."""
    keys = sorted(client.scan_iter(count=1000))
    return [entry for key in keys if (entry := export_key(client, key)) is not None]


def write_dump(path: Path, client: redis.Redis, **sections: Any) -> dict[str, Any]:
    """Write ``client``'s database and ``sections`` (conventions, expectations...) to ``path``."""
    info = client.info("server")
    document = {
        "format": FORMAT,
        "made_at": time.time(),
        "redis_version": info.get("redis_version"),
        **sections,
        "keys": export_db(client),
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    return document


def read_dump(path: Path) -> dict[str, Any]:
    """The document in ``path``; raises ValueError for another format."""
    document: dict[str, Any] = json.loads(Path(path).read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path}: format {document.get('format')!r}, expected {FORMAT!r}")
    return document


def _renamed(key: bytes, prefix_map: dict[str, str]) -> bytes:
    for old, new in prefix_map.items():
        if key.startswith(old.encode()):
            return new.encode() + key[len(old) :]
    return key


def load_dump(
    client: redis.Redis, path: Path, prefix_map: dict[str, str] | None = None, flush: bool = True
) -> dict[str, Any]:
    """Restore the dump in ``path`` into ``client``'s database (flushed first unless ``flush`` is off).

    ``prefix_map`` renames keys starting with a prefix (``{"trainq:": "other:"}``); values are
    restored as they are. TTLs are the ones left when the dump was made. Returns the document.
    """
    document = read_dump(path)
    if flush:
        client.flushdb()
    pipe = client.pipeline(transaction=False)
    for entry in document["keys"]:
        key = _renamed(decode(entry["key"]), prefix_map or {})
        pipe.delete(key)
        kind, value = entry["type"], entry["value"]
        if kind == "string":
            pipe.set(key, decode(value))
        elif kind == "hash":
            pipe.hset(key, mapping={decode(f): decode(v) for f, v in value})
        elif kind == "list":
            pipe.rpush(key, *(decode(item) for item in value))
        elif kind == "set":
            pipe.sadd(key, *(decode(item) for item in value))
        elif kind == "zset":
            pipe.zadd(key, {decode(m): score for m, score in value})
        elif kind == "stream":
            for entry_id, fields in value:
                pipe.xadd(key, {decode(f): decode(v) for f, v in fields}, id=entry_id)
            pipe.execute_command("XSETID", key, entry["last_id"], "ENTRIESADDED", entry["entries_added"])
        else:
            raise ValueError(f"{path}: key {entry['key']!r} has unknown type {kind}")
        if entry["ttl_ms"] > 0:
            pipe.pexpire(key, entry["ttl_ms"])
    pipe.execute()
    return document
