"""trainq's Redis transports after a lost connection: what Celery does next fails as a connection
error (retried, reconnected), never as an AttributeError that ends the worker."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection, Producer

from trainq.broker.transport import SENTINEL_TRANSPORT, TRANSPORT
from trainq.settings import Settings, celery_config


def test_a_channel_of_a_collected_connection_fails_as_a_lost_connection(redis_client: redis.Redis) -> None:
    # given a channel of a connection Celery has collected after losing it (kombu's
    # Connection.collect, as the consumer does before it reconnects)
    url = redis_client.connection_pool.connection_kwargs
    connection = Connection(f"redis://127.0.0.1:{url['port']}/{url['db']}", transport=TRANSPORT)
    channel = connection.channel()
    connection.collect()
    # when something still holding the channel publishes on it (a late ack or restore takes the same path)
    # then it is a connection error, which kombu and Celery retry; kombu's own channel raised
    # AttributeError ('NoneType' object has no attribute 'client'), which ends a worker
    with pytest.raises(connection.connection_errors, match="connection of this channel was closed"):
        Producer(channel).publish({"n": 1}, routing_key="lost")
    assert redis_client.llen("lost") == 0


def test_sentinel_brokers_use_trainqs_transport_too() -> None:
    # given a Sentinel broker, then Celery gets trainq's transport (the guard above, the screen of
    # unreadable messages, one client per channel) and not kombu's own
    settings = Settings(broker_url="sentinel://127.0.0.1:26379", sentinel_master="m")
    assert celery_config(settings)["broker_transport"] == SENTINEL_TRANSPORT
