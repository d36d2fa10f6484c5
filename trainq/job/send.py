"""The one send path: a job record becomes a Celery message and goes out with the record's write.

Every delivery is sent here: a new job, a pipeline's released group, and a re-delivery of a
recorded job (a retry after backoff, a recovery, a manual retry). Each message header has one
meaning: ``retries`` is the delivery's *fence* (the worker claims it only if the record still
expects that fence), ``trainq_sent`` that the job has a record (``SENT_HEADER``), ``priority`` the
broker's priority, ``argsrepr``/``kwargsrepr`` what monitors show, ``soft_time_limit``/``time_limit``
the job's timeouts.

When the registry is the broker's Redis, a delivery costs no round trip of its own: kombu builds
the message as it always does (so plain Celery workers and Flower read it), the transport hands
back its ``LPUSH`` (``trainq.broker.transport.collecting``) and that goes out with the record's
writes in one script call (``create`` for a new job or a group, ``transition`` for a re-delivery).
Otherwise (RabbitMQ, another Redis, replicas to wait for) the record is written first and the
message published after it, as a worker must never see a message before its record.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from amqp.exceptions import ChannelError, MessageNacked
from celery import Task
from celery.utils.saferepr import saferepr
from kombu.exceptions import OperationalError
from pydantic import SecretStr

from trainq.broker import confirms, transport
from trainq.errors import BrokerRefused, BrokerUnavailable, InvalidInput
from trainq.inputs.durations import parse_duration
from trainq.job import canvas
from trainq.job.record import JobRecord
from trainq.settings import get_settings, is_redis, redis_py_url
from trainq.store.registry import Command, Effects, get_registry

if TYPE_CHECKING:
    from celery.app.task import Context
    from celery.result import AsyncResult

    from trainq.job.task import JobTask

#: What a failed send raises: the broker is unreachable.
SEND_ERRORS = (OperationalError, OSError)

#: What a refused send raises: RabbitMQ would not declare a queue (a channel error) or nacked a message.
REFUSALS = (ChannelError, MessageNacked)

#: Longest payload repr a monitor is sent (Celery's own cap).
REPR_MAX_CHARS = 1024

#: A job to send with its task and its message payload (secrets revealed).
Sendable = tuple["JobTask", JobRecord, dict[str, Any]]
#: A gate a recorded job meets before it is sent (``trainq.sharing.gate.park_or_pass``): True holds it.
Hold = Callable[[JobRecord], bool]

#: The fence of a new job's first delivery; a pipeline's jobs start at 1 (see ``trainq.pipelines.runs``).
NEW_FENCE = 0

#: The header every delivery of a recorded job carries: a worker that finds no record for it drops it
#: (the record was removed after the job ended: ``trainq clean``, retention), and never runs it again
#: as a Celery client's new job.
SENT_HEADER = "trainq_sent"


def message_reprs(record: JobRecord) -> dict[str, str]:
    """What monitors (Flower, events) show of a delivery: the job's name and its stored, redacted payload."""
    return {"argsrepr": f"name={record.name!r}", "kwargsrepr": saferepr(record.payload, REPR_MAX_CHARS)}


def reveal_secrets(value: Any) -> Any:
    """A python-mode model dump with each ``SecretStr`` replaced by its value, for the message."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: reveal_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [reveal_secrets(v) for v in value]
    return value


def broker_priority(priority: int) -> int:
    """Map trainq's 0-9 (9 most urgent) onto the broker's scale (Redis serves 0 first)."""
    if not 0 <= priority <= 9:
        raise InvalidInput(f"priority must be between 0 and 9, got {priority}")
    return 9 - priority if is_redis(get_settings().broker()) else priority


def trainq_priority(priority: Any) -> int:
    """Map a message's broker priority back onto trainq's 0-9; the default when it has none."""
    if not isinstance(priority, int) or not 0 <= priority <= 9:
        return get_settings().default_priority
    return 9 - priority if is_redis(get_settings().broker()) else priority


def time_limits(options: dict[str, Any]) -> dict[str, float]:
    """Celery's soft and hard time limits from a job's ``timeout``/``hard_timeout`` options."""
    if not options.get("timeout") and not options.get("hard_timeout"):
        return {}
    soft = parse_duration(options["timeout"]) if options.get("timeout") else None
    hard = (
        parse_duration(options["hard_timeout"])
        if options.get("hard_timeout")
        else soft + get_settings().kill_grace_s  # type: ignore[operator]
    )
    return {"soft_time_limit": soft or hard, "time_limit": hard}


def due_at(options: dict[str, Any]) -> float | None:
    """When a delayed job is due (epoch), from Celery's ``countdown``/``eta`` options; ``eta`` made aware."""
    if options.get("countdown"):
        return time.time() + float(options["countdown"])
    eta = options.get("eta")
    if isinstance(eta, str):
        eta = datetime.fromisoformat(eta)
    if isinstance(eta, datetime):
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=UTC)
        options["eta"] = eta
        return eta.timestamp()
    return None


