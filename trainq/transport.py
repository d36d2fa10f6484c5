"""trainq's Redis broker transport: kombu's, with one publishing client per channel.

kombu's Redis channel builds a new ``redis.Redis`` object for every publish, ack and event
(about 15% of a ``delay()``). That object is a thin, thread-safe wrapper over the channel's
connection pool, so one per channel serves them all; the event loop's client is unchanged.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

#: Celery's ``broker_transport`` for ``redis://`` brokers.
TRANSPORT = "trainq.transport:Transport"


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, building its synchronous client once."""

    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        if self._sync_client is None:
            self._sync_client = super()._create_client(asynchronous=False)  # type: ignore[no-untyped-call]
        return self._sync_client


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with trainq's channel."""

    Channel = Channel
