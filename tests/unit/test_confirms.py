"""A confirmed batch waits for the broker's confirm of every message it published, whatever their order
and however many one confirm covers (RabbitMQ may confirm out of order, and one for many)."""

from __future__ import annotations

import socket
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from amqp.exceptions import MessageNacked

from trainq.broker.confirms import confirmed_batch

#: A confirm the fake broker sends: ``(method, delivery tag, multiple)``.
Confirm = tuple[str, int, bool]


class FakeChannel:
    """A py-amqp channel whose ``wait`` hands over the next scripted confirm."""

    def __init__(self, confirms: list[Confirm]) -> None:
        self.confirms = confirms
        self.events: defaultdict[str, set[Any]] = defaultdict(set)
        self.published = 0
        self.closed = False

    def confirm_select(self) -> None:
        pass

    def _basic_publish(self, *args: Any, **kwargs: Any) -> None:
        self.published += 1

    def wait(self, methods: Any, timeout: float | None = None) -> None:
        method, tag, multiple = self.confirms.pop(0)
        for callback in list(self.events[method]):
            callback(tag, multiple)

    def close(self) -> None:
        self.closed = True


class FakeConnection:
    """A kombu connection handing out ``channel``, over ``sock`` (a real, unconnected socket)."""

    def __init__(self, channel: FakeChannel, sock: socket.socket) -> None:
        self.connected, self.collected = True, False
        self.connection = SimpleNamespace(transport=SimpleNamespace(sock=sock))
        self._channel = channel

    def channel(self) -> FakeChannel:
        return self._channel

    def collect(self) -> None:
        self.collected = True


class FakeProducer:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection


def publish_batch(size: int, confirms: list[Confirm]) -> FakeChannel:
    """Publish ``size`` messages in a batch the broker answers with ``confirms``: then the batch's
    channel is closed, or after an error its connection dropped (no closing handshake)."""
    channel = FakeChannel(confirms)
    with socket.socket() as sock:
        connection = FakeConnection(channel, sock)
        try:
            with confirmed_batch(FakeProducer(connection)) as producer:
                for _ in range(size):
                    producer.channel.basic_publish("message", exchange="", routing_key="probe")
        except Exception:
            assert connection.collected and not channel.closed
            raise
        assert channel.closed and not connection.collected
        assert sock.gettimeout() is None  # blocking again, as py-amqp keeps it
    return channel


def test_one_confirm_for_many_confirms_them_all() -> None:
    # given 4 messages the broker confirms with "all up to 3" then 4; when the batch ends: it waited for both
    confirms: list[Confirm] = [("basic_ack", 3, True), ("basic_ack", 4, False)]
    publish_batch(4, confirms)
    assert confirms == []


def test_confirms_out_of_order_are_all_awaited_and_a_late_refusal_raises() -> None:
    # given 3 messages the broker confirms out of order: 3 first, then refuses 1, then confirms 2
    confirms: list[Confirm] = [("basic_ack", 3, False), ("basic_nack", 1, False), ("basic_ack", 2, False)]
    # when the batch ends, then the refusal of message 1 is not missed (3's confirm confirmed only 3)
    with pytest.raises(MessageNacked, match="refused 1 of 3"):
        publish_batch(3, confirms)


def test_a_refusal_of_many_counts_each_message() -> None:
    # given 5 messages, the broker refusing "all up to 4" at once and confirming 5
    confirms: list[Confirm] = [("basic_nack", 4, True), ("basic_ack", 5, False)]
    # when the batch ends, then each refused message is counted
    with pytest.raises(MessageNacked, match="refused 4 of 5"):
        publish_batch(5, confirms)