class Delivery:
    """One message of a recorded job, carrying ``fence``; ``options`` are Celery's (links, eta, headers)."""

    def __init__(
        self,
        task: JobTask,
        record: JobRecord,
        payload: dict[str, Any],
        fence: int,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.task, self.record, self.payload = task, record, payload
        options = dict(options or {})
        self.producer = options.pop("producer", None)  # a caller's (Celery's group sends with its own)
        self.options = {
            **options,
            "headers": {**(options.get("headers") or {}), SENT_HEADER: 1},
            "task_id": record.id,
            "queue": record.queue,
            "priority": broker_priority(record.priority),
            "retries": fence,
            **message_reprs(record),
            **time_limits(record.options),
        }

    def publish(self, producer: Any, retry: bool = True) -> None:
        """Hand the message to Celery's producer: sent (retried by Celery's publish retry policy), or
        collected by the transport, which needs no retry (a Redis that does not answer fails once)."""
        Task.apply_async(self.task, None, self.payload, producer=producer, retry=retry, **self.options)


def send_new(
    task: JobTask,
    record: JobRecord,
    payload: dict[str, Any],
    key: str | None,
    reason: str,
    options: dict[str, Any],
    hold: Hold | None = None,
) -> AsyncResult:
    """Record a new job (idempotency ``key``, first event's ``reason``) and send its first delivery.

    With a key already used, that job's result and nothing sent. With ``hold`` (a keyed job's gate)
    the record is written first and the message sent only if ``hold`` lets the job go now. Raises
    BrokerUnavailable, nothing stored.
    """
    registry = get_registry()
    kept = payload if payload != record.payload else None
    members = canvas.kept_options(options)
    if hold is not None:
        job_id, created = registry.create(record, key, kept, reason, canvas=members)
        if created:
            _release([(task, record, payload)], hold, options)
        return task.AsyncResult(job_id)
    outcome: list[tuple[str, bool]] = []

    def write(commands: list[Command]) -> bool:
        outcome.append(registry.create(record, key, kept, reason, commands, members))
        return outcome[0][1]

    try:
        deliver([Delivery(task, record, payload, record.fence, options)], write)
    except BrokerUnavailable:
        if outcome and outcome[0][1]:
            registry.delete(record.id)
        raise
    return task.AsyncResult(outcome[0][0])


def send_recorded(
    task: JobTask,
    record: JobRecord,
    payload: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Send the first delivery of a job recorded without one: a keyed job let through its gate, at
    once or when admitted. ``payload`` is the message's (secrets revealed) and ``options`` Celery's,
    by default the kept ones (its canvas options); a delayed job keeps its due time. Raises
    BrokerUnavailable.
    """
    registry = get_registry()
    if payload is None:
        payload, kept = registry.kept_message(record)
        options = {**kept, **(options or {})}
    options = {k: v for k, v in (options or {}).items() if k not in ("eta", "countdown")}
    if record.eta:
        options["countdown"] = max(record.eta - time.time(), 0.0)
    deliver([Delivery(task, record, payload, record.fence, options)], registry.write)


def send_group(
    batch: Sequence[Sendable],
    new: bool = False,
    hold: Hold | None = None,
    unless: tuple[str, str, str] | None = None,
) -> list[JobRecord]:
    """Record each ``(task, record, payload)`` that has no record yet and send it; the records made.

    A constant number of round trips whatever the group's size: one to find the unrecorded (none
    when the caller knows all are ``new``), one for the records and their messages. With ``hold``
    (the keyed jobs' gate) the records are written first and each job ``hold`` lets go sent after.
    Nothing is recorded or sent when the hash field ``unless`` names holds its value
    (``Registry.create_many``). Raises BrokerUnavailable with none of them stored.
    """
    registry = get_registry()
    fresh = {r.id for _, r, _ in batch} if new else registry.unrecorded([r for _, r, _ in batch])
    sent = [(task, record, payload) for task, record, payload in batch if record.id in fresh]
    if not sent:
        return []
    if hold is not None:
        if not registry.create_many([record for _, record, _ in sent], unless=unless):
            return []
        _release(sent, hold)
        return [r for _, r, _ in sent]

    def write(commands: list[Command]) -> bool:
        return registry.create_many([record for _, record, _ in sent], commands, unless)

    try:
        if not deliver(_group(sent), write):
            return []
    except BrokerUnavailable:
        registry.delete_many([r.id for _, r, _ in sent])
        raise
    return [r for _, r, _ in sent]


def prepared(batch: Sequence[Sendable]) -> dict[str, list[Command]] | None:
    """Each job's message as the Redis writes that send it, by job id, built to go out later with
    other writes (the finish that releases the jobs of a pipeline); None when the broker is not the
    registry's Redis, or cannot be reached to find out."""
    if not batch:
        return {}
    try:
        with batch[0][0].app.producer_or_acquire() as producer:
            if not _shares_server(producer):
                return None
            messages = {}
            for delivery in _group(batch):
                with transport.collecting() as commands:
                    delivery.publish(producer, retry=False)
                messages[delivery.record.id] = commands
            return messages
    except (*REFUSALS, *SEND_ERRORS, BrokerUnavailable):
        return None


def _group(batch: Sequence[Sendable]) -> list[Delivery]:
    """The first deliveries of ``batch``, options as Celery's group sends its members."""
    group = {"add_to_parent": False, "group_id": str(uuid.uuid4())}
    return [
        Delivery(task, record, payload, record.fence, {**group, "group_index": n})
        for n, (task, record, payload) in enumerate(batch)
    ]


def _release(recorded: Sequence[Sendable], hold: Hold, options: dict[str, Any] | None = None) -> None:
    """Send each just recorded job ``hold`` lets go now; a broker failure leaves none of them stored."""
    try:
        for task, record, payload in recorded:
            if not hold(record):
                send_recorded(task, record, payload, options)
    except BrokerUnavailable:
        get_registry().delete_many([r.id for _, r, _ in recorded])
        raise


def resend(
    task: JobTask,
    record: JobRecord,
    fence: int,
    move: Callable[[Effects | None], bool],
    *,
    countdown: float | None = None,
    request: Context | None = None,
) -> bool:
    """Send a recorded job's next delivery carrying ``fence`` once ``move`` (its fenced transition,
    given the message's writes as effects) applies; True if it did.

    ``request`` is the delivery being retried in a worker: the new one keeps its payload and its
    canvas options (links, chain, chord). Otherwise both are the ones kept beside the record.
    """
    if request is not None:
        options = task.signature_from_request(request).options
        payload = dict(request.kwargs or {})
    else:
        payload, options = get_registry().kept_message(record)
    if countdown is not None:
        options = {**options, "countdown": countdown}

    def write(commands: list[Command]) -> bool:
        effects = None
        if commands:
            effects = Effects()
            for name, *args in commands:
                effects.command(name.upper(), *args)
        return move(effects)

    return deliver([Delivery(task, record, payload, fence, options)], write)


def deliver(deliveries: Sequence[Delivery], write: Callable[[list[Command]], bool]) -> bool:
    """Commit ``write`` (the registry writes of the deliveries' records) and send the deliveries.

    ``write`` gets the messages' broker writes to commit with its own when the registry is the
    broker's Redis (nothing is published then), else none, and the messages are published after
    it. Nothing is sent when ``write`` returns False; its result is returned.
    """
    app = deliveries[0].task.app
    with broker_errors(), app.producer_or_acquire(deliveries[0].producer) as producer:
        if not _shares_server(producer):
            if not write([]):
                return False
            if len(deliveries) > 1 and confirms.batches_confirms(producer):
                try:
                    with confirms.confirmed_batch(producer) as publisher:
                        for delivery in deliveries:
                            delivery.publish(publisher, retry=False)  # kombu would revive it elsewhere
                    return True
                except confirms.CONNECTION_LOST as exc:
                    if isinstance(exc, TimeoutError):
                        raise  # the broker is there but confirms nothing: sending more would not help
                    # Some unconfirmed: all sent again one by one, each reconnecting as a single
                    # publish does (a copy the broker already had is dropped by its fence).
            for delivery in deliveries:
                delivery.publish(producer)
            return True
        with transport.collecting() as commands:
            for delivery in deliveries:
                delivery.publish(producer, retry=False)
    return write(commands)


@contextmanager
def broker_errors() -> Iterator[None]:
    """Raise what the broker refuses as BrokerRefused and what fails to reach it as BrokerUnavailable
    (one line, its URL's password masked)."""
    try:
        yield
    except REFUSALS as exc:
        raise BrokerRefused(get_settings().broker(), str(exc)) from exc
    except SEND_ERRORS as exc:
        raise BrokerUnavailable(get_settings().broker(), str(exc)) from exc


def _shares_server(producer: Any) -> bool:
    """True if ``producer``'s messages can be written with the registry's own writes (same Redis)."""
    registry = get_registry()
    if not same_redis() or registry.min_replicas > 0:  # records wait for replicas before any message
        return False
    if not producer.connection.connected:
        # A first contact asks the registry, which gives up within the connect timeout: kombu's
        # channel would retry its opening PING on a Redis that accepts but does not answer.
        registry.ping()
    channel = producer.channel
    return isinstance(channel, transport.Channel) and not channel.global_keyprefix


def same_redis() -> bool:
    """True if the broker is a plain Redis (trainq's transport) and the registry is the same server and db."""
    settings = get_settings()
    return _same_server(settings.broker(), settings.registry())


@lru_cache(maxsize=8)
def _same_server(broker: str, registry: str) -> bool:
    return broker.startswith(transport.SCHEMES) and redis_py_url(broker) == redis_py_url(registry)
