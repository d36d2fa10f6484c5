"""trainq's Redis broker transports (plain and Sentinel): kombu's, with one publishing client per
channel, a screen that sets aside messages kombu or Celery could not read, and acks sent with the
next delivery's bookkeeping (``QoS``).

kombu's Redis channel builds a new ``redis.Redis`` object for every publish, ack and event
(about 15% of a ``delay()``). That object is a thin, thread-safe wrapper over the channel's
connection pool, so one per channel serves them all; the event loop's client is unchanged.

kombu decodes a message popped by ``BRPOP`` without a guard: an entry that is not JSON, not a
kombu envelope, or whose body is not valid base64 raises out of the event loop and the worker
exits (``Unrecoverable error``) or drops its connection, and the message is gone. The event
loop's client here screens each popped entry first, in the spirit of kombu's own key-prefix
client: a bad one goes to the quarantine (``trainq.broker.quarantine``) and the poll reads as empty.

A worker may send its claim on a delivery (``trainq.job.claims``) in that delivery's own
bookkeeping transaction, through ``claim_deliveries``: the job starts without a round trip of its own.
Such a transaction whose answer is lost is sent again, the same commands, while Redis does not answer.

Inside ``collecting``, a publish builds its message as kombu always does but hands back its Redis
commands (the ``LPUSH`` onto the queue's list for that priority) instead of sending them, through
kombu's own publish-batch hook, so the caller sends them with its own writes (``trainq.job.send``).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis

from trainq.broker import priorities
from trainq.inputs.documents import is_text, nesting_problem

#: Celery's ``broker_transport`` for ``redis://`` brokers.
TRANSPORT = "trainq.broker.transport:Transport"

#: Longest an ack waits for the next delivery's write to carry it (``QoS``).
ACK_FLUSH_S = 0.1

#: Celery's ``broker_transport`` for ``sentinel://`` brokers.
SENTINEL_TRANSPORT = "trainq.broker.transport:SentinelTransport"

#: Broker URL schemes served by this transport (see ``trainq.settings``).
SCHEMES = ("redis://", "redis+socket://")

#: The body of a Celery (protocol 2) task message: ``[args, kwargs, embed]``.
BODY_PARTS = (list, dict, dict)


def envelope_problem(item: bytes) -> str | None:
    """Why kombu cannot read ``item`` (one entry of a queue list) as a message, or None.

    Every queue holds kombu envelopes; a Celery task message (one with a ``task`` header, as
    opposed to e.g. a remote-control reply) must also carry Celery's body. Anything else a
    kombu envelope may hold is left to Celery, which refuses it itself (see ``trainq.ops.worker``).
    """
    if problem := nesting_problem(item):
        return problem
    try:
        message = json.loads(item.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except ValueError:
        return "not JSON"
    if not isinstance(message, dict):
        return f"a JSON {type(message).__name__}, not a message envelope"
    properties, headers = message.get("properties"), message.get("headers")
    if not isinstance(properties, dict):
        return "an envelope without properties"
    if headers is not None and not isinstance(headers, dict):
        return "an envelope whose headers are not a mapping"
    info = properties.get("delivery_info")
    if not isinstance(properties.get("delivery_tag"), str) or not isinstance(info, dict):
        return "an envelope without a delivery tag and delivery info"
    if not {"exchange", "routing_key"} <= info.keys():
        return "an envelope whose delivery info has no exchange or routing key"
    if not all(is_text(info[k]) for k in ("exchange", "routing_key") if isinstance(info[k], str)):
        return "an envelope whose exchange or routing key is not text"  # its job could not be recorded
    body = message.get("body")
    if not isinstance(body, str):
        return "a body that is not text"
    encoding = properties.get("body_encoding")
    if encoding and encoding != "base64":  # kombu decodes a truthy encoding it may not know
        return f"a body encoding kombu does not know: {encoding!r}"
    if encoding:
        try:
            decoded = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "a body that is not valid base64"
    else:
        decoded = body.encode()
    if headers and "task" in headers:
        return task_problem(message, headers, decoded)
    return None


def task_problem(message: dict[str, Any], headers: dict[str, Any], body: bytes) -> str | None:
    """Why a message with a ``task`` header is not a Celery task message, or None."""
    names = headers.get("task"), headers.get("id")
    if not all(isinstance(name, str) and is_text(name) for name in names):
        # a lone surrogate in the id fails the claim in Celery's main process, which exits
        return "a task message whose task name or id is not text"
    limits = headers.get("timelimit")
    if limits is not None and not (
        isinstance(limits, list)
        and len(limits) == 2
        and all(v is None or (type(v) in (int, float)) for v in limits)
    ):
        # Celery's main process unpacks it unguarded: the worker exits (Unrecoverable error) and the
        # message, restored, takes down the next worker too
        return "a task message whose timelimit is not [soft, hard] seconds"
    if message.get("content-type") != "application/json" or "compression" in headers:
        return None  # Celery refuses other content types itself (task_rejected)
    if problem := nesting_problem(body):
        return problem
    try:
        parts = json.loads(body)
    except ValueError:
        return "a JSON task message whose body is not JSON"
    if not (
        isinstance(parts, list)
        and len(parts) == len(BODY_PARTS)
        and all(isinstance(p, kind) for p, kind in zip(parts, BODY_PARTS, strict=True))
    ):
        return "a task message whose body is not Celery's [args, kwargs, options]"
    return None


def screened(client_class: type[Any], channel: kombu_redis.Channel) -> type[Any]:
    """``client_class`` whose ``BRPOP`` replies skip, and quarantine, entries kombu cannot read."""

    class ScreeningClient(client_class):
        def parse_response(self, connection: Any, command_name: str, **options: Any) -> Any:
            reply = super().parse_response(connection, command_name, **options)
            if command_name != "BRPOP" or not reply:
                return reply
            key, item = reply
            problem = envelope_problem(item)
            if problem is None:
                return reply
            from trainq.broker.quarantine import get_quarantine

            queue = key.decode(errors="replace").rsplit(channel.sep, 1)[0]
            get_quarantine().add(queue, item, problem)
            return None  # kombu reads this as an empty poll and polls again

    return ScreeningClient


class Collected:
    """The Redis commands of the messages published inside ``collecting``: ``(command, *args)`` each.

    Passed to kombu's ``Channel._put`` as its publish batch, which calls ``add`` for every command.
    """

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, *args))


#: Queues a worker's claim on a delivery (the message) on that delivery's bookkeeping pipeline and
#: returns what takes the claim's reply, or None for no claim (see ``claim_deliveries``).
DeliveryClaim = Callable[[Any, Any], Callable[[Any], None] | None]

#: Sends a claimed delivery's bookkeeping transaction, given what sends it once: tries it again, for
#: as long as it sees fit, while Redis does not answer (see ``claim_deliveries``).
ClaimSending = Callable[[Callable[[], list[Any]]], list[Any]]


def _once(send: Callable[[], list[Any]]) -> list[Any]:
    """Send once: no claim, or no process that tries again."""
    return send()


_claim: DeliveryClaim | None = None
_sending: ClaimSending = _once
#: False while kombu puts back a message no consumer takes (see ``_PutBackUnclaimed``).
_claiming: ContextVar[bool] = ContextVar("trainq_claiming", default=True)


def claim_deliveries(claim: DeliveryClaim | None, sending: ClaimSending = _once) -> None:
    """Send ``claim``'s command with each delivery's unacked bookkeeping in this process (None: stop).

    A claimed delivery's transaction goes through ``sending``, which may send it again when its answer
    is lost: the same commands, so a claim that landed unseen is answered by its own claim sent again.
    """
    global _claim, _sending
    _claim, _sending = claim, sending


_collected: ContextVar[Collected | None] = ContextVar("trainq_collected", default=None)


@contextmanager
def collecting() -> Iterator[list[tuple[Any, ...]]]:
    """Within the block, publishes through this transport are collected, not sent: the list it gives."""
    collected = Collected()
    token = _collected.set(collected)
    try:
        yield collected.commands
    finally:
        _collected.reset(token)


def _sender(pipe: Any) -> Callable[[], list[Any]]:
    """What sends ``pipe``'s commands, the same each time (a failed execute empties the pipeline)."""
    commands = list(pipe.command_stack)

    def send() -> list[Any]:
        if not pipe.command_stack:
            for args, options in commands:
                pipe.pipeline_execute_command(*args, **options)
        return list(pipe.execute(raise_on_error=False))

    return send


