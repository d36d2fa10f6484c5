"""The quarantine: broker messages a worker could not run, kept with their raw bytes for inspection.

A message that cannot be decoded, is not a Celery task envelope, carries a content type trainq
refuses (pickle, YAML) or names an unknown task is set aside here by the worker that received
it, logged once, and acknowledged; the worker keeps consuming. ``trainq quarantine`` lists,
shows, re-queues (once a worker that knows its task is running) and drops them; ``trainq dead``
and ``stats`` count them.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Collection
from typing import Any

import redis
from kombu.entity import Queue
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainq.broker.transport import task_problem
from trainq.errors import InvalidInput
from trainq.inputs.documents import nesting_problem
from trainq.inputs.limits import QUARANTINE_MAX_BYTES, QUARANTINE_MAX_MESSAGES
from trainq.store.keys import Keys
from trainq.store.registry import get_registry

log = logging.getLogger("trainq.broker.quarantine")


class QuarantinedMessage(BaseModel):
    """One set-aside message: where it came from, why, when, and its first bytes."""

    id: str
    queue: str
    reason: str
    at: float
    size: int
    raw_b64: str

    @property
    def raw(self) -> bytes:
        """The message as received (cut at ``QUARANTINE_MAX_BYTES``)."""
        return base64.b64decode(self.raw_b64)


class Quarantine:
    """Set-aside messages in one capped Redis list under the key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def add(
        self, queue: str, raw: bytes, reason: str, level: int = logging.ERROR
    ) -> QuarantinedMessage | None:
        """Keep ``raw`` from ``queue`` with ``reason`` and log it once at ``level`` (lower it where
        Celery has already logged the refusal at ERROR).

        Returns the entry, or None when Redis could not take it (the ERROR line is all that is left).
        """
        entry = QuarantinedMessage(
            id=uuid.uuid4().hex[:12],
            queue=queue,
            reason=reason,
            at=time.time(),
            size=len(raw),
            raw_b64=base64.b64encode(raw[:QUARANTINE_MAX_BYTES]).decode(),
        )
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(self.keys.quarantine(), entry.model_dump_json())
            pipe.ltrim(self.keys.quarantine(), 0, QUARANTINE_MAX_MESSAGES - 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.error(
                "dropped a message from queue %s (%s); could not quarantine it (%s): %r",
                queue,
                reason,
                exc,
                raw[:200],
            )
            return None
        log.log(
            level,
            "set aside a message from queue %s: %s; see `trainq quarantine show %s`",
            queue,
            reason,
            entry.id,
        )
        return entry

    def newest(self, limit: int = QUARANTINE_MAX_MESSAGES) -> list[QuarantinedMessage]:
        """The newest ``limit`` entries, newest first."""
        return [entry for _, entry in self._entries(limit)]

    def _entries(self, limit: int = QUARANTINE_MAX_MESSAGES) -> list[tuple[bytes, QuarantinedMessage]]:
        raw = self.client.lrange(self.keys.quarantine(), 0, max(limit, 1) - 1)
        return [(item, QuarantinedMessage.model_validate_json(item)) for item in raw]

    def count(self) -> int:
        """How many messages are set aside."""
        return int(self.client.llen(self.keys.quarantine()))

    def get(self, entry_id: str) -> QuarantinedMessage:
        """The entry ``entry_id``; raises InvalidInput if there is none."""
        return self._find(entry_id)[1]

    def _find(self, entry_id: str) -> tuple[bytes, QuarantinedMessage]:
        for item, entry in self._entries():
            if entry.id == entry_id:
                return item, entry
        raise InvalidInput(f"no quarantined message with id {entry_id!r}")

    def requeue(
        self, entry_id: str, producer: Any, queue: Queue, accept: Collection[str]
    ) -> QuarantinedMessage:
        """Publish entry ``entry_id``'s message again, as it was received, to ``queue``; it leaves the
        quarantine first, so two re-queues of one entry send it once (put back if the publish fails).

        Raises InvalidInput, with nothing sent, for an entry kept only in part, not a task message, or
        one a worker would set aside again (a content type not in ``accept``, too deep, no Celery body).
        """
        item, entry = self._find(entry_id)
        message, body = _resendable(entry, accept)
        if not self.client.lrem(self.keys.quarantine(), 1, item):
            raise InvalidInput(
                f"no quarantined message with id {entry_id!r} (re-queued or dropped meanwhile)"
            )
        properties = message.properties
        try:
            producer.publish(
                body,
                exchange="",  # the default exchange, as trainq and Celery send: no binding table to read
                routing_key=queue.name,
                declare=[queue],
                headers=message.headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                **{k: properties[k] for k in ("priority", "correlation_id", "reply_to") if properties.get(k)},
            )
        except BaseException:
            self.client.lpush(self.keys.quarantine(), item)  # not sent: kept as it was
            raise
        return entry

    def drop(self, entry_id: str | None = None) -> int:
        """Forget entry ``entry_id`` (every entry when None); return how many were dropped."""
        if entry_id is None:
            pipe = self.client.pipeline(transaction=True)
            pipe.llen(self.keys.quarantine())
            pipe.delete(self.keys.quarantine())
            return int(pipe.execute()[0])
        item, _ = self._find(entry_id)
        return int(self.client.lrem(self.keys.quarantine(), 1, item))


def get_quarantine() -> Quarantine:
    """The process's quarantine, in the registry's Redis."""
    registry = get_registry()
    return Quarantine(registry.client, registry.keys)


class _Envelope(BaseModel):
    """A kept message's parts a re-queue sends: kombu's Redis envelope, or ``envelope_bytes``'s form."""

    model_config = ConfigDict(populate_by_name=True)

    body: str
    headers: dict[str, Any]
    content_type: str = Field(alias="content-type")
    content_encoding: str | None = Field(None, alias="content-encoding")
    properties: dict[str, Any] = {}

    def body_bytes(self) -> bytes:
        """The body as the sender published it."""
        if self.properties.get("body_encoding") == "base64":
            return base64.b64decode(self.body)
        return self.body.encode("latin-1" if self.properties.get("body_encoding") == "latin-1" else "utf-8")


def _resendable(entry: QuarantinedMessage, accept: Collection[str]) -> tuple[_Envelope, bytes]:
    """``entry``'s message and its body as sent; raises InvalidInput when it cannot be sent again
    (kept in part, not a task message) or a worker would only set it aside again."""

    def refused(problem: str) -> InvalidInput:
        return InvalidInput(f"quarantined message {entry.id} {problem}: it cannot be re-queued")

    if len(entry.raw) < entry.size:
        raise refused("was kept only in part")
    if problem := nesting_problem(entry.raw):
        raise refused(f"is {problem}")
    try:
        message = _Envelope.model_validate_json(entry.raw)
    except ValidationError:
        raise refused("is not a task message") from None
    if message.content_type not in accept:
        raise refused(f"has content type {message.content_type!r}, which workers refuse")
    try:
        body = message.body_bytes()
    except (ValueError, UnicodeEncodeError):
        raise refused("has a body that cannot be read") from None
    if problem := task_problem({"content-type": message.content_type}, message.headers, body):
        raise refused(f"is {problem}")
    return message, body


def envelope_bytes(message: object) -> bytes:
    """The bytes of a kombu message as the broker held it: the Redis envelope, else its parts."""
    raw = getattr(message, "_raw", None)
    if isinstance(raw, dict):
        return json.dumps(raw).encode()
    body = getattr(message, "body", b"")
    properties = getattr(message, "properties", None) or {}
    return json.dumps(
        {
            "headers": getattr(message, "headers", None),
            "content-type": getattr(message, "content_type", None),
            "content-encoding": getattr(message, "content_encoding", None),
            "properties": {
                # bytes kept one character a byte; text (a body the transport decoded) as it is
                "body_encoding": "latin-1" if isinstance(body, bytes) else None,
                **{k: properties.get(k) for k in ("priority", "correlation_id", "reply_to")},
            },
            "body": body.decode("latin-1") if isinstance(body, bytes) else str(body),
        },
        default=str,
    ).encode()
