"""Publisher confirms for a batch on RabbitMQ: the batch's messages go out back to back, then their
confirms are awaited together.

With ``confirm_publish`` py-amqp waits for each message's confirm before the next publish, so a
released group of N jobs waited N round trips (a 1,000-job pipeline took 3x raw Celery's 1,000
``delay()``). The batch here publishes on a channel of its own, in confirm mode, and waits once
until the broker has confirmed every message (one confirm each or one for many, in any order: a
confirm of a later message says nothing of an earlier one); a refused one (a nack) raises
``MessageNacked``, as a single publish does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from amqp import spec
from amqp.exceptions import ConnectionError as AMQPConnectionError
from amqp.exceptions import MessageNacked
from kombu.exceptions import OperationalError
from kombu.messaging import Producer
from kombu.transport import pyamqp

from trainq.settings import get_settings

#: What a batch raises when its connection is lost (closed by the broker, reset, timed out): some of
#: its messages may not have reached the broker, none of them is known to have.
CONNECTION_LOST = (AMQPConnectionError, OSError, OperationalError)  # the last: as Celery's send re-raises


def batches_confirms(producer: Any) -> bool:
    """True if ``producer`` publishes to RabbitMQ (py-amqp) with confirms, each awaited alone."""
    connection = producer.connection
    return isinstance(connection.transport, pyamqp.Transport) and bool(
        connection.transport_options.get("confirm_publish")
    )


@contextmanager
def confirmed_batch(producer: Any) -> Iterator[Any]:
    """A producer on its own channel of ``producer``'s connection whose publishes do not wait; on
    leaving the block (without an error), wait until the broker confirmed every one of them.

    A broker that stops answering with the connection left open (frozen, cut off by a partition)
    raises TimeoutError after ``broker_timeout_s`` (py-amqp's own waits have no bound), wherever the
    batch waits on it: its channel's opening, a queue's declare, the next confirm, the closing. An
    error leaving the batch drops the connection without the closing handshake, which such a broker
    would never answer (the pool's next use reconnects)."""
    connection = producer.connection
    if not connection.connected:
        # The pool closes a connection a producer had when an error left its block (say a queue
        # RabbitMQ refused to declare) and hands it out again: its default channel reconnects, a
        # new channel would fail on the missing connection. A connection that cannot be made
        # raises OperationalError: the caller's single publishes retry it.
        connection.ensure_connection(max_retries=1)
    timeout = get_settings().broker_timeout_s
    sock = connection.connection.transport.sock
    blocking = sock.gettimeout()
    sock.settimeout(timeout)  # bounds every read and write of the batch
    sent = False  # every message confirmed
    try:
        channel = connection.channel()
        channel.confirm_select()
        channel._confirm_selected = True  # py-amqp's own flag: its confirm mode is on
        published = refused = 0
        unconfirmed: set[int] = set()  # delivery tags (1, 2, ... in publish order) not yet confirmed
        lowest = 1  # no tag below it is unconfirmed

        def publish(*args: Any, **kwargs: Any) -> None:
            nonlocal published
            kwargs.pop("confirm_timeout", None)
            channel._basic_publish(*args, **kwargs)
            published += 1
            unconfirmed.add(published)

        def confirm(tag: int, multiple: bool) -> int:
            """Mark ``tag`` (with ``multiple``, every tag up to it) confirmed; how many were waiting.

            Confirms may come out of order: one for a later message confirms only that message."""
            nonlocal lowest
            done = unconfirmed & set(range(lowest, tag + 1)) if multiple else unconfirmed & {tag}
            unconfirmed.difference_update(done)
            if multiple:
                lowest = max(lowest, tag + 1)  # every tag below is confirmed: each tag looked at once
            return len(done)

        def on_nack(tag: int, multiple: bool) -> None:
            nonlocal refused
            refused += confirm(tag, multiple)

        channel.basic_publish = publish
        channel.events["basic_ack"].add(confirm)
        channel.events["basic_nack"].add(on_nack)
        yield Producer(channel)  # type: ignore[no-untyped-call]
        while unconfirmed:
            channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=timeout)
        if refused:
            raise MessageNacked(f"the broker refused {refused} of {published} messages")
        sent = True
        channel.close()
        sock.settimeout(blocking)
    except BaseException as exc:
        connection.collect()  # the socket closed, nothing said to the broker
        if not (sent and isinstance(exc, CONNECTION_LOST)):
            raise  # (a channel not closed after every confirm leaves the batch sent)