class QoS(kombu_redis.QoS):
    """kombu's unacked bookkeeping, sending an ack's two writes with the next delivery's.

    kombu drops an acked message's unacked entry in a round trip of its own (``MULTI``, ``ZREM``,
    ``HDEL``, ``EXEC``) and adds the next message's in another. Here an ack is held until the next
    write of this channel's bookkeeping, which carries it, or until the event loop's flush (every
    ``ACK_FLUSH_S``) when no message comes. Acks are held only where that flush runs (a worker's
    event loop). An ack lost with its process leaves the entry to kombu's visibility-timeout
    restore: the message comes again and trainq's claim refuses a job already finished.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._held: list[str] = []

    def ack(self, delivery_tag: str) -> None:
        if getattr(self.channel.connection, "_ack_flush", None) is None:  # no loop flushes them
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
            return
        self._held.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]

    def append(self, message: Any, delivery_tag: str) -> None:
        """kombu's unacked entry for ``message``, with the worker's claim on it in the same transaction."""
        delivery = message.delivery_info
        entry = json.dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                self.unacked_key, delivery_tag, entry
            )
            claimed = _claim(message, pipe) if _claim is not None and _claiming.get() else None
            if claimed is None:
                replies = pipe.execute()
            else:
                replies = _sending(_sender(pipe))
                for reply in replies[:-1]:
                    if isinstance(reply, Exception):
                        raise reply  # the bookkeeping failed: as kombu's, before it tracks the message
            virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]
        if claimed is not None:
            claimed(replies[-1])

    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        with super().pipe_or_acquire(pipe, client) as pipe:
            held, self._held = self._held, []
            for tag in held:
                pipe.zrem(self.unacked_index_key, tag).hdel(self.unacked_key, tag)
            yield pipe

    def flush_acks(self) -> None:
        """Send the acks held (a round trip only if there are some)."""
        if self._held:
            with self.pipe_or_acquire() as pipe:
                pipe.execute()


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, building its synchronous client once, screening what it pops,
    collecting what it would push inside ``collecting``, holding acks (``QoS``) and failing as a
    lost connection once closed."""

    QoS = QoS
    _sync_client: Any = None

    def close(self) -> None:
        if self._qos is not None and not self.closed:
            with suppress(*self.connection_errors):  # unsent, an ack's entry is restored and refused
                self._qos.flush_acks()
        super().close()  # type: ignore[no-untyped-call]

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        collected = _collected.get()
        if collected is not None and kwargs.get("_publish_batch") is None:
            kwargs["_publish_batch"] = collected
        super()._put(queue, message, **kwargs)  # type: ignore[no-untyped-call]

    def _purge(self, queue: str) -> int:
        """kombu's, and the lists a plain Celery client with Celery's default priority options wrote
        ``queue``'s messages to (``trainq.broker.priorities``), so that a purge (``trainq purge``,
        ``celery -A trainq purge``) leaves none of its messages behind."""
        with self.conn_or_acquire() as client, client.pipeline() as pipe:
            for name in priorities.lists(queue):
                pipe = pipe.llen(name).delete(name)
            foreign = sum(pipe.execute()[::2])
        return super()._purge(queue) + foreign  # type: ignore[no-untyped-call,no-any-return]

    def _get_client(self) -> Any:
        return screened(super()._get_client(), self)  # type: ignore[no-untyped-call]

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        if self._sync_client is None:
            self._sync_client = super()._create_client(asynchronous=False)  # type: ignore[no-untyped-call]
        return self._sync_client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        """kombu's, raising a connection error when the channel's connection is gone.

        After a lost connection Celery closes it, which leaves the channel without its kombu
        ``Connection``; a late ack or restore on that channel then built a pool from ``None`` and
        its ``AttributeError`` took the worker down ("Unrecoverable error") instead of the
        reconnect a connection error gets.
        """
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call,no-any-return]


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with the changes of ``Channel``."""


class _FlushingAcks:
    """A transport whose channels hold acks (``QoS``) when an event loop flushes them."""

    channels: list[Channel]
    _ack_flush: Any = None

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[misc]
        if self._ack_flush is not None:
            self._ack_flush.cancel()  # the previous connection's
        self._ack_flush = loop.call_repeatedly(ACK_FLUSH_S, self._flush_acks)

    def _flush_acks(self) -> None:
        for channel in self.channels:
            if channel._qos is not None:
                channel._qos.flush_acks()


class _PutBackUnclaimed:
    """A transport that never claims a message kombu puts back because no consumer takes it (a
    queue its worker stopped consuming, as ``trainq pause`` does, while its ``BRPOP`` was out):
    kombu writes an unacked entry for it, then rejects it to its queue."""

    def _reject_inbound_message(self, raw_message: Any) -> None:
        token = _claiming.set(False)
        try:
            super()._reject_inbound_message(raw_message)  # type: ignore[misc]
        finally:
            _claiming.reset(token)


class Transport(_FlushingAcks, _PutBackUnclaimed, kombu_redis.Transport):
    """kombu's Redis transport with trainq's channel."""

    Channel = Channel


class SentinelTransport(_FlushingAcks, _PutBackUnclaimed, kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with trainq's channel."""

    Channel = SentinelChannel


def held_job_ids(channel: Any) -> set[str] | None:
    """Ids of the jobs whose deliveries workers hold now (kombu's unacked entries of ``channel``'s
    Redis), or None on another broker."""
    if not isinstance(channel, kombu_redis.Channel):
        return None
    held: set[str] = set()
    for entry in channel.client.hvals(channel.unacked_key):
        with suppress(ValueError, TypeError, KeyError, IndexError, AttributeError):
            job_id = json.loads(entry)[0]["headers"]["id"]
            if isinstance(job_id, str):
                held.add(job_id)
    return held


def use_for_redis_urls() -> None:
    """Make ``redis+socket://`` URLs (the embedded broker) use this transport in this process.

    kombu takes the transport of a ``scheme+…`` URL from the URL itself and ignores Celery's
    ``broker_transport``, so the ``redis`` alias is pointed here instead; this transport is
    kombu's own plus the changes above.
    """
    TRANSPORT_ALIASES["redis"] = TRANSPORT
