"""Redis Sentinel addresses in kombu's form (``sentinel://[:pw@]host:26379[/db];sentinel://…``)
and the clients that follow the master Sentinel names through a failover.

The broker (kombu's ``sentinel`` transport), Celery's ``sentinel://`` result backend, redbeat's
``redis-sentinel`` lock and the registry (redis-py's ``Sentinel.master_for``) all read the same
addresses and the master's name (``TRAINQ_SENTINEL_MASTER``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from trainq.errors import InvalidInput

SCHEME = "sentinel://"
#: How long a client keeps retrying a command while Sentinel promotes a replica (seconds, roughly).
FAILOVER_RETRIES = 15


@dataclass(frozen=True)
class SentinelAddress:
    """The sentinels to ask, and the master's password and database."""

    hosts: list[tuple[str, int]]
    password: str | None
    db: int


def is_sentinel(url: str) -> bool:
    """True for kombu's ``sentinel://`` addresses."""
    return url.startswith(SCHEME)


def parse(url: str) -> SentinelAddress:
    """The sentinels, password and db in ``url``; raises InvalidInput naming the bad part."""
    hosts: list[tuple[str, int]] = []
    password: str | None = None
    db = 0
    for part in url.split(";"):
        part = part.strip()
        if not is_sentinel(part):
            raise InvalidInput(f"bad Sentinel address {part!r}: each part must start with {SCHEME}")
        split = urlsplit(part)
        if not split.hostname:
            raise InvalidInput(f"bad Sentinel address {part!r}: no host")
        try:
            hosts.append((split.hostname, split.port or 26379))
            db = int(split.path.strip("/") or db)
        except ValueError:
            raise InvalidInput(f"bad Sentinel address {part!r}: the port and db are numbers") from None
        password = unquote(split.password) if split.password else password
    return SentinelAddress(hosts, password, db)


def master_client(url: str, master: str | None, sentinel_password: str | None, **options: Any) -> redis.Redis:
    """A client of the current master named ``master``; commands retry across a failover."""
    if not master:
        raise InvalidInput("a sentinel:// address needs the master's name in TRAINQ_SENTINEL_MASTER")
    address = parse(url)
    timeout = options.get("socket_connect_timeout")
    sentinels = Sentinel(
        address.hosts,
        # No retries of its own per sentinel (redis-py's default is 10): the master lookup is
        # retried whole below, and with every sentinel down each would multiply that wait.
        sentinel_kwargs={
            "password": sentinel_password,
            "socket_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        },
        socket_timeout=timeout,
    )
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.1), FAILOVER_RETRIES)
    return sentinels.master_for(
        master,
        password=address.password,
        db=address.db,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError],
        **options,
    )


def reason(exc: BaseException) -> str:
    """``exc``'s message, without the client reprs redis-py appends when no sentinel names a master."""
    return str(exc).split(" : <", 1)[0] if isinstance(exc, MasterNotFoundError) else str(exc)


def redbeat_options(url: str, master: str, sentinel_password: str | None, timeout_s: float) -> dict[str, Any]:
    """redbeat's ``redbeat_redis_options`` for the same sentinels and master."""
    address = parse(url)
    return {
        "sentinels": address.hosts,
        "service_name": master,
        "password": address.password,
        "db": address.db,
        "socket_timeout": timeout_s,
        "sentinel_kwargs": {"password": sentinel_password, "socket_timeout": timeout_s},
    }


def transport_options(master: str, sentinel_password: str | None) -> dict[str, Any]:
    """kombu's and Celery's transport options naming the master (broker and result backend)."""
    options: dict[str, Any] = {"master_name": master}
    if sentinel_password:
        options["sentinel_kwargs"] = {"password": sentinel_password}
    return options
